/**
 * MQTT packet size limits at the embedded broker: AWS IoT's 128 KB message size, a small limit before
 * authentication, and oversized packets cut while they arrive instead of being buffered whole.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ShadowService, startShadowService } from '../../../src/emulator/index.js';
import { DEFAULT_PACKET_LIMITS, resolvePacketLimits } from '../../../src/emulator/packet-limits.js';
import { ShadowOptionsError } from '../../../src/errors.js';
import { connectTestClient, type TestClient } from '../mqtt-test-client.js';
import { connectPacket, publishPacket, type RawConnection, rawConnect, remainingLength } from './raw-mqtt.js';

const CONNACK_OK = Buffer.from([0x20, 2, 0, 0]);
let service: ShadowService;
let port: number;
let watcher: TestClient;

beforeEach(async () => {
  service = await startShadowService({});
  port = Number(new URL(service.mqttUrl).port);
  watcher = await connectTestClient(service.mqttUrl, { clientId: 'watcher' });
  await watcher.subscribe(['my/things/#', '$aws/things/big/shadow/update/accepted'], 1);
});

afterEach(async () => {
  await watcher.close();
  await service.close();
});

async function connected(clientId: string): Promise<RawConnection> {
  const connection = await rawConnect(port);
  await connection.write(connectPacket(clientId));
  expect((await connection.bytes(4)).subarray(0, 4)).toEqual(CONNACK_OK);
  return connection;
}

/** Everything the watcher received on `topic` before a marker published after the attack. */
async function deliveredBefore(marker: string): Promise<string[]> {
  await watcher.publish(marker, 'end', 1);
  await watcher.take(marker);
  return watcher.received.filter((m) => m.topic !== marker).map((m) => `${m.topic}:${m.payload.length}`);
}

describe("AWS IoT's 128 KB message size", () => {
  it('delivers a 128 KiB payload and closes the connection of a client that sends 128 KiB + 1', async () => {
    const limit = DEFAULT_PACKET_LIMITS.maxPublishPayloadBytes;
    const device = await connected('sender');
    await device.write(publishPacket('my/things/sender/ok', Buffer.alloc(limit, 1)));
    await device.write(publishPacket('my/things/sender/too-big', Buffer.alloc(limit + 1, 1)));
    await device.closed;
    expect(await deliveredBefore('my/things/marker')).toEqual([`my/things/sender/ok:${limit}`]);
    expect(service.mqtt.stats().broker?.oversizedPackets).toBe(1);
  });

  it('cuts a PUBLISH declared at 200 MB to /update while it arrives, before it is buffered', async () => {
    const device = await connected('big');
    const topic = Buffer.from('$aws/things/big/shadow/update');
    const header = Buffer.concat([
      Buffer.from([0x30]),
      remainingLength(200 * 1024 * 1024),
      Buffer.from([0, topic.length]),
      topic,
    ]);
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    if (await device.write(header)) {
      // At most 32 MB: the broker must have closed the connection long before.
      while (written < 32 * 1024 * 1024 && (await device.write(chunk))) written += chunk.length;
    }
    await device.closed;
    expect(written).toBeLessThan(32 * 1024 * 1024);
    expect(await deliveredBefore('my/things/marker')).toEqual([]);
  });
});

describe('before authentication', () => {
  it(`closes a connection whose CONNECT is over ${DEFAULT_PACKET_LIMITS.maxConnectBytes} bytes, without a CONNACK`, async () => {
    const connection = await rawConnect(port);
    await connection.write(
      connectPacket('willful', {
        will: {
          topic: 'my/things/willful/gone',
          payload: Buffer.alloc(DEFAULT_PACKET_LIMITS.maxConnectBytes),
        },
      }),
    );
    await connection.closed;
    expect(connection.received()).toEqual(Buffer.alloc(0));
  });

  it('closes a connection that declares a 255 MB CONNECT after its first bytes', async () => {
    const connection = await rawConnect(port);
    await connection.write(Buffer.concat([Buffer.from([0x10]), remainingLength(268_435_455)]));
    let written = 0;
    while (written < 16 * 1024 * 1024 && (await connection.write(Buffer.alloc(64 * 1024))))
      written += 64 * 1024;
    await connection.closed;
    expect(written).toBeLessThan(16 * 1024 * 1024);
  });

  it('accepts a CONNECT with a will within the limit', async () => {
    const connection = await rawConnect(port);
    await connection.write(
      connectPacket('willing', { will: { topic: 'my/things/willing/gone', payload: Buffer.alloc(4000) } }),
    );
    expect((await connection.bytes(4)).subarray(0, 4)).toEqual(CONNACK_OK);
    connection.destroy();
  });
});

describe('resolvePacketLimits', () => {
  it('rejects unknown keys and values that are not positive integers', () => {
    expect(() => resolvePacketLimits({ maxConect: 1 } as never)).toThrow(ShadowOptionsError);
    expect(() => resolvePacketLimits({ maxConnectBytes: 0 })).toThrow(/maxConnectBytes must be an integer/);
    expect(resolvePacketLimits({ maxConnectBytes: 100 })).toEqual({
      ...DEFAULT_PACKET_LIMITS,
      maxConnectBytes: 100,
    });
  });
});
