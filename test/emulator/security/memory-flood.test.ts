/**
 * Memory stays bounded when unauthenticated sockets declare huge MQTT packets: the service runs in its own
 * process and reports its peak RSS (`maxRSS`), which must grow by less than a generous bound while many sockets
 * stream a CONNECT declared at 255 MB (a bounded amount each, on loopback). No timing assertions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTestClient } from '../mqtt-test-client.js';
import { rawConnect, remainingLength } from './raw-mqtt.js';
import { type ServiceProcess, startServiceProcess } from './service-process.js';

const SOCKETS = 40;
const BYTES_PER_SOCKET = 8 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x41);
const MB = 1024 * 1024;

let service: ServiceProcess;

beforeAll(async () => {
  service = await startServiceProcess();
}, 30_000);

afterAll(async () => {
  await service.stop();
});

/**
 * Streams a CONNECT declared at 255 MB until `limit` bytes were written or the broker closed the socket; the
 * socket stays open (all of them are open at once when the memory is read).
 */
async function floodOne(port: number, limit: number): Promise<{ written: number; destroy: () => void }> {
  const connection = await rawConnect(port);
  let written = 0;
  if (await connection.write(Buffer.concat([Buffer.from([0x10]), remainingLength(268_435_455)]))) {
    while (written < limit) {
      if (!(await connection.write(CHUNK))) break;
      written += CHUNK.length;
    }
  }
  return { written, destroy: () => connection.destroy() };
}

describe('oversized-packet flood', () => {
  it(`${SOCKETS} sockets declaring 255 MB CONNECTs grow the service by less than 150 MB, and it keeps serving`, async () => {
    const port = Number(new URL(service.mqttUrl).port);
    const before = await service.memory();
    const floods = await Promise.all(Array.from({ length: SOCKETS }, () => floodOne(port, BYTES_PER_SOCKET)));
    const after = await service.memory();
    for (const flood of floods) flood.destroy();
    const written = floods.reduce((sum, flood) => sum + flood.written, 0);
    const growth = after.peak - before.current;
    // Reported for the issue (peak RSS before and after the fix).
    console.log(
      `flood: ${SOCKETS} sockets, ${(written / MB).toFixed(0)} MB accepted by the service; ` +
        `RSS ${(before.current / MB).toFixed(0)} MB before, peak ${(after.peak / MB).toFixed(0)} MB, growth ${(growth / MB).toFixed(0)} MB`,
    );
    expect(growth).toBeLessThan(150 * MB);

    const device = await connectTestClient(service.mqttUrl, { clientId: 'after-flood' });
    try {
      await device.subscribe('$aws/things/after-flood/shadow/update/accepted', 1);
      await device.publish('$aws/things/after-flood/shadow/update', { state: { reported: { ok: true } } }, 1);
      expect((await device.take('$aws/things/after-flood/shadow/update/accepted')).json).toMatchObject({
        version: 1,
      });
    } finally {
      await device.close();
    }
  }, 120_000);
});
