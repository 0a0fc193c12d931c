/**
 * Local service throughput, over HTTP and over MQTT.
 *
 * HTTP: UpdateThingShadow calls per second through the local service's data plane with the real
 * AWS SDK client (`IoTDataPlaneClient`, keep-alive agent, 64 requests in flight over 256 things), in memory and
 * with a data directory (every acknowledged update fsynced, group commit), and the same updates from a plain
 * node:http client (the service's own cost without the SDK's), next to the floor: a bare node:http
 * server answering the same POSTs with a fixed body, driven by the same agent without the SDK.
 * The SDK's own CPU cost (middleware, signing: about 10x the service's per call) dominates when client and
 * service share one process, so the SDK is also measured from 2 separate client processes (each its own client,
 * 32 in flight), sustained, with the service alone in this process: the deployment the goal is about.
 *
 * Issue goal: at least 5,000 updates/s over HTTP on the 2-core machine (absolute numbers in the results table).
 *
 * MQTT: shadow updates per second through the local service's MQTT side (mqtt.js devices → embedded aedes → MQTT
 * front → engine → `update/accepted` back to the device, QoS 1 requests), next to the raw embedded broker's QoS 1
 * messages per second (publish → delivered to a subscriber) as the floor. Issue goal: at least 10,000 shadow
 * updates/s over MQTT.
 * The per-thing quotas are raised: AWS's 20 requests/s per thing would otherwise be the only thing measured.
 * Servers and sockets are unref'd and a keep-alive timer, refreshed by every call, holds the
 * process open only while the suite is being measured.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { type Agent, createServer, request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { MqttClient } from 'mqtt';
import { startBroker } from '../../src/emulator/broker.js';
import { startHttpFront } from '../../src/emulator/http-front.js';
import { startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import type { BenchGroup, BenchSuite, GroupResult } from '../measure.js';
import { benchAgent } from '../support/bench-http.js';
import { connectBenchClient } from '../support/bench-mqtt.js';
import type { SdkDriverCommand, SdkDriverReport, SdkDriverSettings } from '../support/sdk-driver.js';
import { formatRatio } from '../svg-chart.js';

const CONCURRENCY = 64;
const THINGS = 256;
const BATCH = 200;
const DEVICES = 4;
const PER_DEVICE = 250;
const MQTT_BATCH = DEVICES * PER_DEVICE;
const RAW_BROKER = 'aedes raw QoS 1 publish→deliver (floor)';
const SHADOW_MQTT = 'shadow update over MQTT (QoS 1 request → update/accepted)';
const RAW = 'node:http POST round trip (floor)';
const PLAIN = 'UpdateThingShadow via plain node:http client, in memory';
const MEMORY = 'UpdateThingShadow via AWS SDK, in memory';
const DURABLE = 'UpdateThingShadow via AWS SDK, durable (fsync, group commit)';
const WORKERS = 2;
const THREADED = `UpdateThingShadow via AWS SDK in ${WORKERS} worker threads, in memory`;
const PROCESSES = 2;
const MULTI = `UpdateThingShadow via AWS SDK in ${PROCESSES} client processes, in memory (sustained)`;
/** Milliseconds the client processes run before the first timed call: their SDK code needs 2-3 s of JIT warm-up. */
const PROCESS_WARMUP_MS = 3000;
/** Pause the client processes when no call of their task has come for this long (another task is running). */
const PROCESS_IDLE_MS = 5;
const DRIVER = fileURLToPath(new URL('../support/sdk-driver.ts', import.meta.url));
const children: ChildProcess[] = [];

