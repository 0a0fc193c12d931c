import { describe, expect, it } from 'vitest';
import {
  type Metric,
  measureGroup,
  type RawGroup,
  type ScenarioGroup,
  SETTINGS,
  suiteSettings,
  summarise,
  summariseGroup,
} from '../../bench/measure.js';

const COST: Metric = { key: 'cost', label: 'cost', better: 'lower' };

function raw(peer: number[], own: number[]): RawGroup {
  return {
    name: 'g',
    baseline: 'peer',
    metrics: [COST],
    goals: [{ task: 'own', on: 'ratio', atMost: 0.5 }],
    tasks: [
      { name: 'peer', samples: { cost: peer } },
      { name: 'own', samples: { cost: own } },
    ],
  };
}

describe('summarise', () => {
  it('gives the median of odd and even series and their extremes', () => {
    expect(summarise([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(summarise([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4 });
  });
});

describe('summariseGroup', () => {
  it('takes ratios within each round and fork, then summarises them', () => {
    const result = summariseGroup([raw([10, 20], [5, 5]), raw([40], [10])]);
    const own = result.tasks.find((task) => task.name === 'own');
    expect(own?.metrics.cost?.value).toEqual({ median: 5, min: 5, max: 10 });
    expect(own?.metrics.cost?.ratio).toEqual({ median: 0.25, min: 0.25, max: 0.5 });
    expect(own?.forkRatios).toEqual([0.375, 0.25]);
    expect(result.goals[0]).toMatchObject({ metric: 'cost', reached: 0.25, met: true });
  });

  it('counts 0 against 0 as 1x and leaves out x against 0', () => {
    const result = summariseGroup([raw([0, 0, 2], [0, 3, 1])]);
    expect(result.tasks[1]?.metrics.cost?.ratio).toEqual({ median: 0.75, min: 0.5, max: 1 });
    const none = summariseGroup([raw([0], [3])]);
    expect(none.tasks[1]?.metrics.cost?.ratio).toBeUndefined();
    expect(none.goals[0]?.met).toBe(false);
  });

  it('refuses to summarise nothing', () => {
    expect(() => summariseGroup([])).toThrow(/no measurements/);
  });
});

describe('measureGroup (scenario)', () => {
  it('runs every task once per round, rotating the order, and keeps one sample per round', async () => {
    const order: string[] = [];
    const group: ScenarioGroup = {
      kind: 'scenario',
      name: 'g',
      baseline: 'a',
      tasks: ['a', 'b'],
      metrics: [COST],
      run: async (task, round) => {
        order.push(task);
        return { cost: task === 'a' ? 10 : round };
      },
    };
    const measured = await measureGroup(group, { ...SETTINGS.quick, rounds: 3 });
    expect(order).toEqual(['a', 'b', 'b', 'a', 'a', 'b']);
    expect(measured.tasks).toEqual([
      { name: 'a', samples: { cost: [10, 10, 10] } },
      { name: 'b', samples: { cost: [0, 1, 2] } },
    ]);
  });

  it('rejects a baseline that is not a task', async () => {
    const group: ScenarioGroup = {
      kind: 'scenario',
      name: 'g',
      baseline: 'missing',
      tasks: ['a'],
      metrics: [COST],
      run: async () => ({ cost: 1 }),
    };
    await expect(measureGroup(group, SETTINGS.quick)).rejects.toThrow(/baseline 'missing'/);
  });
});

describe('measureGroup (timed)', () => {
  it('reports throughput and the metrics the suite sampled in each round', async () => {
    let calls = 0;
    const measured = await measureGroup(
      {
        name: 't',
        baseline: 'slow',
        opsPerCall: 2,
        minIterations: 2,
        tasks: [
          // Real time on purpose: measureGroup measures wall-clock throughput.
          { name: 'slow', fn: () => new Promise((resolve) => setTimeout(resolve, 2)) },
          { name: 'fast', fn: () => ++calls },
        ],
        metrics: [COST],
        sample: () => ({ slow: { cost: 2 }, fast: { cost: 1 } }),
      },
      { forks: 1, rounds: 2, timeMs: 20, warmupMs: 5 },
    );
    const [slow, fast] = measured.tasks;
    expect(slow?.samples.ops).toHaveLength(2);
    expect(fast?.samples.cost).toEqual([1, 1]);
    expect((fast?.samples.ops?.[0] ?? 0) > (slow?.samples.ops?.[0] ?? 0)).toBe(true);
  });
});

describe('suiteSettings', () => {
  it('lets a suite override the mode defaults', () => {
    const suite = {
      name: 's',
      order: 1,
      title: 't',
      description: 'd',
      settings: { quick: { rounds: 1 } },
      groups: () => [],
    };
    expect(suiteSettings(suite, true)).toEqual({ ...SETTINGS.quick, rounds: 1 });
    expect(suiteSettings(suite, false)).toEqual(SETTINGS.full);
  });
});
