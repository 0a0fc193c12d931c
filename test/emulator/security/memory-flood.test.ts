/**
 * Memory stays bounded when unauthenticated sockets declare huge MQTT packets: the service runs in its own
 * process and reports its peak RSS (`maxRSS`), which must grow by less than a generous bound while many sockets
 * stream a CONNECT declared at 255 MB (a bounded amount each, on loopback). No timing assertions.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTestClient } from '../mqtt-test-client.js';
import { rawConnect, remainingLength } from './raw-mqtt.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/service-process.ts', import.meta.url));
const SOCKETS = 40;
const BYTES_PER_SOCKET = 8 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x41);
const MB = 1024 * 1024;

let child: ChildProcess;
let mqttUrl: string;
const lines: string[] = [];
const lineWaiters: ((line: string) => void)[] = [];

function nextLine(): Promise<string> {
  const line = lines.shift();
  if (line !== undefined) return Promise.resolve(line);
  return new Promise((resolve) => lineWaiters.push(resolve));
}

async function memory(): Promise<{ peak: number; current: number }> {
  child.stdin?.write('?\n');
  const [peak, current] = (await nextLine()).split(' ').map(Number) as [number, number];
  return { peak, current };
}

beforeAll(async () => {
  child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buffered = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buffered += chunk;
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      const waiter = lineWaiters.shift();
      if (waiter !== undefined) waiter(line);
      else lines.push(line);
    }
  });
  mqttUrl = (await nextLine()).split(' ')[1] as string;
}, 30_000);

afterAll(async () => {
  child.stdin?.end();
  await new Promise((resolve) => child.once('exit', resolve));
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
    const port = Number(new URL(mqttUrl).port);
    const before = await memory();
    const floods = await Promise.all(Array.from({ length: SOCKETS }, () => floodOne(port, BYTES_PER_SOCKET)));
    const after = await memory();
    for (const flood of floods) flood.destroy();
    const written = floods.map((flood) => flood.written);
    const growth = after.peak - before.current;
    // Reported for the issue (peak RSS before and after the fix).
    console.log(
      `flood: ${SOCKETS} sockets, ${(written.reduce((a, b) => a + b, 0) / MB).toFixed(0)} MB accepted by the service; ` +
        `RSS ${(before.current / MB).toFixed(0)} MB before, peak ${(after.peak / MB).toFixed(0)} MB, growth ${(growth / MB).toFixed(0)} MB`,
    );
    expect(growth).toBeLessThan(150 * MB);

    const device = await connectTestClient(mqttUrl, { clientId: 'after-flood' });
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
