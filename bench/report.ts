/**
 * Writes benchmark results: `bench/results/<suite>.json` (everything measured), `<suite>.md` (one table per
 * group) and `REPORT.md` (every suite whose JSON is in the results folder, so running one suite keeps the
 * others' latest figures).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { GroupResult, MeasureSettings } from './measure.js';

/** The machine and runtime a run happened on. */
export interface Environment {
  cpu: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  /** 1-minute load average when the run started: above the core count, other work competed for the CPU. */
  loadAverage: number;
  os: string;
  node: string;
  tinybench: string;
}

/** Everything `bench/results/<suite>.json` holds. */
export interface SuiteReport {
  suite: string;
  title: string;
  description: string;
  date: string;
  quick: boolean;
  settings: MeasureSettings;
  durationSeconds: number;
  environment: Environment;
  groups: GroupResult[];
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

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const ratio = (value: number) => `${value.toFixed(2)}x`;
const percent = (value: number) => `${value.toFixed(1)} %`;

/**
 * The Markdown of one suite: settings, machine, then a table per group.
 *
 * @param report - the suite's results
 * @param level - heading level of the suite title
 */
export function suiteMarkdown(report: SuiteReport, level = 1): string {
  const h = '#'.repeat(level);
  const { environment: env, settings } = report;
  const lines = [
    `${h} ${report.title}`,
    '',
    report.description,
    '',
    `- Run: ${report.date}${report.quick ? ' (quick)' : ''}, ${settings.forks} forks (fresh processes) × ${settings.rounds} rounds of ${settings.timeMs} ms per task (warm-up ${settings.warmupMs} ms), ${report.durationSeconds.toFixed(1)} s in all`,
    `- Machine: ${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB RAM (${env.freeMemoryGiB} GiB free), ${env.os}, load average ${env.loadAverage} at start`,
    `- Runtime: Node ${env.node}, tinybench ${env.tinybench}`,
    '- ops/s: median over all rounds of all forks (min–max); ratio: this task over the baseline in the same round, median (min–max); per fork: median ratio in each fork; runs: calls timed per round (min–max); ±: tinybench relative margin of error, median',
    '',
  ];
  for (const group of report.groups) {
    lines.push(`${h}# ${group.name}`, '');
    if (group.input !== undefined) lines.push(group.input, '');
    lines.push(`Baseline: **${group.baseline}**; ${group.opsPerCall} operations per call.`, '');
    lines.push(
      '| task | ops/s (median) | ops/s min–max | ± | ratio vs baseline | ratio min–max | per fork | runs |',
    );
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const task of group.tasks) {
      const runs = task.runs.length === 0 ? '' : `${Math.min(...task.runs)}–${Math.max(...task.runs)}`;
      const rme =
        task.rme.length === 0 ? 0 : ([...task.rme].sort((a, b) => a - b)[task.rme.length >> 1] ?? 0);
      lines.push(
        `| ${task.name === group.baseline ? `${task.name} (baseline)` : task.name} | ${integer.format(task.ops.median)} | ${integer.format(task.ops.min)}–${integer.format(task.ops.max)} | ${percent(rme)} | ${ratio(task.ratio.median)} | ${ratio(task.ratio.min)}–${ratio(task.ratio.max)} | ${(task.forkRatios ?? []).map(ratio).join(', ')} | ${runs} |`,
      );
    }
    lines.push('');
    for (const goal of group.goals) {
      lines.push(
        `Goal: ${goal.task} at least ${ratio(goal.minRatio)} ${group.baseline}: ${goal.met ? 'met' : '**not met**'} (${ratio(goal.reached)}).`,
      );
    }
    if (group.goals.length > 0) lines.push('');
  }
  return lines.join('\n');
}

/**
 * Writes `<suite>.json` and `<suite>.md` into `directory`.
 *
 * @param directory - the results folder
 * @param report - the suite's results
 */
export function writeSuiteReport(directory: string, report: SuiteReport): void {
  writeFileSync(join(directory, `${report.suite}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(directory, `${report.suite}.md`), `${suiteMarkdown(report)}\n`);
}

/**
 * Rewrites `REPORT.md` from every `<suite>.json` in `directory`.
 *
 * @param directory - the results folder
 * @returns the suites included
 */
export function writeCombinedReport(directory: string): string[] {
  const reports = readdirSync(directory)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => JSON.parse(readFileSync(join(directory, file), 'utf8')) as SuiteReport);
  const lines = [
    '# shadow-sync benchmarks',
    '',
    'Written by `npm run bench` (`-- --quick` for a short run, `-- --suite <name>` for one suite). Every figure',
    'is a ratio against a named peer measured in the same run, on the machine named under each suite.',
    '',
    '| suite | group | task | ratio vs baseline (median) | baseline |',
    '| --- | --- | --- | ---: | --- |',
  ];
  for (const report of reports) {
    for (const group of report.groups) {
      for (const task of group.tasks) {
        if (task.name === group.baseline) continue;
        lines.push(
          `| ${report.suite} | ${group.name} | ${task.name} | ${ratio(task.ratio.median)} | ${group.baseline} |`,
        );
      }
    }
  }
  lines.push('');
  for (const report of reports) lines.push(suiteMarkdown(report, 2), '');
  writeFileSync(join(directory, 'REPORT.md'), `${lines.join('\n').trimEnd()}\n`);
  return reports.map((report) => report.suite);
}
