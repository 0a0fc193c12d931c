/**
 * The seed's headline, measured: devices report telemetry (temperature, humidity) at 1, 5 and 10 Hz while apps
 * make versioned desired changes to the same shadows, without a split policy (every reading becomes a shadow
 * version: the setup the seed's team started from, the peer) and with one (readings go to
 * `my/things/<thing>/state`, the shadow only carries state the app must see).
 *
 * Everything is real: the local service with AWS's per-thing quotas (20 requests/s, 10 in flight), device
 * agents on real mqtt.js clients, apps using the real AWS SDK over HTTP through shadow-sync's update engine
 * (every change reads first, as a fresh Lambda invocation would: `useKnownDocuments: false`). The only thing
 * simulated is distance: each app request waits {@link APP_LATENCY_MS} ms before it is sent, like a Lambda
 * calling the IoT data plane in its region. On loopback alone the read-to-write window would be about a
 * millisecond and conflicts would all but vanish, which is not what the seed's team saw.
 *
 * Per run, for each of several things at once: the device reports at the given rate; the app makes one change
 * (`desired.targetTemp`, a fresh value each time), waits until the device has applied it, pauses
 * {@link APP_PAUSE_MS} ms, and repeats, for the run's window. Figures per run: 409s per committed change,
 * app requests per committed change, milliseconds from the app starting a change to the device's handler
 * receiving it (median and p95 over the run's changes), shadow versions per hour per thing, changes given up.
 */
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { IoTDataPlaneClient as SdkClient } from '@aws-sdk/client-iot-data-plane';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { type SplitPolicy, splitPolicy } from '../../src/split/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import type { ShadowTransport } from '../../src/transports/transport.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { BenchSuite, GroupResult, Metric, ScenarioGroup } from '../measure.js';
import { benchAgent } from '../support/bench-http.js';
import { buildBenchClient } from '../support/bench-mqtt.js';
import { formatRatio } from '../svg-chart.js';

const RATES_HZ = [1, 5, 10] as const;
/** One-way delay added before each app request (a Lambda calling the data plane in its region). */
const APP_LATENCY_MS = 20;
/** Pause between an applied change and the app's next change. */
const APP_PAUSE_MS = 400;
/** How long a change may take to reach the device before the run fails. */
const CHANGE_TIMEOUT_MS = 10_000;
const WITHOUT = 'without split policy (every reading to the shadow)';
const WITH = 'with split policy (readings to my/things/<thing>/state)';

const METRICS: Metric[] = [
  { key: 'conflicts', label: 'app 409s per change', better: 'lower', digits: 3 },
  { key: 'requests', label: 'app requests per committed change', better: 'lower', digits: 2 },
  { key: 'latency', label: 'ms until the device has it (median)', better: 'lower', digits: 1 },
  {
    key: 'latencyP95',
    label: 'ms until the device has it (p95)',
    better: 'lower',
    digits: 1,
    chart: false,
  },
  { key: 'versions', label: 'shadow versions/h per thing', better: 'lower' },
  {
    key: 'telemetryVersions',
    label: "of which not the app's changes or their acknowledgements",
    better: 'lower',
    chart: false,
  },
  { key: 'changes', label: 'committed changes', better: 'higher', chart: false },
  { key: 'failed', label: 'changes given up', better: 'lower', chart: false },
];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** The app's transport: counts requests, and delays each like a request from a Lambda in the region. */
function appTransport(inner: ShadowTransport, counter: { requests: number }): ShadowTransport {
  return {
    get: async (target, options) => {
      counter.requests++;
      await sleep(APP_LATENCY_MS);
      return inner.get(target, options);
    },
    update: async (target, request, options) => {
      counter.requests++;
      await sleep(APP_LATENCY_MS);
      return inner.update(target, request, options);
    },
    delete: async (target, options) => {
      counter.requests++;
      await sleep(APP_LATENCY_MS);
      return inner.delete(target, options);
    },
  };
}

const POLICY: SplitPolicy = splitPolicy({
  fields: { temperature: 'telemetry', humidity: 'telemetry' },
  otherFields: 'shadow',
  telemetryTopic: 'my/things/{thingName}/state',
});

