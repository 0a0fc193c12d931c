/**
 * What a benchmark suite declares and how the harness measures it. Each suite runs in several forks (fresh
 * Node processes, as JMH does: V8's type feedback depends on what a process ran first, and one process can
 * settle on code 25 % slower or faster than the next for the whole run). In each fork every group is timed in
 * several rounds (tinybench, one fresh Bench per round, task order rotated between rounds so drift and
 * warm-up do not favour one task); ratios against the group's baseline peer are taken within each round,
 * then summarised over all rounds of all forks.
 */
import { Bench } from 'tinybench';

/** One timed function. It should return something derived from its work so the engine cannot drop it. */
export interface BenchTask {
  name: string;
  fn: () => unknown;
}

/** Tasks compared against each other on the same input; every ratio is against `baseline`. */
export interface BenchGroup {
  name: string;
  /** Name of the task (a named peer library) every ratio is computed against. */
  baseline: string;
  /** Operations one call of a task performs (for example, the number of documents it diffs). */
  opsPerCall: number;
  tasks: BenchTask[];
  /** Speed goals: `task` should reach at least `minRatio` times the baseline. */
  goals?: { task: string; minRatio: number }[];
  /**
   * Text describing the input, printed above the group's table. Read once the group has been measured, so a
   * getter may report figures counted during the timed calls.
   */
  input?: string;
}

/** What a file in `bench/suites/` exports as `suite`. */
export interface BenchSuite {
  /** File-safe identifier: results go to `bench/results/<name>.json` and `<name>.md`. */
  name: string;
  title: string;
  description: string;
  /** Builds the groups; may throw when a correctness check of the inputs or the functions fails. */
  groups(options: { quick: boolean }): BenchGroup[] | Promise<BenchGroup[]>;
  /** Releases what `groups` started (servers, sockets, timers); called after the last group, even on failure. */
  teardown?(): void | Promise<void>;
}

/** How long to measure. */
export interface MeasureSettings {
  /** Fresh processes each suite runs in. */
  forks: number;
  /** Rounds per fork. */
  rounds: number;
  /** Time budget per task and round, in milliseconds. */
  timeMs: number;
  warmupMs: number;
}

/**
 * Full and quick settings: a full run of the diff suite stays under a minute, a quick one under 15 s. Many
 * short rounds rather than a few long ones: on a shared machine load comes in bursts, and the median of
 * per-round ratios shrugs off a burst that hits one task of one round.
 */
export const SETTINGS: Readonly<Record<'full' | 'quick', MeasureSettings>> = Object.freeze({
  full: { forks: 3, rounds: 4, timeMs: 250, warmupMs: 25 },
  quick: { forks: 2, rounds: 3, timeMs: 80, warmupMs: 20 },
});

/** Median, minimum and maximum of a series. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

/** One task's measurements over all rounds of all forks (per-round arrays are fork after fork). */
export interface TaskResult {
  name: string;
  /** Operations per second in each round (calls per second times `opsPerCall`). */
  opsPerSecond: number[];
  /** Calls timed in each round. */
  runs: number[];
  /** Relative margin of error (percent, 95 %) tinybench reported in each round. */
  rme: number[];
  /** The fork each round ran in (0-based). */
  fork: number[];
  ops: Summary;
  /** This task's ops/s divided by the baseline's ops/s of the same round. */
  ratio: Summary;
  /** Median ratio within each fork: how much the processes disagreed. */
  forkRatios: number[];
}

