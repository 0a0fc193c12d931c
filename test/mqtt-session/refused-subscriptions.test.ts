/**
 * A broker that refuses a subscription, as AWS IoT does when the policy does not allow the filter: SUBACK
 * return code 0x80 (MQTT 3.1.1) or an MQTT 5 reason code (0x87 Not authorized). The session names every refused
 * filter with its code, and never publishes the request whose answers could not arrive.
 *
 * mosquitto 2.0's `acl_file` grants every subscription (it filters at delivery), so mosquitto runs here with its
 * dynamic-security plugin (shipped in Debian's package), which checks subscriptions and answers with codes.
 */
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedBroker, startBroker } from '../../src/emulator/broker.js';
import { ShadowTransportError } from '../../src/errors.js';
import { type Mosquitto, startMosquitto } from '../support/mosquitto.js';
import { connectClient, sessionOn, watchSubscriptions } from './session-rigs.js';

/** Debian installs the plugin under the architecture's library directory. */
function dynamicSecurityPlugin(): string {
  for (const dir of ['/usr/lib', ...readdirSync('/usr/lib').map((name) => join('/usr/lib', name))]) {
    const candidate = join(dir, 'mosquitto_dynamic_security.so');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('mosquitto_dynamic_security.so not found (Debian ships it in the mosquitto package)');
}

let aedes: EmbeddedBroker;
let mosquitto: Mosquitto;
const clients: MqttClient[] = [];

beforeAll(async () => {
  // Devices only: every client is the thing its client id names, allowed its own shadow's topics.
  aedes = await startBroker({ auth: {} });
  mosquitto = await startMosquitto((dir) => {
    const config = join(dir, 'dynamic-security.json');
    writeFileSync(
      config,
      JSON.stringify({
        defaultACLAccess: {
          publishClientSend: true,
          publishClientReceive: true,
          subscribe: false,
          unsubscribe: true,
        },
        clients: [],
        roles: [
          {
            rolename: 'device',
            // Literal thing names: this plugin version does not substitute %c in anonymous clients' patterns.
            acls: ['dev-4', 'dev-5'].map((thing) => ({
              acltype: 'subscribePattern',
              topic: `$aws/things/${thing}/shadow/#`,
              priority: 0,
              allow: true,
            })),
          },
        ],
        groups: [{ groupname: 'devices', roles: [{ rolename: 'device' }], clients: [] }],
        anonymousGroup: 'devices',
      }),
    );
    // mosquitto started as root drops to its own user, which must be able to read the file.
    chmodSync(dir, 0o755);
    chmodSync(config, 0o644);
    return [`plugin ${dynamicSecurityPlugin()}`, `plugin_opt_config_file ${config}`];
  });
}, 20_000);

afterAll(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true)));
  await aedes?.close();
  await mosquitto?.stop();
});

describe.each([
  ['MQTT 3.1.1 on aedes', () => aedes.url, 4 as const, 'dev-4', '0x80 Unspecified error'],
  ['MQTT 3.1.1 on mosquitto', () => mosquitto.url, 4 as const, 'dev-4', '0x80 Unspecified error'],
  ['MQTT 5 on mosquitto', () => mosquitto.url, 5 as const, 'dev-5', '0x87 Not authorized'],
])('refused subscriptions, %s', (_name, url, protocolVersion, clientId, reason) => {
  it(`rejects the request with a ShadowTransportError naming each refused filter (${reason}) and publishes nothing`, async () => {
    const client = await connectClient(url(), clientId, protocolVersion);
    clients.push(client);
    const watch = watchSubscriptions(client);
    const session = sessionOn(client, { suffixes: ['get/accepted', 'get/rejected'] });
    const error = await session.request('get', { thingName: 'not-mine' }, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowTransportError);
    expect(error).toMatchObject({ thingName: 'not-mine' });
    const message = (error as Error).message;
    expect(message).toContain(`$aws/things/not-mine/shadow/get/accepted (${reason})`);
    expect(message).toContain(`$aws/things/not-mine/shadow/get/rejected (${reason})`);
    await expect(session.subscribe({ thingName: 'not-mine' })).rejects.toBeInstanceOf(ShadowTransportError);
    expect(watch.log.some((line) => line.startsWith('publish'))).toBe(false);
    // Its own shadow is allowed: the same session subscribes it.
    await expect(session.subscribe({ thingName: clientId })).resolves.toBeUndefined();
    expect(session.subscriptionCount()).toBe(2);
    await session.close();
  });
});