interface RunSettings {
  things: number;
  windowMs: number;
}

/** One thing's device and app for one run; resolves with its counts. */
async function runThing(
  service: ShadowService,
  sdk: IoTDataPlaneClient,
  thingName: string,
  hz: number,
  withPolicy: boolean,
  windowMs: number,
) {
  // Each change's start time, keyed by its (unique) target value; the device's handler closes it.
  const started = new Map<number, number>();
  const latencies: number[] = [];
  const arrived = new Map<number, () => void>();
  const agent: DeviceAgent = await createDeviceAgent({
    thingName,
    mqtt: buildBenchClient(service.mqttUrl, thingName, { mqtt: { reconnectPeriod: 200 } }),
    ...(withPolicy ? { policy: POLICY } : {}),
    onDelta: (delta) => {
      const value = delta.targetTemp;
      if (typeof value === 'number' && started.has(value)) {
        latencies.push(performance.now() - (started.get(value) as number));
        started.delete(value);
        arrived.get(value)?.();
      }
      return delta;
    },
  });
  agent.report({ power: 'on', mode: 'cool', targetTemp: 0, temperature: 22, humidity: 40 });
  await agent.whenSynced();
  const plain = awsTransport(sdk);
  const versionAt = async () => (await plain.get({ thingName }))?.version ?? 0;

  let tick = 0;
  const device = setInterval(() => {
    tick++;
    agent.report({ temperature: 22 + (tick % 50) / 10, humidity: 40 + (tick % 17) });
  }, 1000 / hz);

  const counter = { requests: 0 };
  let conflicts = 0;
  let committed = 0;
  let failed = 0;
  const app = createShadowClient({
    transport: appTransport(plain, counter),
    useKnownDocuments: false, // every change is a fresh invocation that reads first
    onEvent: (event) => {
      if (event.type === 'conflict') conflicts++;
    },
  });
  const shadow = app.shadow(thingName);
  const versionBefore = await versionAt();
  const t0 = performance.now();
  let value = 0;
  try {
    while (performance.now() - t0 < windowMs) {
      value++;
      const target = value;
      const reached = new Promise<void>((resolve, reject) => {
        arrived.set(target, resolve);
        setTimeout(
          () => reject(new Error(`${thingName}: change ${target} did not reach the device`)),
          CHANGE_TIMEOUT_MS,
        ).unref();
      });
      started.set(target, performance.now());
      try {
        await shadow.update(() => ({ desired: { targetTemp: target } }));
        committed++;
        await reached;
      } catch (error) {
        if ((error as { name?: string }).name !== 'ShadowConflictError') throw error;
        failed++;
        started.delete(target);
        reached.catch(() => {});
      }
      arrived.delete(target);
      await sleep(APP_PAUSE_MS);
    }
  } finally {
    clearInterval(device);
  }
  const elapsed = performance.now() - t0;
  const versionAfter = await versionAt();
  await agent.close();
  return {
    conflicts,
    requests: counter.requests,
    committed,
    failed,
    latencies,
    versionsPerHour: ((versionAfter - versionBefore) / elapsed) * 3_600_000,
    // Each committed change costs two versions by design: the app's update and the device's acknowledgement.
    telemetryVersionsPerHour: ((versionAfter - versionBefore - 2 * committed) / elapsed) * 3_600_000,
  };
}

let service: ShadowService | undefined;
let sdk: IoTDataPlaneClient | undefined;
let runId = 0;

async function run(hz: number, withPolicy: boolean, settings: RunSettings): Promise<Record<string, number>> {
  if (service === undefined || sdk === undefined)
    throw new Error('the seed suite has not started its service');
  const id = ++runId;
  const results = await Promise.all(
    Array.from({ length: settings.things }, (_, i) =>
      runThing(
        service as ShadowService,
        sdk as IoTDataPlaneClient,
        `seed-${id}-${i}`,
        hz,
        withPolicy,
        settings.windowMs,
      ),
    ),
  );
  const sum = (pick: (r: (typeof results)[number]) => number) =>
    results.reduce((total, r) => total + pick(r), 0);
  const committed = sum((r) => r.committed);
  const latencies = results.flatMap((r) => r.latencies);
  return {
    conflicts: sum((r) => r.conflicts) / committed,
    requests: sum((r) => r.requests) / committed,
    latency: percentile(latencies, 50),
    latencyP95: percentile(latencies, 95),
    versions: sum((r) => r.versionsPerHour) / results.length,
    telemetryVersions: sum((r) => r.telemetryVersionsPerHour) / results.length,
    changes: committed,
    failed: sum((r) => r.failed),
  };
}

