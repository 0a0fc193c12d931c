/**
 * Fleet scale: 1,000, 5,000 and 10,000 device agents in one process, on the local service's embedded broker
 * (aedes), against the same number of hand-written mqtt.js devices (the peer: subscribe to delta and
 * update/accepted, report each delta back; see `bench/support/fleet-devices.ts`).
 *
 * The devices run in a child process (fresh for every run, so its memory figures start clean), the service in
 * this one (fresh for every run too): one process may hold only 20,000 open files here, and both ends of
 * 10,000 loopback connections need more.
 *
 * Per run: connect the fleet (in batches of 250, each device ready when subscribed and, for agents, synced),
 * measure the devices' memory after a full GC, then make {@link CHANGES} fleet-wide desired changes one after
 * the other. A change sets `desired.targetTemp` on every shadow through the service's engine (the HTTP data
 * plane's code path without HTTP: the SDK on 2 cores would measure itself), all at once; it has converged when
 * every device has applied it and the service accepted its report. Figures per run: device heap and RSS per
 * device, service heap per connected device, connect time, median convergence time over the changes, and MQTT
 * messages per second at the devices during convergence (publishes sent and received).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startShadowService } from '../../src/emulator/index.js';
import type { BenchSuite, GroupResult, Metric, ScenarioGroup } from '../measure.js';
import type { FleetAnswer, FleetCommand } from '../support/fleet-devices.js';
import { formatRatio } from '../svg-chart.js';

const SIZES = [1_000, 5_000, 10_000] as const;
const QUICK_SIZES = [200, 500, 1_000] as const;
const CHANGES = 3;
const AGENTS = 'shadow-sync device agents';
const BARE = 'hand-written mqtt.js devices';
const CHILD = fileURLToPath(new URL('../support/fleet-devices.ts', import.meta.url));
/** A run that takes longer than this has hung. */
const STEP_TIMEOUT_MS = 120_000;

const METRICS: Metric[] = [
  { key: 'converge', label: 'ms for a fleet-wide change to converge', better: 'lower' },
  { key: 'messages', label: 'MQTT messages/s at the devices', better: 'higher' },
  { key: 'heap', label: 'device heap KB per device', better: 'lower', digits: 1 },
  { key: 'rss', label: 'device RSS KB per device', better: 'lower', digits: 1, chart: false },
  {
    key: 'serviceHeap',
    label: 'service heap KB per connected device',
    better: 'lower',
    digits: 1,
    chart: false,
  },
  { key: 'connect', label: 'ms to connect the fleet', better: 'lower', chart: false },
];

const gc = () => (globalThis as { gc?: () => void }).gc?.();

/** Sends a command (if any) and waits for the answer of type `type`. */
function ask<T extends FleetAnswer['type']>(
  child: ChildProcess,
  command: FleetCommand | undefined,
  type: T,
): Promise<Extract<FleetAnswer, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`fleet child: no '${type}' within ${STEP_TIMEOUT_MS} ms`));
    }, STEP_TIMEOUT_MS);
    const onMessage = (answer: FleetAnswer) => {
      if (answer.type === 'failed') {
        cleanup();
        reject(new Error(`fleet child failed: ${answer.error}`));
      } else if (answer.type === type) {
        cleanup();
        resolve(answer as Extract<FleetAnswer, { type: T }>);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`fleet child exited with code ${String(code)} while waiting for '${type}'`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    if (command !== undefined) child.send(command);
  });
}

let runId = 0;

