/**
 * Request-minimal base documents: which document a versioned round writes on, decided per shadow from what
 * the engine saw (see `base-chooser.ts`), observable as `base` events.
 */
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/core/document.js';
import type { KnownState } from '../../src/transports/transport.js';
import { chooseBase, newBaseHistory } from '../../src/update/base-chooser.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { ShadowEvent } from '../../src/update/shadow-events.js';
import { InMemoryShadowServiceDouble, instantClock } from './in-memory-service-double.js';

const lamp = { thingName: 'lamp' };
const doc = (version: number): KnownState => ({
  exists: true,
  document: { state: { desired: { on: true } }, metadata: {}, version },
});

function setup(options: { broadcast?: boolean; useKnownDocuments?: boolean | 'auto' } = {}) {
  const service = new InMemoryShadowServiceDouble();
  const events: ShadowEvent[] = [];
  const shadows = createShadowClient({
    transport: service.transport('app', { broadcast: options.broadcast ?? false }),
    clock: instantClock(),
    random: () => 0.5,
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
    ...(options.useKnownDocuments === undefined ? {} : { useKnownDocuments: options.useKnownDocuments }),
    onEvent: (event) => events.push(event),
  });
  const bases = () =>
    events
      .filter((e) => e.type === 'base')
      .map((e) => `${(e as { source: string }).source}:${(e as { reason: string }).reason}`);
  return { service, events, shadow: shadows.shadow('lamp'), bases };
}

const setTemp = (value: number) => () => ({ desired: { temp: value } });

/** A device that acknowledges the desired temp by reporting it. */
function acknowledge(service: InMemoryShadowServiceDouble) {
  const desired = service.read(lamp)?.state.desired as JsonObject | undefined;
  service.write(lamp, { state: { reported: { temp: desired?.temp ?? null } } }, 'device');
}

describe('chooseBase', () => {
  it('reads when nothing is known, and after a conflict unless something newer is known', () => {
    const history = newBaseHistory();
    expect(
      chooseBase({ mode: 'auto', own: undefined, heard: undefined, failedVersion: undefined, history }),
    ).toMatchObject({
      source: 'read',
      reason: 'unknown',
    });
    expect(
      chooseBase({ mode: 'auto', own: doc(3), heard: undefined, failedVersion: 3, history }),
    ).toMatchObject({
      source: 'read',
      reason: 'unknown',
    });
    expect(chooseBase({ mode: 'auto', own: doc(3), heard: doc(4), failedVersion: 3, history })).toMatchObject(
      {
        source: 'heard',
        reason: 'after-conflict',
      },
    );
  });

  it('prefers what the transport heard; honours the override both ways', () => {
    const history = { stale: 1, answered: 1, deltaPending: true, readConflicts: 0 };
    expect(
      chooseBase({ mode: 'auto', own: doc(3), heard: doc(4), failedVersion: undefined, history }),
    ).toMatchObject({
      source: 'heard',
      reason: 'heard',
    });
    expect(
      chooseBase({ mode: true, own: doc(3), heard: undefined, failedVersion: undefined, history }),
    ).toMatchObject({
      source: 'remembered',
      reason: 'option',
    });
    expect(
      chooseBase({ mode: false, own: doc(3), heard: doc(4), failedVersion: undefined, history }),
    ).toMatchObject({
      source: 'read',
      reason: 'option',
    });
  });
});

describe('base documents per shadow (default useKnownDocuments: auto)', () => {
  it("the seed's scenario: a device answering each change, so every next change reads first and never meets a 409", async () => {
    const { service, shadow, events, bases } = setup();
    for (let change = 1; change <= 5; change++) {
      await shadow.update(setTemp(20 + change));
      acknowledge(service);
    }
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(0);
    expect(service.count('get', 'app')).toBe(5);
    expect(service.count('update', 'app')).toBe(5);
    expect(bases()).toEqual(['read:unknown', ...Array(4).fill('read:delta-pending')]);
  });

  it('a blind merge that leaves a delta counts too: the next update reads first', async () => {
    const { service, shadow, events, bases } = setup();
    await shadow.update(() => ({ desired: { temp: 20 }, reported: { temp: 20 } })); // in sync: no delta
    await shadow.merge({ desired: { temp: 21 } });
    acknowledge(service);
    await shadow.update(setTemp(22));
    expect(bases().at(-1)).toBe('read:delta-pending');
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(0);
  });

  it('the same with useKnownDocuments: true costs a 409 and a read per change (the previous default)', async () => {
    const { service, shadow, events } = setup({ useKnownDocuments: true });
    for (let change = 1; change <= 5; change++) {
      await shadow.update(setTemp(20 + change));
      acknowledge(service);
    }
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(4);
    expect(service.count('get', 'app') + service.count('update', 'app')).toBe(2 + 4 * 3);
  });

  it('learns that nobody answers its deltas (device offline) and stops reading first', async () => {
    const { service, shadow, bases } = setup();
    for (let change = 1; change <= 8; change++) await shadow.update(setTemp(20 + change));
    const seen = bases();
    expect(seen.slice(0, 2)).toEqual(['read:unknown', 'read:delta-pending']);
    expect(seen.slice(-3)).toEqual(Array(3).fill('remembered:remembered-fresh'));
    expect(service.count('get', 'app')).toBeLessThan(8);
  });

  it('learns that remembered documents keep turning out stale (another writer) and reads first', async () => {
    const { service, shadow, bases } = setup();
    // Reported values leave no delta: only the other writer makes the remembered document stale.
    for (let i = 1; i <= 8; i++) {
      await shadow.update((current) => ({
        reported: { mine: Number(current?.state.reported?.mine ?? 0) + 1 },
      }));
      service.write(lamp, { state: { reported: { theirs: i } } }, 'other');
    }
    const seen = bases();
    expect(seen).toContain('read:stale-history');
    expect(seen.at(-1)).toBe('read:stale-history');
    expect(service.read(lamp)?.state.reported).toEqual({ mine: 8, theirs: 8 });
  });

  it('writes on what the transport heard (update/documents): one request per change, no 409', async () => {
    const service = new InMemoryShadowServiceDouble();
    const inner = service.transport('app');
    const events: ShadowEvent[] = [];
    // A transport that hears every committed document, as an MQTT client subscribed to update/documents does.
    const hearing = {
      ...inner,
      known: (): KnownState | undefined => {
        const current = service.read(lamp);
        return current === undefined ? undefined : { exists: true, document: current };
      },
    };
    const shadow = createShadowClient({
      transport: hearing,
      clock: instantClock(),
      requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
      onEvent: (event) => events.push(event),
    }).shadow('lamp');
    for (let change = 1; change <= 5; change++) {
      await shadow.update(setTemp(20 + change));
      acknowledge(service);
    }
    expect(service.count('get', 'app')).toBe(1); // the first change found nothing known
    expect(service.count('update', 'app')).toBe(5);
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(0);
    expect(events.filter((e) => e.type === 'base').slice(1)).toEqual(
      Array.from({ length: 4 }, () => expect.objectContaining({ source: 'heard', reason: 'heard' })),
    );
  });
});