/**
 * A worker thread that owns one SDK client and runs the updates it is asked for, so that the SDK's own CPU cost
 * (signing, middleware: about 10x the service's cost per call) is spread like separate client processes.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { Agent } = require('node:http');
const { createConnection } = require('node:net');
const { IoTDataPlaneClient, UpdateThingShadowCommand } = require('@aws-sdk/client-iot-data-plane');
const { NodeHttpHandler } = require('@smithy/node-http-handler');
const agent = new Agent({ keepAlive: true, maxSockets: workerData.concurrency });
agent.createConnection = (options, callback) => {
  const socket = createConnection(options, callback);
  socket.setNoDelay(true);
  return socket;
};
const client = new IoTDataPlaneClient({
  endpoint: workerData.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  maxAttempts: 1, requestHandler: new NodeHttpHandler({ httpAgent: agent }),
});
let n = 0;
parentPort.on('message', async (total) => {
  let next = 0;
  const one = async () => {
    while (next < total) {
      const i = next++;
      const payload = new TextEncoder().encode('{"state":{"reported":{"n":' + n++ + ',"on":true,"mode":"eco"}}}');
      await client.send(new UpdateThingShadowCommand({ thingName: 'w' + workerData.id + '-' + (i % 128), payload }));
    }
  };
  try {
    await Promise.all(Array.from({ length: workerData.concurrency }, one));
    parentPort.postMessage('done');
  } catch (error) {
    parentPort.postMessage(String(error));
  }
});
`;

const keepAlive = setTimeout(() => {}, 5000);

/** Runs `total` calls of `one`, `CONCURRENCY` at a time. */
async function pool(total: number, one: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) await one(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

const body = (n: number) =>
  new TextEncoder().encode(`{"state":{"reported":{"n":${n},"on":true,"mode":"eco"}}}`);

/** POSTs update `n` for thing `i % THINGS` to `port` through `agent`, without the SDK. */
function poster(port: number, agent: Agent) {
  let n = 0;
  return (i: number) =>
    new Promise<void>((resolve, reject) => {
      const payload = body(n++);
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/things/bench-${i % THINGS}/shadow`,
          agent,
          headers: { 'content-length': payload.length },
        },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
}

async function rawTask() {
  const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = `{"state":${Buffer.concat(chunks).toString('utf8').slice(9, -1)},"version":1,"timestamp":1}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  server.on('connection', (s: Socket) => s.unref());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  const { port } = server.address() as AddressInfo;
  const post = poster(port, benchAgent(CONCURRENCY, true));
  return async () => {
    keepAlive.refresh();
    await pool(BATCH, post);
    return BATCH;
  };
}

async function plainTask() {
  const engine = createShadowEngine({
    limits: { requestsPerSecondPerThing: 1_000_000_000, maxInFlightPerThing: 1_000_000 },
  });
  const front = await startHttpFront(engine);
  front.unref();
  const post = poster(front.port, benchAgent(CONCURRENCY, true));
  return async () => {
    keepAlive.refresh();
    await pool(BATCH, post);
    return BATCH;
  };
}

async function sdkTask(dataDir: string | undefined) {
  const engine = createShadowEngine({
    limits: { requestsPerSecondPerThing: 1_000_000_000, maxInFlightPerThing: 1_000_000 },
    ...(dataDir === undefined ? {} : { dataDir }),
  });
  const front = await startHttpFront(engine);
  front.unref();
  const client = new IoTDataPlaneClient({
    endpoint: front.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpAgent: benchAgent(CONCURRENCY, true) }),
  });
  let n = 0;
  // Correctness check before timing: an update is accepted and answered with its version.
  const first = await client.send(new UpdateThingShadowCommand({ thingName: 'check', payload: body(0) }));
  if (!new TextDecoder().decode(first.payload).includes('"version":1'))
    throw new Error('service answered wrongly');
  return async () => {
    keepAlive.refresh();
    await pool(BATCH, (i) =>
      client.send(new UpdateThingShadowCommand({ thingName: `bench-${i % THINGS}`, payload: body(n++) })),
    );
    return BATCH;
  };
}

async function threadedTask() {
  const engine = createShadowEngine({
    limits: { requestsPerSecondPerThing: 1_000_000_000, maxInFlightPerThing: 1_000_000 },
  });
  const front = await startHttpFront(engine);
  front.unref();
  const workers = Array.from({ length: WORKERS }, (_, id) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { endpoint: front.endpoint, id, concurrency: CONCURRENCY / WORKERS },
    });
    worker.unref();
    return worker;
  });
  const run = (total: number) =>
    Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            worker.once('message', (answer: string) =>
              answer === 'done' ? resolve() : reject(new Error(answer)),
            );
            worker.postMessage(total);
          }),
      ),
    );
  await run(WORKERS); // warm the clients and check they work
  return async () => {
    keepAlive.refresh();
    await run(BATCH / WORKERS);
    return BATCH;
  };
}

