/**
 * Fuzzes the embedded MQTT broker with raw packets: a valid CONNECT (or none) followed by fuzzed packets
 * (publishes and subscribes with fuzzed topics, flags, QoS and payloads; packets with malformed or huge
 * remaining lengths; arbitrary bytes). Properties: the service process never dies, memory stays bounded, and
 * afterwards a real device still gets its update answered.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTestClient } from '../emulator/mqtt-test-client.js';
import {
  connectPacket,
  publishPacket,
  pubrelPacket,
  rawConnect,
  remainingLength,
  subscribePacket,
} from '../emulator/security/raw-mqtt.js';
import { type ServiceProcess, startServiceProcess } from '../emulator/security/service-process.js';
import { fuzzRuns, fuzzTimeoutMs } from './fuzz-runs.js';

const MB = 1024 * 1024;
const RUNS = fuzzRuns(200);
let service: ServiceProcess;
let port: number;

beforeAll(async () => {
  service = await startServiceProcess();
  port = Number(new URL(service.mqttUrl).port);
}, 30_000);
afterAll(async () => service.stop());

const topic = fc.oneof(
  fc.constantFrom(
    '$aws/things/fz/shadow/update',
    '$aws/things/fz/shadow/get',
    '$aws/things/fz/shadow/name/n/delete',
    '$aws/things/other/shadow/update/delta',
    '$SYS/x',
    'my/things/fz/state',
    '#',
    '+/+',
    '',
  ),
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 30 }).map((bytes) => Buffer.from(bytes).toString('latin1')),
);
const payload = fc.oneof(
  fc.json().map((text) => Buffer.from(text)),
  fc
    .constantFrom('{"state":{"reported":{"on":true}}}', '{"state":null}', '')
    .map((text) => Buffer.from(text)),
  fc.uint8Array({ maxLength: 1024 }).map((bytes) => Buffer.from(bytes)),
);

/** One fuzzed packet (or raw bytes). */
const packet = fc.oneof(
  fc
    .record({
      topic,
      payload,
      qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
      retain: fc.boolean(),
      id: fc.integer({ min: 0, max: 65535 }),
    })
    .map((p) => publishPacket(p.topic, p.payload, { qos: p.qos, retain: p.retain, packetId: p.id })),
  fc
    .tuple(topic, fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<0 | 1 | 2>, fc.integer({ min: 0, max: 65535 }))
    .map(([t, qos, id]) => subscribePacket(t, qos, id)),
  fc.integer({ min: 0, max: 65535 }).map((id) => pubrelPacket(id)),
  // A fixed header with any type/flags and a declared length that does not match what follows.
  fc
    .tuple(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 268_435_455 }),
      fc.uint8Array({ maxLength: 64 }),
    )
    .map(([first, length, body]) =>
      Buffer.concat([Buffer.from([first]), remainingLength(length), Buffer.from(body)]),
    ),
  // A remaining length that is not a valid varint (5 continuation bytes).
  fc.integer({ min: 0, max: 255 }).map((first) => Buffer.from([first, 0xff, 0xff, 0xff, 0xff, 0x7f])),
  fc.uint8Array({ minLength: 1, maxLength: 256 }).map((bytes) => Buffer.from(bytes)),
);

const session = fc.record({
  connect: fc.oneof(
    fc.constant(undefined),
    fc.constantFrom('fz', 'other', '', 'bad/id').map((id) => connectPacket(id)),
    fc.uint8Array({ maxLength: 16 }).map((bytes) => connectPacket(Buffer.from(bytes).toString('latin1'))),
  ),
  packets: fc.array(packet, { maxLength: 8 }),
});

/** Sends the session's bytes and waits until the broker closed the connection or a short quiet time passed. */
async function play(bytes: Buffer[]): Promise<void> {
  const connection = await rawConnect(port);
  for (const chunk of bytes) if (!(await connection.write(chunk))) break;
  // Give the broker a moment to act on the bytes (answering or closing), then hang up either way. A real
  // wait on purpose: the bytes are random, so a cut-off packet leaves the broker waiting for more and no
  // message can prove it has read everything.
  await Promise.race([connection.closed, new Promise((resolve) => setTimeout(resolve, 20))]);
  connection.destroy();
  await connection.closed;
}

describe('MQTT fuzz', () => {
  it(
    `${RUNS} fuzzed sessions: the service stays up, memory bounded, devices still served`,
    async () => {
      const before = await service.memory();
      await fc.assert(
        fc.asyncProperty(session, async ({ connect, packets }) => {
          await play([...(connect === undefined ? [] : [connect]), ...packets]);
          expect(service.alive()).toBe(true);
        }),
        { numRuns: RUNS },
      );
      const after = await service.memory();
      expect(after.peak - before.current).toBeLessThan(150 * MB);
      const device = await connectTestClient(service.mqttUrl, { clientId: 'after-fuzz' });
      try {
        await device.subscribe('$aws/things/after-fuzz/shadow/update/accepted', 1);
        await device.publish('$aws/things/after-fuzz/shadow/update', { state: { reported: { ok: 1 } } }, 1);
        expect((await device.take('$aws/things/after-fuzz/shadow/update/accepted')).json).toMatchObject({
          state: { reported: { ok: 1 } },
        });
      } finally {
        await device.close();
      }
    },
    fuzzTimeoutMs(RUNS),
  );
});
