/**
 * Writes benchmark results: `bench/results/<suite>.json` (everything measured), `<suite>.md` (one table),
 * `<suite>.svg` (a chart of the ratios against the peer) and `REPORT.md` (every suite whose JSON is in the
 * results folder, so running one suite keeps the others' latest figures).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { GroupResult, MeasureSettings, Metric, Summary } from './measure.js';
import { type ChartPanel, formatRatio, renderRatioChart } from './svg-chart.js';

/** The machine and runtime a run happened on. */
export interface Environment {
  cpu: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  /** 1-minute load average when the suite started: above the core count, other work competed for the CPU. */
  loadAverage: number;
  os: string;
  node: string;
  tinybench: string;
}

/** Everything `bench/results/<suite>.json` holds. */
export interface SuiteReport {
  suite: string;
  order: number;
  title: string;
  description: string;
  /** What a quick run shrinks (present on quick runs). */
  quickNote?: string;
  date: string;
  quick: boolean;
  settings: MeasureSettings;
  /** Whether the suite has timed (tinybench) groups: their settings line mentions time budgets. */
  timed: boolean;
  durationSeconds: number;
  environment: Environment;
  groups: GroupResult[];
  headlines: string[];
}

/**
 * Describes this machine and runtime.
 *
 * @param tinybenchVersion - the installed tinybench version
 */
export function describeEnvironment(tinybenchVersion: string): Environment {
  const processors = cpus();
  const gib = (bytes: number) => Math.round((bytes / 2 ** 30) * 10) / 10;
  return {
    cpu: processors[0]?.model.trim() ?? 'unknown',
    cores: processors.length,
    memoryGiB: gib(totalmem()),
    freeMemoryGiB: gib(freemem()),
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    os: `${platform()} ${release()}`,
    node: process.version,
    tinybench: tinybenchVersion,
  };
}

const formatters = new Map<number, Intl.NumberFormat>();

/** A metric value with the metric's decimals and thousands separators. */
export function formatValue(metric: Metric, value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const digits = metric.digits ?? 0;
  let format = formatters.get(digits);
  if (format === undefined) {
    format = new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
    formatters.set(digits, format);
  }
  return format.format(value);
}

const spread = (metric: Metric, s: Summary) =>
  s.min === s.max
    ? formatValue(metric, s.median)
    : `${formatValue(metric, s.median)} (${formatValue(metric, s.min)}–${formatValue(metric, s.max)})`;

const ratioSpread = (s: Summary | undefined) =>
  s === undefined
    ? 'n/a'
    : s.min === s.max
      ? formatRatio(s.median)
      : `${formatRatio(s.median)} (${formatRatio(s.min)}–${formatRatio(s.max)})`;