/**
 * The SDK in separate client processes ({@link PROCESSES} forks of `bench/support/sdk-driver.ts`, each with its
 * own `IoTDataPlaneClient`, keep-alive agent with Nagle off, `maxAttempts: 1`, half of the {@link CONCURRENCY}
 * updates in flight, on its own 128 things), against the service in this process: real clients are separate
 * processes, and the SDK's CPU cost per call is about 10x the service's, so one process holding both mostly
 * measures the SDK.
 *
 * The processes keep their updates in flight without stopping while this task is being timed: a call returns
 * once {@link BATCH} more updates have completed (counts come over IPC, batched), so it measures the sustained
 * rate, not a start-and-drain batch. They pause when no call has come for {@link PROCESS_IDLE_MS} ms, so they do
 * not load the machine while other tasks are timed.
 */
async function processTask() {
  const engine = createShadowEngine({
    limits: { requestsPerSecondPerThing: 1_000_000_000, maxInFlightPerThing: 1_000_000 },
  });
  const front = await startHttpFront(engine);
  front.unref();
  let completed = 0;
  let failure: Error | undefined;
  let waiter: { target: number; resolve: () => void; reject: (error: Error) => void } | undefined;
  let breakOff: (error: Error) => void = () => {};
  // Rejects on the first failure, so waiting for the processes to load cannot hang on one that died.
  const broken = new Promise<never>((_, reject) => (breakOff = reject));
  broken.catch(() => {});
  const fail = (error: Error) => {
    failure ??= error;
    breakOff(error);
    waiter?.reject(error);
    waiter = undefined;
  };
  const own: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  for (let id = 0; id < PROCESSES; id++) {
    const settings: SdkDriverSettings = {
      endpoint: front.endpoint,
      id,
      concurrency: CONCURRENCY / PROCESSES,
      things: 128,
      reportEvery: 10,
    };
    const child = fork(DRIVER, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, SHADOW_BENCH_DRIVER: JSON.stringify(settings) },
    });
    let loaded: () => void = () => {};
    ready.push(new Promise<void>((resolve) => (loaded = resolve)));
    child.on('message', (report: SdkDriverReport) => {
      if (report.type === 'ready') return loaded();
      if (report.type === 'error') return fail(new Error(`client process ${id}: ${report.message}`));
      completed += report.done;
      if (waiter !== undefined && completed >= waiter.target) {
        const { resolve } = waiter;
        waiter = undefined;
        resolve();
      }
    });
    child.on('exit', (code) => fail(new Error(`client process ${id} exited with code ${String(code)}`)));
    child.unref();
    child.channel?.unref();
    own.push(child);
    children.push(child);
  }
  let running = false;
  const command = (message: SdkDriverCommand) => {
    running = message.type === 'start';
    for (const child of own) child.send(message);
  };
  const until = (target: number) =>
    new Promise<void>((resolve, reject) => {
      if (failure !== undefined) return reject(failure);
      if (completed >= target) return resolve();
      waiter = { target, resolve, reject };
    });
  // Warm the client processes' JIT, then check the updates landed: the last thing of each process answers
  // with a reported document from the bench and a version past 1.
  keepAlive.refresh();
  await Promise.race([Promise.all(ready), broken]);
  command({ type: 'start' });
  const warmUntil = performance.now() + PROCESS_WARMUP_MS;
  while (performance.now() < warmUntil) await until(completed + BATCH);
  command({ type: 'pause' });
  const check = new IoTDataPlaneClient({
    endpoint: front.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpAgent: benchAgent(1, true) }),
  });
  for (let id = 0; id < PROCESSES; id++) {
    const shadow = await check.send(new GetThingShadowCommand({ thingName: `p${id}-127` }));
    const document = JSON.parse(new TextDecoder().decode(shadow.payload)) as {
      version: number;
      state: { reported?: { mode?: string } };
    };
    if (document.state.reported?.mode !== 'eco' || document.version < 2)
      throw new Error(`client process ${id}: its updates did not land`);
  }
  let idle: NodeJS.Timeout | undefined;
  // Completions already credited to calls: counts arrive in batches, so a call may see more than its BATCH;
  // the surplus counts for the next call rather than being dropped.
  let credited = 0;
  return async () => {
    keepAlive.refresh();
    clearTimeout(idle);
    if (!running) {
      command({ type: 'start' });
      credited = completed;
    }
    credited += BATCH;
    await until(credited);
    idle = setTimeout(() => command({ type: 'pause' }), PROCESS_IDLE_MS);
    return BATCH;
  };
}

