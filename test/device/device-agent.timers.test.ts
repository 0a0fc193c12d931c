/**
 * The device agent's three timers (read backoff, handler retry, report coalescing/backoff) on fake time, over
 * the inbox service double: each is cancelled only by what it belongs to.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import { createFakeClock, type FakeClock, flush } from '../support/fake-clock.js';
import { InboxServiceDouble } from './inbox-service-double.js';

const target = { thingName: 'timers' };

/** The `reported` section the double's service holds. */
function reportedOf(service: InboxServiceDouble): unknown {
  return (service.record as { state?: { reported?: unknown } } | undefined)?.state?.reported;
}

async function deliverAll(service: InboxServiceDouble): Promise<void> {
  while (service.inbox.length > 0) {
    service.take(0, false);
    await flush();
  }
}

/** Delivers and advances time until the agent is idle (bounded). */
async function settle(service: InboxServiceDouble, clock: FakeClock, agent: DeviceAgent): Promise<boolean> {
  for (let round = 0; round < 50; round++) {
    await deliverAll(service);
    if (agent.status().synced) return true;
    await clock.advance(100);
  }
  return false;
}

describe('device agent timers on fake time', () => {
  it('a failing handler does not cancel the backoff of a failed read (the read is retried)', async () => {
    const clock = createFakeClock();
    const service = new InboxServiceDouble(clock, target);
    let failures = 1;
    const agent = await createDeviceAgent({
      thingName: target.thingName,
      mqtt: service as unknown as MqttClient,
      clock,
      random: () => 0.5, // the first read retry waits 25 ms
      resyncIntervalMs: 1_000,
      handlerRetryDelayMs: 500,
      onDelta: (delta) => {
        if (failures-- > 0) throw new Error('actuator busy');
        return delta;
      },
    });
    try {
      expect(await settle(service, clock, agent)).toBe(true); // read: no shadow yet
      service.getFaults.push(500);
      await clock.advance(1_000); // the resync read, answered 500: its retry waits 25 ms
      await deliverAll(service);
      expect(agent.status().synced).toBe(false);
      service.update({ state: { desired: { power: 'on' } } });
      await deliverAll(service); // the delta: the handler throws and its retry waits 500 ms
      const gets = agent.stats().gets;
      await clock.advance(25);
      expect(agent.stats().gets).toBe(gets + 1); // the read's retry still ran
      expect(await settle(service, clock, agent)).toBe(true);
      expect(agent.applied()).toEqual({ power: 'on' });
      expect(reportedOf(service)).toEqual({ power: 'on' });
    } finally {
      const closing = agent.close();
      await clock.advance(10_000);
      await closing;
    }
  });

  it('a reconnect that cancels the backoff of a failed read does not cancel a pending handler retry', async () => {
    const clock = createFakeClock();
    const service = new InboxServiceDouble(clock, target);
    let failures = 1;
    const agent = await createDeviceAgent({
      thingName: target.thingName,
      mqtt: service as unknown as MqttClient,
      clock,
      random: () => 0.5,
      resyncIntervalMs: 1_000,
      handlerRetryDelayMs: 5_000,
      onDelta: (delta) => {
        if (failures-- > 0) throw new Error('actuator busy');
        return delta;
      },
    });
    try {
      expect(await settle(service, clock, agent)).toBe(true);
      service.update({ state: { desired: { power: 'on' } } });
      await deliverAll(service); // the handler throws: its retry waits 5 s
      service.getFaults.push(500);
      await clock.advance(1_000); // the resync read, answered 500: its retry waits 25 ms
      await deliverAll(service);
      service.disconnect(); // cancels the read's backoff, and only that
      service.reconnect();
      expect(await settle(service, clock, agent)).toBe(true);
      expect(agent.applied()).toEqual({ power: 'on' });
      expect(reportedOf(service)).toEqual({ power: 'on' });
    } finally {
      const closing = agent.close();
      await clock.advance(10_000);
      await closing;
    }
  });
});