async function runFleet(kind: 'agents' | 'bare', size: number): Promise<Record<string, number | number[]>> {
  const id = ++runId;
  const prefix = `fleet-${id}`;
  const service = await startShadowService({ host: '127.0.0.1' });
  const child = fork(CHILD, [], {
    execArgv: [...process.execArgv, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    gc();
    const serviceBefore = process.memoryUsage().heapUsed;
    const ready = await ask(child, { type: 'start', url: service.mqttUrl, size, kind, prefix }, 'ready');
    gc();
    const serviceHeap = (process.memoryUsage().heapUsed - serviceBefore) / size / 1024;
    const converge: number[] = [];
    const rates: number[] = [];
    for (let change = 1; change <= CHANGES; change++) {
      const value = 100 * id + change;
      const payload = new TextEncoder().encode(JSON.stringify({ state: { desired: { targetTemp: value } } }));
      const converged = ask(child, undefined, 'converged');
      await ask(child, { type: 'arm', value }, 'armed');
      const results = await Promise.all(
        Array.from({ length: size }, (_, i) =>
          service.engine.handle({
            operation: 'update',
            target: { thingName: `${prefix}-${i}` },
            payload,
            origin: 'http',
          }),
        ),
      );
      const refused = results.find((result) => !result.ok);
      if (refused !== undefined) throw new Error(`fleet change refused: ${JSON.stringify(refused)}`);
      const done = await converged;
      converge.push(done.ms);
      rates.push(done.messages / (done.ms / 1000));
    }
    console.log(
      `   ${size} ${kind}: connected in ${Math.round(ready.connectMs)} ms, ${(ready.heapPerDevice / 1024).toFixed(1)} KB heap each; converged in ${converge.map((ms) => Math.round(ms)).join(', ')} ms`,
    );
    return {
      converge,
      messages: rates,
      heap: ready.heapPerDevice / 1024,
      rss: ready.rssPerDevice / 1024,
      serviceHeap,
      connect: ready.connectMs,
    };
  } finally {
    await ask(child, { type: 'close' }, 'closed').catch(() => child.kill());
    await service.close();
  }
}

export const suite: BenchSuite = {
  name: 'fleet',
  order: 4,
  title: 'Fleet scale: device agents in one process on the embedded broker',
  description:
    "N device agents (1,000, 5,000, 10,000) in one Node process, connected to the local service's embedded aedes broker in another " +
    '(one process may hold only 20,000 open files here). Peer: N hand-written mqtt.js devices in the same setup (subscribe to ' +
    'update/delta and update/accepted, report each delta back; no read on connect, no version ordering, no retries). ' +
    `A fleet-wide change sets desired.targetTemp on every shadow at once through the service's engine; it has converged when every ` +
    `device applied it and its report was accepted; ${CHANGES} changes per run, each a sample of the convergence time and messages/s. ` +
    'Memory (one sample per run) after a full GC; fresh processes for every run. Messages/s: MQTT publishes sent and received by the devices during convergence.',
  quickNote: `fleets of ${QUICK_SIZES.join(', ')} devices instead of ${SIZES.map((n) => n.toLocaleString('en-US')).join(', ')}, one run per fleet (full: 2).`,
  settings: {
    full: { forks: 1, rounds: 2 },
    quick: { forks: 1, rounds: 1 },
  },
  nodeFlags: ['--expose-gc'],
  headline: (groups: GroupResult[]) =>
    groups.map((group) => {
      const own = group.tasks.find((t) => t.name === AGENTS)?.metrics;
      const v = (key: string) => own?.[key]?.value.median ?? Number.NaN;
      const r = (key: string) => formatRatio(own?.[key]?.ratio?.median ?? Number.NaN);
      return (
        `${group.name}: a fleet-wide change converges in ${Math.round(v('converge')).toLocaleString('en-US')} ms (${r('converge')} the hand-written devices), ` +
        `${Math.round(v('messages')).toLocaleString('en-US')} messages/s (${r('messages')}), ${v('heap').toFixed(1)} KB heap per agent (${r('heap')})`
      );
    }),
  groups({ quick }) {
    return (quick ? QUICK_SIZES : SIZES).map(
      (size): ScenarioGroup => ({
        kind: 'scenario',
        name: `${size.toLocaleString('en-US')} devices`,
        baseline: BARE,
        tasks: [BARE, AGENTS],
        metrics: METRICS,
        run: (task) => runFleet(task === AGENTS ? 'agents' : 'bare', size),
        ...(size === 10_000
          ? { goals: [{ task: AGENTS, metric: 'converge', on: 'value' as const, atMost: 60_000 }] }
          : {}),
      }),
    );
  },
};
