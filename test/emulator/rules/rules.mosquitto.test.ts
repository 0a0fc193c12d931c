/**
 * Rules when the service joins an external broker (mosquitto): client publishes reach the rules through the
 * service's subscriptions, and a republish to a shadow request topic is applied exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RuleStats, type ShadowService, startShadowService } from '../../../src/emulator/index.js';
import { type Mosquitto, startMosquitto } from '../../support/mosquitto.js';
import { connectTestClient, type TestClient } from '../mqtt-test-client.js';

describe('rules with an external mosquitto broker', () => {
  let mosquitto: Mosquitto;
  let service: ShadowService;
  let device: TestClient;
  let watcher: TestClient;
  const events: unknown[] = [];
  const stats = (name: string) => service.rules.stats()[name] as RuleStats;

  beforeAll(async () => {
    mosquitto = await startMosquitto();
    const brokerUrl = mosquitto.url;
    service = await startShadowService({
      broker: brokerUrl,
      limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 1000 },
      rules: [
        {
          name: 'illegalState',
          sql: "SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True",
          actions: [
            {
              type: 'lambda',
              handler: async (event: unknown) => {
                events.push(event);
              },
            },
            // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
            { type: 'republish', topic: 'alerts/${topic(3)}', qos: 1 },
          ],
        },
        { name: 'probe', sql: "SELECT * FROM 'probe/#'", actions: [] },
        {
          name: 'relay',
          sql: "SELECT * FROM 'relay/+'",
          // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
          actions: [{ type: 'republish', topic: '$$aws/things/${topic(2)}/shadow/update' }],
        },
      ],
    });
    device = await connectTestClient(brokerUrl, { clientId: 'ac-7' });
    watcher = await connectTestClient(brokerUrl, { clientId: 'watcher' });
    await watcher.subscribe(['alerts/+', '$aws/things/ac-9/shadow/update/accepted'], 1);
    // startShadowService resolves only after the broker acknowledged the service's `#` subscription, so the
    // very first client publish must reach the rules.
    // The rules' listener was added when the service started, before this one: once the probe reaches it, the
    // rules have evaluated it.
    const probed = new Promise<void>((resolve) => {
      const stop = service.mqtt.onClientPublish((publish) => {
        if (publish.topic !== 'probe/1') return;
        stop();
        resolve();
      });
    });
    await device.publish('probe/1', '{}', 1);
    await probed;
    expect(stats('probe').messages).toBe(1);
  }, 20_000);

  afterAll(async () => {
    await device?.close();
    await watcher?.close();
    await service?.close();
    await mosquitto?.stop();
  });

  it("the seed's rule fires on a device publish through mosquitto and republishes once", async () => {
    const update = { state: { reported: { someIllegalState: true } } };
    await device.publish('$aws/things/ac-7/shadow/update', update, 1);
    expect((await watcher.take('alerts/ac-7')).json).toEqual({ ...update, device_id: 'ac-7' });
    // The alert is the rule's other action: the Lambda started with it, and idle() waits for it.
    await service.rules.idle();
    expect(events).toEqual([{ ...update, device_id: 'ac-7' }]);
    expect(await watcher.quiet('alerts/ac-7', 100)).toBe(true);
    expect(stats('illegalState')).toMatchObject({ matched: 1, actionsSucceeded: 2, actionsFailed: 0 });
  });

  it('a republish to a shadow request topic is applied exactly once', async () => {
    await device.publish('relay/ac-9', { state: { desired: { power: 'on' } } }, 1);
    const accepted = await watcher.take('$aws/things/ac-9/shadow/update/accepted');
    expect(accepted.json).toMatchObject({ state: { desired: { power: 'on' } }, version: 1 });
    expect(await watcher.quiet('$aws/things/ac-9/shadow/update/accepted', 100)).toBe(true);
  });
});
