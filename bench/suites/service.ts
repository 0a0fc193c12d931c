/**
 * HTTP service suite: UpdateThingShadow calls per second through the local service's data plane with the real
 * AWS SDK client (`IoTDataPlaneClient`, keep-alive agent, 64 requests in flight over 256 things), in memory and
 * with a data directory (every acknowledged update fsynced, group commit), and the same updates from a plain
 * node:http client (the service's own cost without the SDK's), next to the floor: a bare node:http
 * server answering the same POSTs with a fixed body, driven by the same agent without the SDK.
 *
 * Issue goal: at least 5,000 updates/s over HTTP on the 2-core machine (absolute numbers in the results table).
 * The per-thing quotas are raised: AWS's 20 requests/s per thing would otherwise be the only thing measured.
 * The harness has no teardown hook, so servers and sockets are unref'd and a keep-alive timer, refreshed by every
 * call, holds the process open only while the suite is being measured.
 */
import { mkdtempSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { type AddressInfo, createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startHttpFront } from '../../src/emulator/http-front.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import type { BenchGroup, BenchSuite } from '../measure.js';

const CONCURRENCY = 64;
const THINGS = 256;
const BATCH = 500;
const RAW = 'node:http POST round trip (floor)';
const PLAIN = 'UpdateThingShadow via plain node:http client, in memory';
const MEMORY = 'UpdateThingShadow via AWS SDK, in memory';
const DURABLE = 'UpdateThingShadow via AWS SDK, durable (fsync, group commit)';
const WORKERS = 2;
const THREADED = `UpdateThingShadow via AWS SDK in ${WORKERS} worker threads, in memory`;

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

/** A keep-alive agent whose sockets have Nagle disabled and do not hold the process open. */
function benchAgent(): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  agent.createConnection = (options, callback) => {
    const socket: Socket = createConnection(options as never, callback as never);
    socket.setNoDelay(true);
    socket.unref();
    return socket;
  };
  return agent;
}

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
  const post = poster(port, benchAgent());
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
  const post = poster(front.port, benchAgent());
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
    requestHandler: new NodeHttpHandler({ httpAgent: benchAgent() }),
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

export const suite: BenchSuite = {
  name: 'service',
  title: 'Local shadow service over HTTP',
  description:
    `UpdateThingShadow calls/s through the HTTP data plane with the real AWS SDK client (${CONCURRENCY} in flight, ` +
    `${THINGS} things, keep-alive), in memory and durable, against a bare node:http POST round trip as the floor.`,
  async groups() {
    const raw = await rawTask();
    const plain = await plainTask();
    const memory = await sdkTask(undefined);
    const durable = await sdkTask(mkdtempSync(join(tmpdir(), 'shadow-bench-')));
    const threaded = await threadedTask();
    return [
      {
        name: `${BATCH} updates per call`,
        baseline: RAW,
        opsPerCall: BATCH,
        tasks: [
          { name: RAW, fn: raw },
          { name: PLAIN, fn: plain },
          { name: MEMORY, fn: memory },
          { name: DURABLE, fn: durable },
          { name: THREADED, fn: threaded },
        ],
        input: `~55-byte reported updates; ${CONCURRENCY} concurrent requests over one keep-alive agent; goal ≥ 5,000 updates/s`,
      },
    ] satisfies BenchGroup[];
  },
};