/** Every metric of the suite's groups, in order of first appearance. */
function suiteMetrics(report: SuiteReport): Metric[] {
  const seen = new Map<string, Metric>();
  for (const group of report.groups) for (const m of group.metrics) if (!seen.has(m.key)) seen.set(m.key, m);
  return [...seen.values()];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** How the figures were taken, in one line. */
export function runLine(report: SuiteReport): string {
  const { settings } = report;
  const rounds = settings.forks * settings.rounds;
  const how = report.timed
    ? ` of ${settings.timeMs} ms per task (warm-up ${settings.warmupMs} ms) = ${plural(rounds, 'sample')} per figure`
    : ` = ${plural(rounds, 'run')} per task (a run may give several samples, see above)`;
  return `${report.date}${report.quick ? ' (quick)' : ''}: ${plural(settings.forks, 'fork')} (fresh processes) × ${plural(settings.rounds, 'round')}${how}, ${report.durationSeconds.toFixed(1)} s in all`;
}

/** The machine and runtime, in one line. */
export function machineLine(env: Environment): string {
  return `${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB RAM, ${env.os}, Node ${env.node}, tinybench ${env.tinybench}; load average ${env.loadAverage} at start`;
}

/**
 * The Markdown of one suite: what it measures, how, on what, the chart, then one table.
 *
 * @param report - the suite's results
 * @param level - heading level of the suite title
 */
export function suiteMarkdown(report: SuiteReport, level = 1): string {
  const h = '#'.repeat(level);
  const metrics = suiteMetrics(report);
  const lines = [`${h} ${report.order}. ${report.title}`, '', report.description, ''];
  if (report.quick && report.quickNote !== undefined) lines.push(`**Quick run:** ${report.quickNote}`, '');
  lines.push(
    `- Run: ${runLine(report)}`,
    `- Machine: ${machineLine(report.environment)}`,
    '- Cells: median (min–max) over all samples (↑ more is better, ↓ less is better); "vs peer": the ratio to the peer (the row marked *peer*) in the same round, median (min–max).',
    '',
    `![${report.title}: ratios against the peer](${report.suite}.svg)`,
    '',
  );
  const header = [
    'group',
    'task',
    ...metrics.flatMap((m) => [`${m.label} ${m.better === 'higher' ? '↑' : '↓'}`, 'vs peer']),
  ];
  lines.push(`| ${header.join(' | ')} |`, `| --- | --- | ${metrics.map(() => '---: | ---:').join(' | ')} |`);
  for (const group of report.groups) {
    for (const task of group.tasks) {
      const peer = task.name === group.baseline;
      const cells = metrics.flatMap((m) => {
        const result = task.metrics[m.key];
        if (result === undefined) return ['', ''];
        return [spread(m, result.value), peer ? '1x' : ratioSpread(result.ratio)];
      });
      lines.push(`| ${group.name} | ${peer ? `*peer:* ${task.name}` : task.name} | ${cells.join(' | ')} |`);
    }
  }
  lines.push('');
  const notes = report.groups.filter((group) => group.input !== undefined);
  for (const group of notes) lines.push(`- **${group.name}**: ${group.input}`);
  if (notes.length > 0) lines.push('');
  if (report.settings.forks > 1) {
    lines.push(
      `Median ratio of ${metrics[0]?.label ?? 'the first metric'} within each fork (how much the processes disagreed):`,
      '',
    );
    for (const group of report.groups) {
      const perFork = group.tasks
        .filter((task) => task.name !== group.baseline)
        .map((task) => `${task.name} ${task.forkRatios.map(formatRatio).join(', ')}`);
      lines.push(`- ${group.name}: ${perFork.join('; ')}`);
    }
    lines.push('');
  }
  const goals = report.groups.flatMap((group) =>
    group.goals.map((goal) => {
      const metric = group.metrics.find((m) => m.key === goal.metric);
      const bound = [
        goal.atLeast === undefined
          ? ''
          : `at least ${goal.on === 'ratio' ? formatRatio(goal.atLeast) : goal.atLeast}`,
        goal.atMost === undefined
          ? ''
          : `at most ${goal.on === 'ratio' ? formatRatio(goal.atMost) : goal.atMost}`,
      ]
        .filter((text) => text !== '')
        .join(' and ');
      const what =
        goal.on === 'ratio'
          ? `${metric?.label ?? goal.metric} vs ${group.baseline}`
          : (metric?.label ?? goal.metric);
      const reached =
        goal.on === 'ratio'
          ? formatRatio(goal.reached)
          : metric === undefined
            ? String(goal.reached)
            : formatValue(metric, goal.reached);
      return `- Goal (${group.name}): ${goal.task}, ${what} ${bound}: ${goal.met ? 'met' : '**not met**'} (${reached}).`;
    }),
  );
  if (goals.length > 0) lines.push(...goals, '');
  return lines.join('\n');
}

/**
 * The chart of one suite: a panel per group, a bar per task (other than the peer) and charted metric.
 *
 * @param report - the suite's results
 * @returns SVG text
 */
export function suiteChart(report: SuiteReport): string {
  const panels: ChartPanel[] = report.groups.map((group) => {
    const charted = group.metrics.filter((m) => m.chart !== false);
    const others = group.tasks.filter((task) => task.name !== group.baseline);
    const peer = group.tasks.find((task) => task.name === group.baseline);
    return {
      title: `${group.name} — vs ${group.baseline}`,
      bars: others.flatMap((task) =>
        charted.map((metric) => ({
          label: charted.length === 1 ? task.name : `${metric.label} (${metric.better} is better)`,
          ...(charted.length > 1 && others.length > 1 ? { group: task.name } : {}),
          ratio: task.metrics[metric.key]?.ratio,
          better: metric.better,
          detail: `${formatValue(metric, peer?.metrics[metric.key]?.value.median ?? Number.NaN)} → ${formatValue(metric, task.metrics[metric.key]?.value.median ?? Number.NaN)}`,
        })),
      ),
    };
  });
  const { environment: env, settings } = report;
  return renderRatioChart({
    title: `${report.order}. ${report.title}`,
    subtitle: [
      `Ratios against the peer measured in the same run${report.quick ? ' (quick run)' : ''}: ${report.timed ? `${plural(settings.forks, 'fork')} × ${plural(settings.rounds, 'round')}` : `${plural(settings.forks * settings.rounds, 'run')} per task`}; grey: peer median → this median`,
      `${env.cpu}, ${env.cores} cores, Node ${env.node}, ${report.date.slice(0, 16).replace('T', ' ')} UTC`,
    ],
    panels,
  });
}

/**
 * Writes `<suite>.json`, `<suite>.md` and `<suite>.svg` into `directory`.
 *
 * @param directory - the results folder
 * @param report - the suite's results
 */
export function writeSuiteReport(directory: string, report: SuiteReport): void {
  writeFileSync(join(directory, `${report.suite}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(directory, `${report.suite}.md`), `${suiteMarkdown(report)}\n`);
  writeFileSync(join(directory, `${report.suite}.svg`), suiteChart(report));
}

/** Reads every `<suite>.json` in `directory`, in report order. */
export function readSuiteReports(directory: string): SuiteReport[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.json'))
    .map((file) => JSON.parse(readFileSync(join(directory, file), 'utf8')) as SuiteReport)
    .filter((report) => Array.isArray(report.headlines)) // skip files of an older format
    .sort((a, b) => a.order - b.order);
}

/**
 * Rewrites `REPORT.md` from every `<suite>.json` in `directory`.
 *
 * @param directory - the results folder
 * @returns the suites included
 */
export function writeCombinedReport(directory: string): SuiteReport[] {
  const reports = readSuiteReports(directory);
  const lines = [
    '# shadow-sync benchmarks',
    '',
    'Written by `npm run bench` (`-- --quick` for a short run, `-- --suite <name>` for one suite). Every figure',
    'is given next to a named peer measured in the same run on the same machine, as a ratio, with the median and',
    'the spread (min–max) over all samples. Each suite states its machine, Node version and sample count.',
    '',
    '## Summary',
    '',
  ];
  for (const report of reports) {
    lines.push(`- **${report.order}. ${report.title}**${report.quick ? ' (quick run)' : ''}:`);
    for (const headline of report.headlines) lines.push(`  - ${headline}`);
  }
  lines.push('');
  for (const report of reports) lines.push(suiteMarkdown(report, 2), '');
  writeFileSync(join(directory, 'REPORT.md'), `${lines.join('\n').trimEnd()}\n`);
  return reports;
}
