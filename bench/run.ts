/**
 * `npm run bench` (`tsx bench/run.ts`): runs every suite in `bench/suites/` (each file exports `suite`, a
 * {@link BenchSuite}), writes `bench/results/<suite>.json`, `.md` and `.svg`, then `bench/results/REPORT.md`,
 * and prints a short summary.
 *
 * Each suite runs in `forks` fresh processes (this script again, with `--fork <suite>`), which measure and
 * write their raw figures to a temporary file; this process merges them. See `measure.ts` for why.
 *
 * Flags: `--quick` (short run), `--suite <name>` (repeatable; default all), `--forks <n>`, `--report` (only
 * rewrite the Markdown, charts and headlines from the JSON already in `bench/results/`), `--help`.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type BenchSuite, measureGroup, type RawGroup, suiteSettings, summariseGroup } from './measure.js';
import {
  describeEnvironment,
  machineLine,
  readSuiteReports,
  type SuiteReport,
  writeCombinedReport,
  writeSuiteReport,
} from './report.js';

// The AWS SDK warns once per process that its 2027 releases need Node 22; the benchmarks run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const here = fileURLToPath(new URL('.', import.meta.url));
const suitesDirectory = join(here, 'suites');
const resultsDirectory = join(here, 'results');

function isSuite(value: unknown): value is BenchSuite {
  const candidate = value as Partial<BenchSuite> | undefined;
  return typeof candidate?.name === 'string' && typeof candidate.groups === 'function';
}

async function loadSuites(): Promise<BenchSuite[]> {
  const files = readdirSync(suitesDirectory)
    .filter((file) => file.endsWith('.ts'))
    .sort();
  const suites: BenchSuite[] = [];
  for (const file of files) {
    const module = (await import(pathToFileURL(join(suitesDirectory, file)).href)) as { suite?: unknown };
    if (!isSuite(module.suite)) throw new Error(`bench/suites/${file} does not export a 'suite' descriptor`);
    suites.push(module.suite);
  }
  return suites;
}

function tinybenchVersion(): string {
  const manifest = new URL('../node_modules/tinybench/package.json', import.meta.url);
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

/**
 * In a fork: measures every group of one suite and writes the raw figures to `out`.
 *
 * Suites unref their servers, sockets and timers so that a finished fork can exit; but then a suite waiting
 * on one of them has nothing keeping the process alive, and Node exits with code 0 in the middle of the
 * suite, without its figures (the `service` suite once did so on a loaded machine: `ENOENT .../service-0.json`).
 * A ref'd timer holds the process open until the figures are written, and a fork that ends any other way
 * says why and exits non-zero.
 */
async function runFork(suite: BenchSuite, quick: boolean, rounds: number, out: string): Promise<void> {
  const settings = { ...suiteSettings(suite, quick), rounds };
  const measured: (RawGroup & { timed: boolean })[] = [];
  let stage = 'building its groups';
  let written = false;
  const holdOpen = setInterval(() => {}, 60_000);
  process.on('exit', (code) => {
    if (written) return;
    console.error(
      `bench fork of suite '${suite.name}' is exiting (code ${code}) without its figures, while ${stage}`,
    );
    if (code === 0) process.exitCode = 1;
  });
  try {
    for (const group of await suite.groups({ quick })) {
      stage = `measuring group '${group.name}'`;
      measured.push({ ...(await measureGroup(group, settings)), timed: group.kind !== 'scenario' });
    }
  } finally {
    stage = 'tearing down';
    await suite.teardown?.();
  }
  writeFileSync(out, JSON.stringify(measured));
  written = true;
  clearInterval(holdOpen);
}