/** Resolves when `count` messages have arrived on `client` (counted by a shared listener). */
function counter(client: MqttClient) {
  let received = 0;
  let target = 0;
  let done: (() => void) | undefined;
  client.on('message', () => {
    received++;
    if (done !== undefined && received >= target) {
      const finish = done;
      done = undefined;
      finish();
    }
  });
  return (count: number) =>
    new Promise<void>((resolve) => {
      target = received + count;
      done = resolve;
    });
}

/** The floor: the same 4 clients each publish QoS 1 to a plain topic they subscribe to, and wait for their copies. */
async function rawBrokerTask() {
  // A throughput floor: each client publishes far above AWS IoT's 100 publishes/s per connection, so the
  // per-connection quotas (on by default) are off here, as in the shadow task below.
  const broker = await startBroker({ connectionQuotas: false });
  broker.unref();
  const payload = Buffer.from('{"state":{"reported":{"n":123456,"on":true}}}');
  const clients: { client: MqttClient; arrived: (count: number) => Promise<void>; topic: string }[] = [];
  for (let d = 0; d < DEVICES; d++) {
    const topic = `bench/raw/${d}`;
    const client = await connectBenchClient(broker.url, `raw-${d}`, { unref: true });
    await client.subscribeAsync(topic, { qos: 1 });
    clients.push({ client, arrived: counter(client), topic });
  }
  return async () => {
    keepAlive.refresh();
    await Promise.all(
      clients.map(async ({ client, arrived, topic }) => {
        const waiting = arrived(PER_DEVICE);
        for (let i = 0; i < PER_DEVICE; i++) client.publish(topic, payload, { qos: 1 });
        await waiting;
      }),
    );
    return MQTT_BATCH;
  };
}

async function shadowTask() {
  const engine = createShadowEngine({
    limits: { requestsPerSecondPerThing: 1_000_000_000, maxInFlightPerThing: 1_000_000 },
  });
  // Throughput over 4 connections, each far above AWS IoT's 100 publishes/s: no per-connection quotas.
  const front = await startMqttFront(engine, { connectionQuotas: false });
  front.unref();
  const devices: { client: MqttClient; arrived: (count: number) => Promise<void>; topic: string }[] = [];
  for (let d = 0; d < DEVICES; d++) {
    const thing = `bench-${d}`;
    const client = await connectBenchClient(front.mqttUrl, thing, { unref: true });
    await client.subscribeAsync(`$aws/things/${thing}/shadow/update/accepted`, { qos: 1 });
    devices.push({ client, arrived: counter(client), topic: `$aws/things/${thing}/shadow/update` });
  }
  let n = 0;
  return async () => {
    keepAlive.refresh();
    const waits = devices.map(async ({ client, arrived, topic }) => {
      const waiting = arrived(PER_DEVICE);
      for (let i = 0; i < PER_DEVICE; i++)
        client.publish(topic, `{"state":{"reported":{"n":${n++},"on":true}}}`, { qos: 1 });
      await waiting;
    });
    await Promise.all(waits);
    return MQTT_BATCH;
  };
}

const figure = (groups: GroupResult[], group: number, task: string) =>
  groups[group]?.tasks.find((t) => t.name === task)?.metrics.ops;

