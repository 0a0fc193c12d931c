import type { Socket } from 'node:net';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import mqtt from 'mqtt';
import pRetry from 'p-retry';
import type { JsonObject, ShadowTarget } from '../../src/core/document.js';
import { startHttpFront } from '../../src/emulator/http-front.js';
import { startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import { awsTransport } from '../../src/transports/aws.js';
import { mqttTransport } from '../../src/transports/mqtt.js';
import type { ShadowTransport } from '../../src/transports/transport.js';
import { createShadowClient, type ShadowHandle } from '../../src/update/shadow-client.js';
import type { BenchGroup, BenchSuite, GroupResult, Metric } from '../measure.js';
import { benchAgent } from '../support/bench-http.js';
import { formatRatio } from '../svg-chart.js';

const WRITER_COUNTS = [1, 4, 16] as const;
const QUICK_WRITER_COUNTS = [1, 16] as const;
const NAIVE = '(a) naive p-retry GET + versioned UPDATE';
const INDEPENDENT = '(b) shadow-sync, independent clients';
const SHARED = '(c) shadow-sync, one shared client';
const OVER_MQTT = '(d) shadow-sync, independent clients over MQTT';
/** p-retry's default first wait (1,000 ms) divided by 1,000; every other p-retry option is its default. */
const NAIVE_MIN_TIMEOUT_MS = 1;

const keepAlive = setTimeout(() => {}, 5000);

/** Counts of one task over the whole run. */
interface Tally {
  committed: number;
  requests: number;
  failed: number;
  latencies: number[];
}

const newTally = (): Tally => ({ committed: 0, requests: 0, failed: 0, latencies: [] });

function sdkClient(endpoint: string): IoTDataPlaneClient {
  return new IoTDataPlaneClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    requestHandler: { httpAgent: benchAgent(4, true) },
    maxAttempts: 1, // the SDK's own retries would hide requests from the count
  });
}

/** An mqtt.js connection with Nagle off that does not hold the process open. */
async function benchMqtt(url: string, clientId: string) {
  const client = await mqtt.connectAsync(url, { clientId, keepalive: 0, reconnectPeriod: 0 });
  const socket = client.stream as Socket;
  socket.setNoDelay?.(true);
  socket.unref?.();
  return client;
}

/** A transport that counts the requests it sends. */
function counted(transport: ShadowTransport, tally: Tally): ShadowTransport {
  return {
    ...(transport.known === undefined ? {} : { known: (target: ShadowTarget) => transport.known?.(target) }),
    get: (target) => {
      tally.requests++;
      return transport.get(target);
    },
    update: (target, request) => {
      tally.requests++;
      return transport.update(target, request);
    },
    delete: (target) => {
      tally.requests++;
      return transport.delete(target);
    },
  };
}

const countOf = (state: { desired?: JsonObject } | undefined) => Number(state?.desired?.count ?? 0);

