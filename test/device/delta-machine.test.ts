/** The device agent's pure delta handling: examples, no I/O at all. */
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/core/document.js';
import {
  type DeltaEffect,
  type DeltaEvent,
  type DeltaRules,
  type DeltaState,
  INITIAL_DELTA_STATE,
  type QueuedDelta,
  stepDelta,
} from '../../src/device/delta-machine.js';

const rules: DeltaRules = { errorKey: 'err', maxHandlerAttempts: 2 };

function run(events: DeltaEvent[], from: DeltaState = INITIAL_DELTA_STATE) {
  let state = from;
  const effects: DeltaEffect[] = [];
  for (const event of events) {
    const step = stepDelta(state, event, rules);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const types = (effects: DeltaEffect[]) => effects.map((effect) => effect.type);
const item = (version: number, state: JsonObject = { power: 'on' }): QueuedDelta => ({
  state,
  version,
  source: 'delta',
});
const queue = (version: number, state?: JsonObject): DeltaEvent => ({
  type: 'queue',
  item: item(version, state),
  ifNewer: false,
});
const wake = (wanted?: JsonObject): DeltaEvent => ({ type: 'wake', ready: true, wanted });

describe('delta machine: examples', () => {
  it('hands the newest waiting delta to the handler, one at a time, and reports what it applied', () => {
    const { state, effects } = run([
      queue(1, { power: 'off' }),
      queue(2, { power: 'on' }),
      wake(),
      queue(3, { power: 'eco' }),
      wake(), // busy: waits
    ]);
    expect(effects).toEqual([{ type: 'handle', item: item(2, { power: 'on' }) }]);
    expect(state.queued?.version).toBe(3);
    const done = run([{ type: 'handler-returned', values: undefined }], state);
    expect(done.effects).toEqual([
      { type: 'count-handled' },
      { type: 'set-wanted', patch: { power: 'on' } },
      { type: 'pump' },
    ]);
    expect(done.state.applied).toEqual({ power: 'on' });
  });

  it('a delta queued before the first read is replaced only by a newer one; a read keeps a newer waiting delta', () => {
    const before = run([
      { type: 'queue', item: item(5), ifNewer: true },
      { type: 'queue', item: item(4, { power: 'off' }), ifNewer: true },
    ]);
    expect(before.state.queued?.version).toBe(5);
    expect(
      run([{ type: 'read', version: 4, delta: { power: 'off' } }], before.state).state.queued?.version,
    ).toBe(5);
    const read = run([{ type: 'read', version: 6, delta: { power: 'eco' } }], before.state).state.queued;
    expect(read).toEqual({ state: { power: 'eco' }, version: 6, source: 'get' });
    expect(run([{ type: 'read', version: 6, delta: undefined }], before.state).state.queued).toBeUndefined();
  });

  it('skips a delta the device already applies and reports, or already answered with values it still reports', () => {
    const applied = run([queue(1), wake(), { type: 'handler-returned', values: undefined }]).state;
    expect(run([queue(2), wake({ power: 'on' })], applied).effects).toEqual([]);
    // The handler clamped 35 to 30: the re-published delta asking 35 again is not handed over again...
    const clamped = run([queue(1, { t: 35 }), wake(), { type: 'handler-returned', values: { t: 30 } }]);
    expect(types(clamped.effects)).toContain('conflict');
    expect(run([queue(2, { t: 35 }), wake({ t: 30 })], clamped.state).effects).toEqual([]);
    // ...until the device reconnects (the outcome is forgotten: reconcile in full).
    expect(
      types(run([{ type: 'reset-outcome' }, queue(3, { t: 35 }), wake({ t: 30 })], clamped.state).effects),
    ).toEqual(['handle']);
  });

  it('retries a throwing handler after a delay, then reports the failure and stops handing that delta', () => {
    const first = run([queue(1), wake(), { type: 'handler-threw', error: new Error('stuck') }]);
    expect(types(first.effects)).toEqual(['handle', 'count-handled', 'error', 'start-retry-timer', 'pump']);
    const second = run(
      [{ type: 'retry-due' }, wake(), { type: 'handler-threw', error: new Error('stuck') }],
      first.state,
    );
    expect(second.effects).toContainEqual({
      type: 'set-wanted',
      patch: { err: { kind: 'handler', version: 1, attempts: 2, message: 'stuck' } },
    });
    expect(types(second.effects)).not.toContain('start-retry-timer');
    expect(run([queue(2), wake()], second.state).effects).toEqual([]); // failed for good: not again
    // The next delta that applies clears the error key.
    const next = run(
      [queue(3, { power: 'off' }), wake(), { type: 'handler-returned', values: undefined }],
      second.state,
    );
    expect(next.effects).toContainEqual({ type: 'set-wanted', patch: { power: 'off', err: null } });
  });

  it('a newer delta supersedes a pending retry of an older one', () => {
    const failed = run([queue(1, { power: 'on' }), wake(), { type: 'handler-threw', error: 'x' }]).state;
    const newer = run(
      [queue(2, { power: 'off' }), wake(), { type: 'handler-returned', values: undefined }],
      failed,
    );
    const due = run([{ type: 'retry-due' }, wake()], newer.state);
    expect(types(due.effects)).toEqual(['pump']); // the older delta is not handed over again
    expect(due.state.queued).toBeUndefined();
  });

  it('a delta failing the schema is reported at once; close cancels a pending retry and ignores outcomes', () => {
    const refused = run([
      queue(1),
      wake(),
      { type: 'schema-refused', error: 'bad', message: 'power: wrong type' },
    ]);
    expect(refused.effects).toContainEqual({
      type: 'set-wanted',
      patch: { err: { kind: 'schema', version: 1, message: 'power: wrong type' } },
    });
    expect(refused.state.failure?.final).toBe(true);
    const pending = run([queue(1), wake(), { type: 'handler-threw', error: 'x' }]).state;
    const closed = run([{ type: 'close' }, { type: 'retry-due' }, queue(2), wake()], pending);
    expect(types(closed.effects)).toEqual(['cancel-retry-timer']);
  });
});
