/**
 * What a benchmark suite declares and how the harness measures it.
 *
 * Two kinds of group share one result model (per task, per metric: one sample per round; ratios against the
 * group's named peer taken within each round, then summarised as median and min–max over all rounds):
 * - timed groups: functions timed with tinybench (throughput in ops/s), optionally with extra metrics the
 *   suite counts during each round (requests per update, latency...);
 * - scenario groups: a scenario run once per task and round that returns its own figures (409s per change,
 *   milliseconds until the device applied a change, memory per agent...).
 *
 * Each suite runs in several forks (fresh Node processes, as JMH does: V8's type feedback depends on what a
 * process ran first, and one process can settle on code 25 % slower or faster than the next for the whole run).
 * Within a fork the task order rotates from round to round, so drift and warm-up do not favour one task.
 */
import { Bench } from 'tinybench';

/** One figure a group reports for each task. */
export interface Metric {
  /** Key in the samples. */
  key: string;
  /** Column heading, for example `committed updates/s`. */
  label: string;
  /** `higher` when more is better (throughput), `lower` when less is (latency, memory, 409s). */
  better: 'higher' | 'lower';
  /** Decimals shown. @defaultValue 0 */
  digits?: number;
  /** Drawn in the suite's chart. @defaultValue true */
  chart?: boolean;
}

/** The throughput metric of every timed group. */
export const OPS_METRIC: Metric = Object.freeze({ key: 'ops', label: 'ops/s', better: 'higher' });

/** One timed function. It should return something derived from its work so the engine cannot drop it. */
export interface BenchTask {
  name: string;
  fn: () => unknown;
}

/**
 * A speed or cost goal: the median of `metric` for `task` (its ratio against the peer, or its value) must be
 * at least `atLeast` and/or at most `atMost`.
 */
export interface Goal {
  task: string;
  /** @defaultValue the group's first metric */
  metric?: string;
  on: 'ratio' | 'value';
  atLeast?: number;
  atMost?: number;
}

interface GroupCommon {
  name: string;
  /** Name of the task (a named peer) every ratio is computed against. */
  baseline: string;
  goals?: Goal[];
  /**
   * Text describing the input. Read once the group has been measured, so a getter may report what the timed
   * calls saw.
   */
  input?: string;
}

/** Tasks timed against each other on the same input (tinybench). */
export interface TimedGroup extends GroupCommon {
  kind?: 'timed';
  /** Operations one call of a task performs (for example, the number of documents it diffs). */
  opsPerCall: number;
  tasks: BenchTask[];
  /** Metrics besides throughput, counted by the suite while a round runs and returned by `sample`. */
  metrics?: Metric[];
  /**
   * Returns what the suite counted per task since the previous call (task name → metric key → value) and
   * starts counting afresh; called before the first round and after each round.
   */
  sample?(): Record<string, Record<string, number>>;
  /** Least calls per task and round (slow calls: fewer). @defaultValue 10 */
  minIterations?: number;
}

/** A scenario run once per task and round; it measures itself. */
export interface ScenarioGroup extends GroupCommon {
  kind: 'scenario';
  tasks: string[];
  metrics: Metric[];
  /**
   * Runs `task` once and returns its figures (metric key → value, or several values when one run measures
   * something several times; ratios pair the n-th value of a task with the n-th of the peer, so every task
   * must return as many).
   */
  run(task: string, round: number): Promise<Record<string, number | number[]>>;
}

export type BenchGroup = TimedGroup | ScenarioGroup;

/** How long to measure. */
export interface MeasureSettings {
  /** Fresh processes each suite runs in. */
  forks: number;
  /** Rounds per fork. */
  rounds: number;
  /** Timed groups: time budget per task and round, in milliseconds. */
  timeMs: number;
  warmupMs: number;
}

/** What a file in `bench/suites/` exports as `suite`. */
export interface BenchSuite {
  /** File-safe identifier: results go to `bench/results/<name>.json`, `.md` and `.svg`. */
  name: string;
  /** Position in the report (the suite number). */
  order: number;
  title: string;
  description: string;
  /** What `--quick` leaves out or shrinks in this suite, stated in the report of a quick run. */
  quickNote?: string;
  /** Overrides of the harness settings for this suite. */
  settings?: { full?: Partial<MeasureSettings>; quick?: Partial<MeasureSettings> };
  /** Extra Node flags for the suite's forks (for example `--expose-gc`). */
  nodeFlags?: string[];
  /** Builds the groups; may throw when a correctness check of the inputs or the functions fails. */
  groups(options: { quick: boolean }): BenchGroup[] | Promise<BenchGroup[]>;
  /** One-line findings from the summarised groups, for the printed summary and the top of the report. */
  headline?(groups: GroupResult[]): string[];
  /** Releases what `groups` started (servers, sockets, timers); called after the last group, even on failure. */
  teardown?(): void | Promise<void>;
}