async function timed(tally: Tally, work: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  try {
    await work();
    tally.committed++;
    tally.latencies.push(performance.now() - started);
  } catch {
    tally.failed++;
  }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** The four tasks for W writers, each on its own shadow, with their tallies. */
async function tasksFor(endpoint: string, mqttUrl: string, writers: number) {
  const tallies = { naive: newTally(), independent: newTally(), shared: newTally(), mqtt: newTally() };

  const naiveTarget: ShadowTarget = { thingName: `naive-${writers}` };
  const naiveWriters = Array.from({ length: writers }, () =>
    counted(awsTransport(sdkClient(endpoint)), tallies.naive),
  );
  const naive = () =>
    Promise.all(
      naiveWriters.map((transport) =>
        timed(tallies.naive, () =>
          pRetry(
            async () => {
              const current = await transport.get(naiveTarget);
              await transport.update(naiveTarget, {
                state: { desired: { count: countOf(current?.state) + 1 } },
                version: current?.version ?? 0,
              });
            },
            { minTimeout: NAIVE_MIN_TIMEOUT_MS },
          ),
        ),
      ),
    );

  const engineOptions = {
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
    maxInFlightPerThing: Number.POSITIVE_INFINITY,
  };
  const independentHandles: ShadowHandle[] = Array.from({ length: writers }, () =>
    createShadowClient({
      transport: counted(awsTransport(sdkClient(endpoint)), tallies.independent),
      ...engineOptions,
    }).shadow(`independent-${writers}`),
  );
  const independent = () =>
    Promise.all(
      independentHandles.map((handle) =>
        timed(tallies.independent, () =>
          handle.update((current) => ({ desired: { count: countOf(current?.state) + 1 } })),
        ),
      ),
    );

  const sharedHandle = createShadowClient({
    transport: counted(awsTransport(sdkClient(endpoint)), tallies.shared),
    ...engineOptions,
  }).shadow(`shared-${writers}`);
  const shared = () =>
    Promise.all(
      Array.from({ length: writers }, () =>
        timed(tallies.shared, () =>
          sharedHandle.update((current) => ({ desired: { count: countOf(current?.state) + 1 } })),
        ),
      ),
    );

  const mqttHandles: ShadowHandle[] = [];
  for (let w = 0; w < writers; w++) {
    const client = await benchMqtt(mqttUrl, `contention-${writers}-${w}`);
    mqttHandles.push(
      createShadowClient({
        transport: counted(mqttTransport(client), tallies.mqtt),
        ...engineOptions,
      }).shadow(`mqtt-${writers}`),
    );
  }
  const overMqtt = () =>
    Promise.all(
      mqttHandles.map((handle) =>
        timed(tallies.mqtt, () =>
          handle.update((current) => ({ desired: { count: countOf(current?.state) + 1 } })),
        ),
      ),
    );

  const wrap = (run: () => Promise<unknown>) => async () => {
    keepAlive.refresh();
    await run();
    return writers;
  };
  return {
    tallies,
    tasks: [
      { name: NAIVE, fn: wrap(naive) },
      { name: INDEPENDENT, fn: wrap(independent) },
      { name: SHARED, fn: wrap(shared) },
      { name: OVER_MQTT, fn: wrap(overMqtt) },
    ],
  };
}

/** Per-round figures of one tally, then a fresh start. */
function drain(tally: Tally): Record<string, number> {
  const figures = {
    requests: tally.committed === 0 ? Number.NaN : tally.requests / tally.committed,
    p50: percentile(tally.latencies, 50),
    p99: percentile(tally.latencies, 99),
    failed: tally.failed,
  };
  Object.assign(tally, newTally());
  return figures;
}

const METRICS: Metric[] = [
  { key: 'requests', label: 'requests per committed update', better: 'lower', digits: 2 },
  { key: 'p50', label: 'p50 ms per update', better: 'lower', digits: 1, chart: false },
  { key: 'p99', label: 'p99 ms per update', better: 'lower', digits: 1, chart: false },
  { key: 'failed', label: 'updates given up', better: 'lower', chart: false },
];

export const suite: BenchSuite = {
  name: 'contention',
  order: 2,
  title: 'Update engine under contention',
  description:
    'W concurrent writers increment one counter in one shadow over HTTP (real AWS SDK, local service with its per-thing quotas raised). ' +
    'Peer: (a) a naive p-retry loop around GET + versioned UPDATE (p-retry defaults, first wait scaled 1,000 ms → 1 ms; see the suite source). ' +
    '(b) shadow-sync with one client per writer, (c) shadow-sync with one client shared by all writers (coalescing), ' +
    '(d) as (b) over MQTT, where update/documents spares the read after a lost race. ' +
    'ops/s = updates per second (one call = one increment per writer; a naive update p-retry gave up on still counts, see "updates given up"); ' +
    'requests, p50/p99 and updates given up are counted per round, warm-up included. Slow calls: at least 3 calls per task and round.',
  quickNote:
    '1 fork × 2 rounds of 100 ms per task (full: 2 forks × 3 rounds of 250 ms), and the 4-writer group is left out (1 and 16 writers are measured).',
  settings: {
    full: { forks: 2, rounds: 3, timeMs: 250, warmupMs: 25 },
    quick: { forks: 1, rounds: 2, timeMs: 100, warmupMs: 10 },
  },
  headline: (groups: GroupResult[]) =>
    groups.map((group) => {
      const pick = (name: string) => group.tasks.find((task) => task.name === name)?.metrics;
      const b = pick(INDEPENDENT);
      const c = pick(SHARED);
      return `${group.name}: independent clients ${formatRatio(b?.ops?.ratio?.median ?? Number.NaN)} the naive loop's updates/s with ${formatRatio(b?.requests?.ratio?.median ?? Number.NaN)} its requests per update; one shared client ${formatRatio(c?.ops?.ratio?.median ?? Number.NaN)} with ${formatRatio(c?.requests?.ratio?.median ?? Number.NaN)}`;
    }),
  async groups({ quick }) {
    const engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 1_000_000, maxInFlightPerThing: 100_000 },
    });
    const front = await startHttpFront(engine, { host: '127.0.0.1', port: 0 });
    front.unref();
    // Writers race as fast as they can, a shared client for all of them on one connection: far above AWS IoT's
    // 100 publishes/s per connection, so the per-connection quotas (on by default) are off for this comparison.
    const broker = await startMqttFront(engine, { connectionQuotas: false });
    broker.unref();
    const groups: BenchGroup[] = [];
    for (const writers of quick ? QUICK_WRITER_COUNTS : WRITER_COUNTS) {
      const { tallies, tasks } = await tasksFor(front.endpoint, broker.mqttUrl, writers);
      const goals: BenchGroup['goals'] = [{ task: SHARED, metric: 'requests', on: 'value', atMost: 1.2 }];
      // Issue #10: independent clients no slower than the naive loop at 4 writers, and at most half its
      // requests per update at 16.
      if (writers === 4) goals.push({ task: INDEPENDENT, metric: 'ops', on: 'ratio', atLeast: 1.0 });
      if (writers === 16) goals.push({ task: INDEPENDENT, metric: 'requests', on: 'ratio', atMost: 0.5 });
      groups.push({
        name: `${writers} writer${writers === 1 ? '' : 's'}`,
        baseline: NAIVE,
        opsPerCall: writers,
        tasks,
        metrics: METRICS,
        minIterations: 3,
        sample: () => ({
          [NAIVE]: drain(tallies.naive),
          [INDEPENDENT]: drain(tallies.independent),
          [SHARED]: drain(tallies.shared),
          [OVER_MQTT]: drain(tallies.mqtt),
        }),
        goals,
        input: `${writers} concurrent writer${writers === 1 ? '' : 's'} on one shadow; one call = one increment per writer.`,
      });
    }
    return groups;
  },
};
