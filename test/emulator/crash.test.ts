/**
 * Crash safety: the service runs in a child process (the real CLI), takes concurrent updates over HTTP, is
 * killed with SIGKILL in the middle of the load, and restarted on the same data directory. Every update it
 * acknowledged must be there; an update in flight at the kill may or may not be, but never half.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli, waitForEndpoints } from './cli-process.js';

const dir = mkdtempSync(join(tmpdir(), 'shadow-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const THINGS = 40;
/** Acknowledged updates per round before the kill. */
const ACKS_BEFORE_KILL = 150;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sdk(endpoint: string): IoTDataPlaneClient {
  return new IoTDataPlaneClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
}

/**
 * One writer per thing: sequential updates n = start+1, start+2, ... (each also writes a 300-byte filler so
 * records span several pages). Returns the last n the service acknowledged. Stops at the first transport error.
 */
async function writer(
  client: IoTDataPlaneClient,
  thingName: string,
  start: number,
  stop: { killed: boolean; acked: number; loaded: () => void },
): Promise<number> {
  let acked = start;
  for (let n = start + 1; !stop.killed; ) {
    try {
      await client.send(
        new UpdateThingShadowCommand({
          thingName,
          payload: new TextEncoder().encode(
            JSON.stringify({ state: { reported: { n, filler: 'f'.repeat(300) } } }),
          ),
        }),
      );
      acked = n;
      stop.acked++;
      if (stop.acked === ACKS_BEFORE_KILL) stop.loaded();
      n++;
    } catch (error) {
      if ((error as { name?: string }).name === 'ThrottlingException') {
        // A real back-off: the service's rate limiter runs on the wall clock of another process (end to end).
        await sleep(25);
        continue;
      }
      return acked; // the service is gone
    }
  }
  return acked;
}

async function readAll(
  endpoint: string,
): Promise<Map<string, { n: number; version: number; filler: string }>> {
  const client = sdk(endpoint);
  const found = new Map<string, { n: number; version: number; filler: string }>();
  for (let t = 0; t < THINGS; t++) {
    const thingName = `thing-${t}`;
    try {
      const got = await client.send(new GetThingShadowCommand({ thingName }));
      const doc = JSON.parse(new TextDecoder().decode(got.payload)) as {
        version: number;
        state: { reported: { n: number; filler: string } };
      };
      found.set(thingName, {
        n: doc.state.reported.n,
        version: doc.version,
        filler: doc.state.reported.filler,
      });
    } catch (error) {
      if ((error as { name?: string }).name !== 'ResourceNotFoundException') throw error;
    }
  }
  client.destroy();
  return found;
}

describe('crash safety', () => {
  it('loses no acknowledged update across SIGKILL under load, twice in a row', async () => {
    const dataDir = join(dir, 'data');
    let start = new Map<string, number>();
    let totalAcked = 0;
    for (let round = 0; round < 2; round++) {
      const cli = spawnCli(['serve', '--data-dir', dataDir]);
      const { httpEndpoint } = await waitForEndpoints(cli);
      // The state recovered from the previous round is the starting point of this one.
      const recovered = await readAll(httpEndpoint);
      for (const [thing, n] of start) {
        const doc = recovered.get(thing);
        expect(doc, `${thing} survived the restart`).toBeDefined();
        expect(doc?.n).toBe(n);
        expect(doc?.version).toBe(n);
      }
      start = new Map([...recovered].map(([thing, doc]) => [thing, doc.n]));

      const clients = Array.from({ length: 4 }, () => sdk(httpEndpoint));
      let loaded: () => void = () => {};
      const loadIsReal = new Promise<void>((resolve) => {
        loaded = resolve;
      });
      const stop = { killed: false, acked: 0, loaded };
      const writers = Array.from({ length: THINGS }, (_, t) =>
        writer(
          clients[t % clients.length] as IoTDataPlaneClient,
          `thing-${t}`,
          start.get(`thing-${t}`) ?? 0,
          stop,
        ),
      );
      // Kill once the load is real (a count, not a time: the machine may be busy), or after 20 s at most.
      let guard: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([loadIsReal, new Promise((resolve) => (guard = setTimeout(resolve, 20_000)))]);
      clearTimeout(guard);
      cli.child.kill('SIGKILL');
      stop.killed = true;
      const acked = await Promise.all(writers);
      expect(await cli.exited).toBe('SIGKILL');
      for (const c of clients) c.destroy();

      const restarted = spawnCli(['serve', '--data-dir', dataDir]);
      const { httpEndpoint: after } = await waitForEndpoints(restarted);
      const docs = await readAll(after);
      restarted.child.kill('SIGTERM');
      expect(await restarted.exited).toBe(0);

      for (let t = 0; t < THINGS; t++) {
        const thingName = `thing-${t}`;
        const ackedN = acked[t] as number;
        totalAcked += ackedN - (start.get(thingName) ?? 0);
        const doc = docs.get(thingName);
        if (ackedN === 0) continue;
        expect(doc, `${thingName} acknowledged n=${ackedN}`).toBeDefined();
        // Acknowledged => present. The one request in flight at the kill may have been made durable too.
        expect([ackedN, ackedN + 1]).toContain(doc?.n);
        // Never half-written: versions count the accepted updates, the document is whole.
        expect(doc?.version).toBe(doc?.n);
        expect(doc?.filler).toBe('f'.repeat(300));
      }
      start = new Map([...docs].map(([thing, doc]) => [thing, doc.n]));
    }
    // The load was real: at least ACKS_BEFORE_KILL acknowledged updates per round.
    expect(totalAcked).toBeGreaterThanOrEqual(2 * ACKS_BEFORE_KILL);
  });
});