/** One group's results. */
export interface GroupResult {
  name: string;
  baseline: string;
  opsPerCall: number;
  input?: string;
  tasks: TaskResult[];
  goals: { task: string; minRatio: number; reached: number; met: boolean }[];
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

/**
 * Times every task of a group in `settings.rounds` rounds, in this process (one fork's share).
 *
 * @param group - the tasks and their baseline
 * @param settings - rounds and time budgets
 * @throws Error when the baseline is not one of the tasks or a task throws
 */
export async function measureGroup(group: BenchGroup, settings: MeasureSettings): Promise<RawGroup> {
  if (!group.tasks.some((task) => task.name === group.baseline)) {
    throw new Error(`group '${group.name}': baseline '${group.baseline}' is not one of its tasks`);
  }
  const perTask = new Map(
    group.tasks.map((task) => [
      task.name,
      { ops: [] as number[], runs: [] as number[], rme: [] as number[] },
    ]),
  );
  for (let round = 0; round < settings.rounds; round++) {
    const bench = new Bench({
      time: settings.timeMs,
      warmupTime: settings.warmupMs,
      iterations: 10,
      warmupIterations: 5,
      throws: true,
    });
    const shift = round % group.tasks.length;
    for (const task of [...group.tasks.slice(shift), ...group.tasks.slice(0, shift)])
      bench.add(task.name, task.fn);
    await bench.run();
    for (const task of bench.tasks) {
      const result = task.result;
      if (result.state !== 'completed')
        throw new Error(`task '${task.name}' of '${group.name}' ended ${result.state}`);
      const entry = perTask.get(task.name);
      entry?.ops.push(result.throughput.mean * group.opsPerCall);
      entry?.runs.push(result.latency.samplesCount);
      entry?.rme.push(result.latency.rme);
    }
  }
  const raw: RawGroup = {
    name: group.name,
    baseline: group.baseline,
    opsPerCall: group.opsPerCall,
    ...(group.input === undefined ? {} : { input: group.input }),
    goals: group.goals ?? [],
    tasks: group.tasks.map((task) => {
      const entry = perTask.get(task.name) ?? { ops: [], runs: [], rme: [] };
      return { name: task.name, opsPerSecond: entry.ops, runs: entry.runs, rme: entry.rme };
    }),
  };
  return raw;
}

/** One fork's measurements of a group, before summarising: what a fork sends back to the harness. */
export interface RawGroup {
  name: string;
  baseline: string;
  opsPerCall: number;
  input?: string;
  goals: { task: string; minRatio: number }[];
  tasks: { name: string; opsPerSecond: number[]; runs: number[]; rme: number[] }[];
}

/**
 * Summarises one group measured in several forks: per-round ratios against the baseline, medians and
 * extremes over all rounds, the median ratio of each fork, and whether the goals are met.
 *
 * @param forks - the group's raw measurements, one entry per fork (same tasks in each)
 * @throws Error when no fork measured the group
 */
export function summariseGroup(forks: readonly RawGroup[]): GroupResult {
  const first = forks[0];
  if (first === undefined) throw new Error('no measurements to summarise');
  const tasks: TaskResult[] = first.tasks.map((task, index) => {
    const opsPerSecond: number[] = [];
    const runs: number[] = [];
    const rme: number[] = [];
    const fork: number[] = [];
    const ratios: number[] = [];
    const forkRatios: number[] = [];
    forks.forEach((measured, forkIndex) => {
      const own = measured.tasks[index];
      const baseline = measured.tasks.find((candidate) => candidate.name === measured.baseline);
      if (own === undefined || baseline === undefined) return;
      const inFork = own.opsPerSecond.map((ops, round) => ops / (baseline.opsPerSecond[round] as number));
      opsPerSecond.push(...own.opsPerSecond);
      runs.push(...own.runs);
      rme.push(...own.rme);
      fork.push(...own.opsPerSecond.map(() => forkIndex));
      ratios.push(...inFork);
      forkRatios.push(summarise(inFork).median);
    });
    return {
      name: task.name,
      opsPerSecond,
      runs,
      rme,
      fork,
      ops: summarise(opsPerSecond),
      ratio: summarise(ratios),
      forkRatios,
    };
  });
  const goals = first.goals.map((goal) => {
    const reached = tasks.find((task) => task.name === goal.task)?.ratio.median ?? 0;
    return { ...goal, reached, met: reached >= goal.minRatio };
  });
  return {
    name: first.name,
    baseline: first.baseline,
    opsPerCall: first.opsPerCall,
    ...(first.input === undefined ? {} : { input: first.input }),
    tasks,
    goals,
  };
}
