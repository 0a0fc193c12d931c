/**
 * The device side of the fleet suite, run as a child process (`child_process.fork`, IPC): connects N devices to
 * the service's broker, either shadow-sync device agents or hand-written mqtt.js devices (the peer), measures
 * their memory, then waits for fleet-wide desired changes to converge.
 *
 * It is a separate process from the service because one process may hold only 20,000 open files here, and
 * 10,000 devices plus the broker's side of their connections need more; the split also keeps the memory
 * figures of the devices apart from the broker's.
 *
 * Protocol (parent → child → parent):
 * - `{ type: 'start', url, size, kind, prefix }` → `{ type: 'ready', heapPerDevice, rssPerDevice, connectMs }`
 * - `{ type: 'arm', value }` → `{ type: 'armed' }`; the parent then sets `desired.targetTemp = value` on every
 *   shadow → `{ type: 'converged', ms, messages }` once every device has applied it and its report was accepted
 * - `{ type: 'close' }` → `{ type: 'closed' }`, then the process exits
 */
import type { MqttClient } from 'mqtt';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import { buildBenchClient } from './bench-mqtt.js';

/** What a fleet child is asked to do. */
export type FleetCommand =
  | { type: 'start'; url: string; size: number; kind: 'agents' | 'bare'; prefix: string }
  | { type: 'arm'; value: number }
  | { type: 'close' };

/** What a fleet child answers. */
export type FleetAnswer =
  | { type: 'ready'; heapPerDevice: number; rssPerDevice: number; connectMs: number }
  | { type: 'armed' }
  | { type: 'converged'; ms: number; messages: number }
  | { type: 'closed' }
  | { type: 'failed'; error: string };

const BATCH = 250;

const send = (answer: FleetAnswer) => process.send?.(answer);
const gc = () => (globalThis as { gc?: () => void }).gc?.();

const clients: MqttClient[] = [];
const agents: DeviceAgent[] = [];
let expected = Number.NaN;
let remaining = 0;
let counting = false;
let messages = 0;
let armedAt = 0;
/** The value each device last confirmed, so a device counts once per change. */
let confirmed: Float64Array = new Float64Array(0);

function confirm(index: number, value: unknown): void {
  if (value !== expected || confirmed[index] === expected) return;
  confirmed[index] = expected;
  remaining--;
  if (remaining === 0) {
    counting = false;
    send({ type: 'converged', ms: performance.now() - armedAt, messages });
  }
}

function connected(client: MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
}

function countMessages(client: MqttClient): void {
  const count = (packet: { cmd: string }) => {
    if (counting && packet.cmd === 'publish') messages++;
  };
  client.on('packetsend', count);
  client.on('packetreceive', count);
}

/** A shadow-sync device agent that applies every delta as asked. */
async function startAgent(url: string, thingName: string, index: number): Promise<void> {
  const client = buildBenchClient(url, thingName);
  countMessages(client);
  clients.push(client);
  const agent = await createDeviceAgent({ thingName, mqtt: client, onDelta: (delta) => delta });
  agent.on('synced', (event) => confirm(index, event.reported?.targetTemp));
  agents.push(agent);
  await agent.whenSynced();
}

/**
 * The peer: what a device written directly on mqtt.js needs at least to follow desired changes. It subscribes
 * to its delta and update/accepted topics, reports each delta's values back, and is done when that report is
 * accepted. No read on connect, no ordering by version, no retries, no offline handling.
 */
async function startBare(url: string, thingName: string, index: number): Promise<void> {
  const client = buildBenchClient(url, thingName);
  countMessages(client);
  clients.push(client);
  const base = `$aws/things/${thingName}/shadow/update`;
  client.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString('utf8')) as {
      state?: { targetTemp?: unknown; reported?: { targetTemp?: unknown } };
    };
    if (topic === `${base}/delta`) {
      client.publish(base, JSON.stringify({ state: { reported: body.state } }), { qos: 1 });
    } else if (topic === `${base}/accepted`) {
      confirm(index, body.state?.reported?.targetTemp);
    }
  });
  await connected(client);
  await client.subscribeAsync([`${base}/delta`, `${base}/accepted`], { qos: 1 });
}

async function start(command: Extract<FleetCommand, { type: 'start' }>): Promise<void> {
  gc();
  gc();
  const before = process.memoryUsage();
  const t0 = performance.now();
  const starter = command.kind === 'agents' ? startAgent : startBare;
  for (let first = 0; first < command.size; first += BATCH) {
    const batch: Promise<void>[] = [];
    for (let i = first; i < Math.min(command.size, first + BATCH); i++) {
      batch.push(starter(command.url, `${command.prefix}-${i}`, i));
    }
    await Promise.all(batch);
  }
  const connectMs = performance.now() - t0;
  confirmed = new Float64Array(command.size).fill(Number.NaN);
  gc();
  gc();
  const after = process.memoryUsage();
  send({
    type: 'ready',
    heapPerDevice: (after.heapUsed - before.heapUsed) / command.size,
    rssPerDevice: (after.rss - before.rss) / command.size,
    connectMs,
  });
}

async function close(): Promise<void> {
  await Promise.all(agents.map((agent) => agent.close()));
  await Promise.all(clients.map((client) => client.endAsync(true)));
  send({ type: 'closed' });
  process.exit(0);
}

process.on('message', (command: FleetCommand) => {
  const done = (() => {
    switch (command.type) {
      case 'start':
        return start(command);
      case 'arm':
        expected = command.value;
        remaining = confirmed.length;
        messages = 0;
        counting = true;
        armedAt = performance.now();
        send({ type: 'armed' });
        return Promise.resolve();
      case 'close':
        return close();
    }
  })();
  done.catch((error: unknown) => {
    send({ type: 'failed', error: String((error as Error)?.stack ?? error) });
    process.exit(1);
  });
});