/** Runs this script as a fork for `suite` and returns what it measured. */
async function fork(
  suite: BenchSuite,
  quick: boolean,
  rounds: number,
  directory: string,
  index: number,
): Promise<(RawGroup & { timed: boolean })[]> {
  const out = join(directory, `${suite.name}-${index}.json`);
  const args = [
    ...process.execArgv,
    ...(suite.nodeFlags ?? []),
    fileURLToPath(import.meta.url),
    '--fork',
    suite.name,
    '--out',
    out,
    '--rounds',
    String(rounds),
  ];
  if (quick) args.push('--quick');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0)
    throw new Error(
      `fork ${index + 1} of suite '${suite.name}' exited with code ${String(code)} (its reason is printed above)`,
    );
  if (!existsSync(out))
    throw new Error(
      `fork ${index + 1} of suite '${suite.name}' exited with code 0 but wrote no figures to ${out}`,
    );
  return JSON.parse(readFileSync(out, 'utf8')) as (RawGroup & { timed: boolean })[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      suite: { type: 'string', multiple: true },
      forks: { type: 'string' },
      fork: { type: 'string' },
      out: { type: 'string' },
      rounds: { type: 'string' },
      report: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const all = await loadSuites();
  if (values.fork !== undefined) {
    const suite = all.find((candidate) => candidate.name === values.fork);
    if (suite === undefined || values.out === undefined || values.rounds === undefined)
      throw new Error(`bad fork arguments: ${values.fork}`);
    await runFork(suite, values.quick, Number(values.rounds), values.out);
    // Suites may leave unref'd servers or timers behind; the figures are written, so leave now.
    process.exit(0);
  }
  if (values.report) {
    for (const report of readSuiteReports(resultsDirectory)) {
      const suite = all.find((candidate) => candidate.name === report.suite);
      writeSuiteReport(resultsDirectory, {
        ...report,
        headlines: suite?.headline?.(report.groups) ?? report.headlines,
      });
    }
    console.log(
      `rewrote ${writeCombinedReport(resultsDirectory)
        .map((r) => `${r.suite}.md/.svg`)
        .join(', ')} and REPORT.md`,
    );
    return;
  }
  if (values.help) {
    console.log(
      `usage: npm run bench -- [--quick] [--suite <name>]... [--forks <n>] | --report\nsuites: ${all.map((s) => s.name).join(', ')}`,
    );
    return;
  }
  const wanted = values.suite ?? all.map((suite) => suite.name);
  const unknown = wanted.filter((name) => !all.some((suite) => suite.name === name));
  if (unknown.length > 0) {
    throw new Error(`unknown suite(s): ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
  }
  let forkOverride: number | undefined;
  if (values.forks !== undefined) {
    forkOverride = Number(values.forks);
    if (!Number.isInteger(forkOverride) || forkOverride < 1)
      throw new Error(`--forks must be a positive integer, got ${values.forks}`);
  }
  const environment = describeEnvironment(tinybenchVersion());
  mkdirSync(resultsDirectory, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), 'shadow-sync-bench-'));
  const runStarted = performance.now();
  console.log(`${machineLine(environment)}${values.quick ? ' (quick run)' : ''}`);
  const selected = all
    .filter((candidate) => wanted.includes(candidate.name))
    .sort((a, b) => a.order - b.order);
  try {
    for (const suite of selected) {
      const settings = suiteSettings(suite, values.quick);
      if (forkOverride !== undefined) settings.forks = forkOverride;
      const started = performance.now();
      const date = new Date().toISOString();
      const suiteEnvironment = describeEnvironment(environment.tinybench);
      console.log(
        `\n${suite.order}. ${suite.title} (${suite.name}): ${settings.forks} × ${settings.rounds} rounds`,
      );
      const forks: (RawGroup & { timed: boolean })[][] = [];
      for (let index = 0; index < settings.forks; index++) {
        forks.push(await fork(suite, values.quick, settings.rounds, scratch, index));
      }
      const groups = (forks[0] ?? []).map((_, group) =>
        summariseGroup(forks.map((measured) => measured[group]).filter((raw) => raw !== undefined)),
      );
      const report: SuiteReport = {
        suite: suite.name,
        order: suite.order,
        title: suite.title,
        description: suite.description,
        ...(values.quick && suite.quickNote !== undefined ? { quickNote: suite.quickNote } : {}),
        date,
        quick: values.quick,
        settings,
        timed: (forks[0] ?? []).some((group) => group.timed),
        durationSeconds: (performance.now() - started) / 1000,
        environment: suiteEnvironment,
        groups,
        headlines: suite.headline?.(groups) ?? [],
      };
      writeSuiteReport(resultsDirectory, report);
      console.log(`   done in ${report.durationSeconds.toFixed(1)} s`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const reports = writeCombinedReport(resultsDirectory);
  console.log(
    `\nSummary (${((performance.now() - runStarted) / 1000).toFixed(0)} s; ratios against the peer named in each line, same run):`,
  );
  for (const report of reports.filter((r) => wanted.includes(r.suite))) {
    console.log(`${report.order}. ${report.title}${report.quick ? ' (quick)' : ''}`);
    for (const headline of report.headlines) console.log(`   - ${headline}`);
  }
  console.log(
    `\nwrote bench/results/REPORT.md, <suite>.json/.md/.svg (${reports.map((r) => r.suite).join(', ')})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