/**
 * Default settings: a full run of every suite stays under 10 minutes on 2 shared cores, a quick one under 2.
 * Many short rounds rather than a few long ones: on a shared machine load comes in bursts, and the median of
 * per-round ratios shrugs off a burst that hits one task of one round.
 */
export const SETTINGS: Readonly<Record<'full' | 'quick', MeasureSettings>> = Object.freeze({
  full: { forks: 3, rounds: 4, timeMs: 250, warmupMs: 25 },
  quick: { forks: 1, rounds: 3, timeMs: 80, warmupMs: 20 },
});

/** The settings a suite runs with. */
export function suiteSettings(suite: BenchSuite, quick: boolean): MeasureSettings {
  const mode = quick ? 'quick' : 'full';
  return { ...SETTINGS[mode], ...suite.settings?.[mode] };
}

/** Median, minimum and maximum of a series. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

/**
 * Summarises a series by its median and extremes.
 *
 * @param values - at least one number
 */
export function summarise(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1
      ? (sorted[middle] as number)
      : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

/** One fork's measurements of a group: per task, per metric, one sample per round. */
export interface RawGroup {
  name: string;
  baseline: string;
  input?: string;
  metrics: Metric[];
  goals: Goal[];
  tasks: { name: string; samples: Record<string, number[]> }[];
}

/** Order of the tasks in round `round`: rotated so no task always runs first. */
function rotated<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

async function measureTimed(group: TimedGroup, settings: MeasureSettings): Promise<RawGroup> {
  if (!group.tasks.some((task) => task.name === group.baseline)) {
    throw new Error(`group '${group.name}': baseline '${group.baseline}' is not one of its tasks`);
  }
  const metrics = [OPS_METRIC, ...(group.metrics ?? [])];
  const samples = new Map(
    group.tasks.map((task) => [task.name, Object.fromEntries(metrics.map((m) => [m.key, [] as number[]]))]),
  );
  group.sample?.(); // start counting afresh
  for (let round = 0; round < settings.rounds; round++) {
    const bench = new Bench({
      time: settings.timeMs,
      warmupTime: settings.warmupMs,
      iterations: group.minIterations ?? 10,
      warmupIterations: Math.min(5, group.minIterations ?? 5),
      throws: true,
    });
    for (const task of rotated(group.tasks, round)) bench.add(task.name, task.fn);
    await bench.run();
    const counted = group.sample?.() ?? {};
    for (const task of bench.tasks) {
      const result = task.result;
      if (result.state !== 'completed')
        throw new Error(`task '${task.name}' of '${group.name}' ended ${result.state}`);
      const entry = samples.get(task.name);
      entry?.ops?.push(result.throughput.mean * group.opsPerCall);
      for (const metric of metrics.slice(1)) {
        entry?.[metric.key]?.push(counted[task.name]?.[metric.key] ?? Number.NaN);
      }
    }
  }
  return {
    name: group.name,
    baseline: group.baseline,
    ...(group.input === undefined ? {} : { input: group.input }),
    metrics,
    goals: group.goals ?? [],
    tasks: group.tasks.map((task) => ({ name: task.name, samples: samples.get(task.name) ?? {} })),
  };
}

async function measureScenario(group: ScenarioGroup, settings: MeasureSettings): Promise<RawGroup> {
  if (!group.tasks.includes(group.baseline)) {
    throw new Error(`group '${group.name}': baseline '${group.baseline}' is not one of its tasks`);
  }
  const samples = new Map(
    group.tasks.map((task) => [task, Object.fromEntries(group.metrics.map((m) => [m.key, [] as number[]]))]),
  );
  for (let round = 0; round < settings.rounds; round++) {
    for (const task of rotated(group.tasks, round)) {
      const figures = await group.run(task, round);
      const entry = samples.get(task);
      for (const metric of group.metrics) {
        const figure = figures[metric.key] ?? Number.NaN;
        entry?.[metric.key]?.push(...(Array.isArray(figure) ? figure : [figure]));
      }
    }
  }
  return {
    name: group.name,
    baseline: group.baseline,
    ...(group.input === undefined ? {} : { input: group.input }),
    metrics: group.metrics,
    goals: group.goals ?? [],
    tasks: group.tasks.map((task) => ({ name: task, samples: samples.get(task) ?? {} })),
  };
}

/**
 * Measures every task of a group in `settings.rounds` rounds, in this process (one fork's share).
 *
 * @param group - the tasks and their peer
 * @param settings - rounds and time budgets
 * @throws Error when the baseline is not one of the tasks or a task throws
 */
export function measureGroup(group: BenchGroup, settings: MeasureSettings): Promise<RawGroup> {
  return group.kind === 'scenario' ? measureScenario(group, settings) : measureTimed(group, settings);
}

/** One task's figure for one metric, over all rounds of all forks. */
export interface MetricResult {
  /** One value per round, fork after fork. */
  samples: number[];
  value: Summary;
  /**
   * This task's value over the peer's in the same round, summarised; `undefined` when no round gave a finite
   * ratio (the peer measured 0 while this task did not).
   */
  ratio: Summary | undefined;
}

/** One task's results. */
export interface TaskResult {
  name: string;
  metrics: Record<string, MetricResult>;
  /** Median ratio of the first metric within each fork: how much the processes disagreed. */
  forkRatios: number[];
}

/** One goal, checked. */
export interface GoalResult extends Goal {
  metric: string;
  reached: number;
  met: boolean;
}

/** One group's results. */
export interface GroupResult {
  name: string;
  baseline: string;
  input?: string;
  metrics: Metric[];
  tasks: TaskResult[];
  goals: GoalResult[];
}

/** `own / peer`, with 0 / 0 = 1 (both did nothing) and x / 0 = not finite (left out). */
function ratioOf(own: number, peer: number): number {
  if (peer === 0) return own === 0 ? 1 : Number.NaN;
  return own / peer;
}

/**
 * Summarises one group measured in several forks: per-round ratios against the peer, medians and extremes
 * over all rounds, the median ratio of each fork, and whether the goals are met.
 *
 * @param forks - the group's raw measurements, one entry per fork (same tasks and metrics in each)
 * @throws Error when no fork measured the group
 */
export function summariseGroup(forks: readonly RawGroup[]): GroupResult {
  const first = forks[0];
  if (first === undefined) throw new Error('no measurements to summarise');
  const primary = first.metrics[0]?.key ?? 'ops';
  const tasks: TaskResult[] = first.tasks.map((task, index) => {
    const metrics: Record<string, MetricResult> = {};
    const forkRatios: number[] = [];
    for (const metric of first.metrics) {
      const samples: number[] = [];
      const ratios: number[] = [];
      for (const measured of forks) {
        const own = measured.tasks[index]?.samples[metric.key] ?? [];
        const peer = measured.tasks.find((t) => t.name === measured.baseline)?.samples[metric.key] ?? [];
        const inFork = own.map((value, round) => ratioOf(value, peer[round] ?? Number.NaN));
        const finite = inFork.filter(Number.isFinite);
        samples.push(...own);
        ratios.push(...finite);
        if (metric.key === primary && finite.length > 0) forkRatios.push(summarise(finite).median);
      }
      const finiteSamples = samples.filter(Number.isFinite);
      metrics[metric.key] = {
        samples,
        value:
          finiteSamples.length === 0
            ? { median: Number.NaN, min: Number.NaN, max: Number.NaN }
            : summarise(finiteSamples),
        ratio: ratios.length === 0 ? undefined : summarise(ratios),
      };
    }
    return { name: task.name, metrics, forkRatios };
  });
  const goals = first.goals.map((goal): GoalResult => {
    const metric = goal.metric ?? primary;
    const result = tasks.find((task) => task.name === goal.task)?.metrics[metric];
    const reached = (goal.on === 'ratio' ? result?.ratio?.median : result?.value.median) ?? Number.NaN;
    const met =
      Number.isFinite(reached) &&
      (goal.atLeast === undefined || reached >= goal.atLeast) &&
      (goal.atMost === undefined || reached <= goal.atMost);
    return { ...goal, metric, reached, met };
  });
  return {
    name: first.name,
    baseline: first.baseline,
    ...(first.input === undefined ? {} : { input: first.input }),
    metrics: first.metrics,
    tasks,
    goals,
  };
}
