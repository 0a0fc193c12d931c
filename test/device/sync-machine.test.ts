/** The device agent's pure connection / read / ordering machine: examples and properties, no I/O at all. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DeltaBody, GetAcceptedBody } from '../../src/core/document.js';
import {
  INITIAL_SYNC_STATE,
  type SyncEffect,
  type SyncEvent,
  type SyncState,
  stepSync,
} from '../../src/device/sync-machine.js';

function run(events: SyncEvent[], from: SyncState = INITIAL_SYNC_STATE) {
  let state = from;
  const effects: SyncEffect[] = [];
  for (const event of events) {
    const step = stepSync(state, event);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const doc = (version: number): GetAcceptedBody =>
  ({ state: {}, metadata: {}, version, timestamp: 1 }) as GetAcceptedBody;
const delta = (version: number): DeltaBody =>
  ({ state: { on: true }, metadata: {}, version, timestamp: 1 }) as DeltaBody;
const types = (effects: SyncEffect[]) => effects.map((effect) => effect.type);

describe('sync machine: examples', () => {
  it('subscribes on connect, reads once the SUBACK came, adopts the answer', () => {
    const { state, effects } = run([
      { type: 'connected' },
      { type: 'subscribed', epoch: 1 },
      { type: 'read-answered', epoch: 1, document: doc(4), reportInFlight: false },
    ]);
    expect(types(effects)).toEqual([
      'reset-outcome',
      'flush-telemetry',
      'subscribe',
      'count',
      'read',
      'adopt',
      'pump',
    ]);
    expect(state).toMatchObject({ link: 'ready', synced: true, sync: 'idle', version: 4 });
  });

  it('takes no read outcome of the current connection before its SUBACK (no read of ours can be under way)', () => {
    // Found by the property below: a read-failed stamped with the new epoch while still subscribing put the
    // machine in backoff on a link that is not ready.
    const before = run([{ type: 'connected' }, { type: 'subscribed', epoch: 1 }, { type: 'connected' }]);
    for (const outcome of [
      { type: 'read-failed', epoch: 2, error: 'lost' },
      { type: 'read-answered', epoch: 2, document: doc(3), reportInFlight: false },
    ] as const) {
      const { state, effects } = run([outcome], before.state);
      expect(effects).toEqual([]);
      expect(state).toBe(before.state);
    }
  });

  it('ignores a read answered on an older connection and reads again on the new one', () => {
    const { state, effects } = run([
      { type: 'connected' },
      { type: 'subscribed', epoch: 1 },
      { type: 'disconnected' },
      { type: 'connected' },
      { type: 'subscribed', epoch: 3 },
      { type: 'read-answered', epoch: 1, document: doc(1), reportInFlight: false },
    ]);
    expect(effects.filter((effect) => effect.type === 'read')).toEqual([
      { type: 'read', epoch: 1 },
      { type: 'read', epoch: 3 },
    ]);
    expect(effects.some((effect) => effect.type === 'adopt')).toBe(false);
    expect(state).toMatchObject({ sync: 'reading', synced: false, epoch: 3 });
  });

  it('backs off after a failed read (retry number grows), and a disconnect cancels the wait', () => {
    const ready = run([{ type: 'connected' }, { type: 'subscribed', epoch: 1 }]).state;
    const failed = run(
      [
        { type: 'read-failed', epoch: 1, error: 'x' },
        { type: 'retry-due' },
        { type: 'read-failed', epoch: 1, error: 'y' },
      ],
      ready,
    );
    expect(failed.effects.filter((effect) => effect.type === 'start-retry-timer')).toEqual([
      { type: 'start-retry-timer', retry: 1 },
      { type: 'start-retry-timer', retry: 2 },
    ]);
    const dropped = run([{ type: 'disconnected' }], failed.state);
    expect(types(dropped.effects)).toContain('cancel-retry-timer');
    expect(dropped.state.sync).toBe('idle');
  });

  it('orders deltas: older discarded (< not <=), same version queued, a skipped version read', () => {
    const synced = run([
      { type: 'connected' },
      { type: 'subscribed', epoch: 1 },
      { type: 'read-answered', epoch: 1, document: doc(5), reportInFlight: false },
    ]).state;
    expect(types(stepSync(synced, { type: 'delta', body: delta(4) }).effects)).toEqual(['count']);
    expect(types(stepSync(synced, { type: 'delta', body: delta(5) }).effects)).toEqual([
      'queue-delta',
      'pump',
    ]);
    expect(stepSync(synced, { type: 'delta', body: delta(7) }).effects).toEqual([
      { type: 'count', counter: 'gaps' },
      { type: 'count', counter: 'gets' },
      { type: 'read', epoch: 1 },
    ]);
  });

  it('counts a delta that came before the first read as seen: an older one reordered behind it is discarded', () => {
    // Found by the agent's model test: delta 2 before the read, a 404 read (sent before the shadow existed),
    // then delta 1: the handler applied 2, then the older 1 over it.
    const { state, effects } = run([
      { type: 'connected' },
      { type: 'subscribed', epoch: 1 },
      { type: 'delta', body: delta(2) },
      { type: 'read-answered', epoch: 1, document: undefined, reportInFlight: false },
    ]);
    expect(state.version).toBe(2);
    expect(types(effects)).toContain('read'); // the 404 is older than delta 2: read again
    const after = run(
      [
        { type: 'read-answered', epoch: 1, document: doc(3), reportInFlight: false },
        { type: 'delta', body: delta(1) },
      ],
      state,
    );
    expect(after.effects.at(-1)).toEqual({ type: 'count', counter: 'deltasDiscarded' });
  });

  it('re-reads an answer older than a version already seen at most twice, then adopts it', () => {
    const reading = run([
      { type: 'connected' },
      { type: 'subscribed', epoch: 1 },
      { type: 'accepted-seen', version: 9 },
    ]).state;
    const older = { type: 'read-answered', epoch: 1, document: doc(8), reportInFlight: false } as const;
    const { effects } = run([older, older, older], reading);
    expect(types(effects)).toEqual(['count', 'read', 'count', 'read', 'adopt', 'pump']);
    expect(effects.find((effect) => effect.type === 'adopt')).toMatchObject({ current: false });
  });
});

const event: fc.Arbitrary<SyncEvent> = fc.oneof(
  fc.constant({ type: 'connected' } as const),
  fc.constant({ type: 'disconnected' } as const),
  fc.nat(6).map((epoch) => ({ type: 'subscribed', epoch }) as const),
  fc.constant({ type: 'sync-wanted' } as const),
  fc
    .tuple(fc.nat(6), fc.option(fc.nat(10), { nil: undefined }), fc.boolean())
    .map(([epoch, version, reportInFlight]) => ({
      type: 'read-answered' as const,
      epoch,
      document: version === undefined ? undefined : doc(version),
      reportInFlight,
    })),
  fc.nat(6).map((epoch) => ({ type: 'read-failed', epoch, error: 'lost' }) as const),
  fc.constant({ type: 'retry-due' } as const),
  fc.nat(10).map((version) => ({ type: 'accepted-seen', version }) as const),
  fc
    .tuple(fc.nat(6), fc.nat(10))
    .map(([epoch, version]) => ({ type: 'report-accepted', epoch, version }) as const),
  fc.nat(10).map((version) => ({ type: 'delta', body: delta(version) }) as const),
);

describe('sync machine: properties', () => {
  it('is pure: the same events from the same state give the same states and effects, inputs untouched', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (events) => {
        const frozen = structuredClone(events);
        expect(run(events)).toEqual(run(events));
        expect(events).toEqual(frozen);
      }),
    );
  });

  it('never reads while down, never waits on a backoff while not ready, and reads only on the current connection', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        let state = INITIAL_SYNC_STATE;
        for (const e of events) {
          const step = stepSync(state, e);
          for (const effect of step.effects) {
            if (effect.type === 'read') {
              expect(step.state.link).toBe('ready');
              expect(effect.epoch).toBe(step.state.epoch);
            }
          }
          if (step.state.sync === 'backoff') expect(step.state.link).toBe('ready');
          if (step.state.synced) expect(step.state.link).toBe('ready');
          state = step.state;
        }
      }),
    );
  });

  it('after close nothing happens any more', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), fc.array(event, { maxLength: 30 }), (before, after) => {
        const closed = run([...before, { type: 'close' }]).state;
        const { state, effects } = run(after, closed);
        expect(effects).toEqual([]);
        expect(state).toBe(closed);
      }),
    );
  });
});