export const suite: BenchSuite = {
  name: 'service',
  order: 5,
  title: 'Local shadow service throughput (HTTP and MQTT)',
  description:
    `HTTP: UpdateThingShadow calls/s through the data plane with the real AWS SDK client (${CONCURRENCY} in flight, ` +
    `${THINGS} things, keep-alive), in memory, durable (fsync, group commit) and with the SDK in ${WORKERS} worker threads, ` +
    "all in the service's own process (the SDK's CPU cost, ~10x the service's per call, dominates these), and the same " +
    'requests from a plain node:http client; and the sustained rate with the SDK in ' +
    `${PROCESSES} separate client processes (each its own IoTDataPlaneClient, ${CONCURRENCY / PROCESSES} in flight, kept ` +
    'busy while timed, counts over IPC) and the service alone in the measuring process, on the same 2 cores. ' +
    'Peer: a bare node:http server answering the same POSTs (the floor). ' +
    `MQTT: shadow updates/s through the embedded broker, MQTT front and engine (${DEVICES} devices pipelining QoS 1 updates, each ` +
    'waiting for its update/accepted); peer: the raw embedded broker, the same clients publishing QoS 1 to a plain topic they ' +
    'subscribe to (one message in, one out, like an update and its accepted). Per-thing quotas raised; Nagle off on every socket.',
  quickNote: '1 fork × 2 rounds of 100 ms per task (full: 2 forks × 3 rounds of 300 ms).',
  settings: {
    full: { forks: 2, rounds: 3, timeMs: 300, warmupMs: 50 },
    quick: { forks: 1, rounds: 2, timeMs: 100, warmupMs: 20 },
  },
  headline(groups) {
    const sdk = figure(groups, 0, MEMORY);
    const multi = figure(groups, 0, MULTI);
    const plain = figure(groups, 0, PLAIN);
    const raw = figure(groups, 0, RAW);
    const mqtt = figure(groups, 1, SHADOW_MQTT);
    const broker = figure(groups, 1, RAW_BROKER);
    const n = (value: number | undefined) => Math.round(value ?? Number.NaN).toLocaleString('en-US');
    return [
      `HTTP: ${n(multi?.value.median)} updates/s via the AWS SDK from ${PROCESSES} client processes (${formatRatio(multi?.ratio?.median ?? Number.NaN)} the raw node:http floor of ${n(raw?.value.median)}/s), ${n(sdk?.value.median)}/s with the SDK in the service's process (${formatRatio(sdk?.ratio?.median ?? Number.NaN)}), ${n(plain?.value.median)}/s via plain node:http (${formatRatio(plain?.ratio?.median ?? Number.NaN)})`,
      `MQTT: ${n(mqtt?.value.median)} shadow updates/s (${formatRatio(mqtt?.ratio?.median ?? Number.NaN)} the raw aedes QoS 1 floor of ${n(broker?.value.median)} messages/s)`,
    ];
  },
  teardown() {
    for (const child of children.splice(0)) {
      child.removeAllListeners('exit');
      if (child.connected) child.disconnect();
    }
  },
  async groups() {
    const raw = await rawTask();
    const plain = await plainTask();
    const memory = await sdkTask(undefined);
    const durable = await sdkTask(mkdtempSync(join(tmpdir(), 'shadow-bench-')));
    const threaded = await threadedTask();
    const processes = await processTask();
    const rawBroker = await rawBrokerTask();
    const shadow = await shadowTask();
    return [
      {
        name: `HTTP, ${BATCH} updates per call`,
        baseline: RAW,
        opsPerCall: BATCH,
        // A call of the SDK tasks takes about 0.1 s: 4 calls per round keep a quick run short.
        minIterations: 4,
        tasks: [
          { name: RAW, fn: raw },
          { name: PLAIN, fn: plain },
          { name: MEMORY, fn: memory },
          { name: DURABLE, fn: durable },
          { name: THREADED, fn: threaded },
          { name: MULTI, fn: processes },
        ],
        goals: [
          { task: MEMORY, on: 'value', atLeast: 5000 },
          { task: MULTI, on: 'value', atLeast: 5000 },
        ],
        input: `~55-byte reported updates; ${CONCURRENCY} concurrent requests over one keep-alive agent; the ${PROCESSES} client processes split them; goal ≥ 5,000 updates/s via the AWS SDK.`,
      },
      {
        name: `MQTT, ${MQTT_BATCH} updates per call`,
        baseline: RAW_BROKER,
        opsPerCall: MQTT_BATCH,
        tasks: [
          { name: RAW_BROKER, fn: rawBroker },
          { name: SHADOW_MQTT, fn: shadow },
        ],
        goals: [{ task: SHADOW_MQTT, on: 'value', atLeast: 10_000 }],
        input: `${DEVICES} devices × ${PER_DEVICE} pipelined QoS 1 updates of ~45 bytes; responses at QoS 0 (service default); goal ≥ 10,000 updates/s.`,
      },
    ] satisfies BenchGroup[];
  },
};
