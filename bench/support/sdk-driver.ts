/**
 * A child process for the service suite: one real `IoTDataPlaneClient` sending UpdateThingShadow calls to the
 * local service, so the SDK's own CPU cost (middleware, signing) runs outside the service's process, as it does
 * for real clients. Started by `node:child_process` `fork` with `--import tsx`; driven over IPC:
 *
 * - parent → child `{ type: 'start' }`: keep `concurrency` updates in flight (on distinct things) until paused;
 * - parent → child `{ type: 'pause' }`: stop issuing new updates (those in flight still complete and count);
 * - child → parent `{ type: 'ready' }`: loaded, listening for commands;
 * - child → parent `{ type: 'count', done }`: updates completed since the previous report, sent every
 *   `reportEvery` completions (batched: one IPC message per completion would cost the service's process more
 *   than the updates themselves);
 * - child → parent `{ type: 'error', message }`: an update failed; the child stops.
 *
 * Settings come from the environment variable `SHADOW_BENCH_DRIVER` (JSON: endpoint, id, concurrency, things,
 * reportEvery). The child leaves when its IPC channel closes.
 */
import { IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { benchAgent } from './bench-http.js';

/** What the parent passes in `SHADOW_BENCH_DRIVER`. */
export interface SdkDriverSettings {
  endpoint: string;
  id: number;
  concurrency: number;
  things: number;
  reportEvery: number;
}

/** Messages the parent sends. */
export type SdkDriverCommand = { type: 'start' } | { type: 'pause' };

/** Messages the child sends. */
export type SdkDriverReport =
  | { type: 'ready' }
  | { type: 'count'; done: number }
  | { type: 'error'; message: string };

const given = JSON.parse(process.env.SHADOW_BENCH_DRIVER ?? 'null') as SdkDriverSettings | null;
if (given === null || process.send === undefined)
  throw new Error('sdk-driver must be forked with SHADOW_BENCH_DRIVER set');
const settings: SdkDriverSettings = given;
const rawSend = process.send.bind(process);
/** Sends to the parent unless it has gone (a report racing the parent's exit is dropped, not an error). */
const send = (report: SdkDriverReport) => {
  if (process.connected) rawSend(report, undefined, {}, () => {});
};

const client = new IoTDataPlaneClient({
  endpoint: settings.endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  maxAttempts: 1,
  requestHandler: new NodeHttpHandler({ httpAgent: benchAgent(settings.concurrency) }),
});

let running = false;
let active = 0;
let next = 0;
let unreported = 0;
let failed = false;

async function lane(): Promise<void> {
  active++;
  try {
    while (running && !failed) {
      const n = next++;
      const payload = new TextEncoder().encode(`{"state":{"reported":{"n":${n},"on":true,"mode":"eco"}}}`);
      await client.send(
        new UpdateThingShadowCommand({
          thingName: `p${settings.id}-${n % settings.things}`,
          payload,
        }),
      );
      if (++unreported >= settings.reportEvery) {
        send({ type: 'count', done: unreported });
        unreported = 0;
      }
    }
  } catch (error) {
    failed = true;
    send({ type: 'error', message: String(error) });
  } finally {
    active--;
  }
}

process.on('message', (command: SdkDriverCommand) => {
  if (command.type === 'pause') {
    running = false;
    return;
  }
  if (running || failed) return;
  running = true;
  // Lanes still draining from a pause keep going; only the missing ones are started.
  for (let i = active; i < settings.concurrency; i++) void lane();
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