function sdkClient(endpoint: string): IoTDataPlaneClient {
  return new SdkClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1, // the SDK's own retries would hide requests from the count
    requestHandler: new NodeHttpHandler({ httpAgent: benchAgent(64) }),
  });
}

export const suite: BenchSuite = {
  name: 'seed',
  order: 3,
  title: "The seed's headline: telemetry vs versioned app changes, with and without the split policy",
  description:
    `Devices report temperature and humidity at 1, 5 and 10 Hz (device agents over mqtt.js) while apps change desired.targetTemp ` +
    `with versioned updates (shadow-sync's update engine over the real AWS SDK, a fresh read per change, each request delayed ` +
    `${APP_LATENCY_MS} ms like a Lambda in the region; one change, wait until the device has it, ${APP_PAUSE_MS} ms pause, repeat). ` +
    'Peer: the same devices without a split policy, so every reading becomes a shadow version (the seed before its fix). ' +
    "With the policy, temperature and humidity go to my/things/<thing>/state and the shadow only moves for the app's changes and the device's acknowledgements. " +
    "Local service with AWS's per-thing quotas (20 requests/s, 10 in flight). A run drives several things at once; each figure is one run's value.",
  quickNote: 'one round of a 2.5 s window over 4 things per task (full: 3 rounds of 5 s over 6 things).',
  settings: {
    full: { forks: 1, rounds: 3 },
    quick: { forks: 1, rounds: 1 },
  },
  headline: (groups: GroupResult[]) =>
    groups.map((group) => {
      const peer = group.tasks.find((t) => t.name === WITHOUT)?.metrics;
      const own = group.tasks.find((t) => t.name === WITH)?.metrics;
      const v = (m: Metric['key'], of: typeof own) => of?.[m]?.value.median ?? Number.NaN;
      return (
        `${group.name}: 409s per change ${v('conflicts', peer).toFixed(2)} → ${v('conflicts', own).toFixed(2)}, ` +
        `requests per change ${v('requests', peer).toFixed(2)} → ${v('requests', own).toFixed(2)}, ` +
        `shadow versions/h per thing ${Math.round(v('versions', peer)).toLocaleString('en-US')} → ${Math.round(v('versions', own)).toLocaleString('en-US')} ` +
        `(${formatRatio(own?.versions?.ratio?.median ?? Number.NaN)}; from telemetry ${Math.round(v('telemetryVersions', peer)).toLocaleString('en-US')} → ${Math.round(v('telemetryVersions', own)).toLocaleString('en-US')}), ` +
        `change reaches the device in ${v('latency', peer).toFixed(0)} → ${v('latency', own).toFixed(0)} ms`
      );
    }),
  async groups({ quick }) {
    const settings: RunSettings = quick ? { things: 4, windowMs: 2_500 } : { things: 6, windowMs: 5_000 };
    service = await startShadowService({ host: '127.0.0.1' });
    sdk = sdkClient(service.httpEndpoint);
    return RATES_HZ.map(
      (hz): ScenarioGroup => ({
        kind: 'scenario',
        name: `telemetry at ${hz} Hz`,
        baseline: WITHOUT,
        tasks: [WITHOUT, WITH],
        metrics: METRICS,
        run: (task) => run(hz, task === WITH, settings),
        goals: [{ task: WITH, metric: 'conflicts', on: 'value', atMost: 0 }],
        input: `${settings.things} things at once, ${settings.windowMs / 1000} s per run; each device reports every ${1000 / hz} ms.`,
      }),
    );
  },
  async teardown() {
    sdk?.destroy();
    await service?.close();
  },
};
