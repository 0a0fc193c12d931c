/**
 * `npm run bench` (`tsx bench/run.ts`): runs every suite in `bench/suites/` (each file exports `suite`, a
 * {@link BenchSuite}), writes `bench/results/<suite>.json` and `.md`, then `bench/results/REPORT.md`.
 *
 * Each suite runs in `forks` fresh processes (this script again, with `--fork <suite>`), which measure and
 * write their raw figures to a temporary file; this process merges them. See `measure.ts` for why.
 *
 * Flags: `--quick` (short run), `--suite <name>` (repeatable; default all), `--forks <n>`, `--help`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type BenchSuite, measureGroup, type RawGroup, SETTINGS, summariseGroup } from './measure.js';
import { describeEnvironment, type SuiteReport, writeCombinedReport, writeSuiteReport } from './report.js';

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

/** In a fork: measures every group of one suite and writes the raw figures to `out`. */
async function runFork(suite: BenchSuite, quick: boolean, out: string): Promise<void> {
  const settings = quick ? SETTINGS.quick : SETTINGS.full;
  const measured: RawGroup[] = [];
  try {
    for (const group of await suite.groups({ quick })) measured.push(await measureGroup(group, settings));
  } finally {
    await suite.teardown?.();
  }
  writeFileSync(out, JSON.stringify(measured));
}

/** Runs this script as a fork for `suite` and returns what it measured. */
async function fork(suite: string, quick: boolean, directory: string, index: number): Promise<RawGroup[]> {
  const out = join(directory, `${suite}-${index}.json`);
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--fork', suite, '--out', out];
  if (quick) args.push('--quick');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`fork ${index + 1} of suite '${suite}' exited with code ${String(code)}`);
  return JSON.parse(readFileSync(out, 'utf8')) as RawGroup[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      suite: { type: 'string', multiple: true },
      forks: { type: 'string' },
      fork: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const all = await loadSuites();
  if (values.fork !== undefined) {
    const suite = all.find((candidate) => candidate.name === values.fork);
    if (suite === undefined || values.out === undefined)
      throw new Error(`bad fork arguments: ${values.fork}`);
    await runFork(suite, values.quick, values.out);
    // Suites may leave unref'd servers or timers behind; the figures are written, so leave now.
    process.exit(0);
  }
  if (values.help) {
    console.log(
      `usage: npm run bench -- [--quick] [--suite <name>]... [--forks <n>]\nsuites: ${all.map((s) => s.name).join(', ')}`,
    );
    return;
  }
  const wanted = values.suite ?? all.map((suite) => suite.name);
  const unknown = wanted.filter((name) => !all.some((suite) => suite.name === name));
  if (unknown.length > 0) {
    throw new Error(`unknown suite(s): ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
  }
  const settings = { ...(values.quick ? SETTINGS.quick : SETTINGS.full) };
  if (values.forks !== undefined) {
    const forks = Number(values.forks);
    if (!Number.isInteger(forks) || forks < 1)
      throw new Error(`--forks must be a positive integer, got ${values.forks}`);
    settings.forks = forks;
  }
  const environment = describeEnvironment(tinybenchVersion());
  mkdirSync(resultsDirectory, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), 'shadow-sync-bench-'));
  console.log(
    `${environment.cpu}, ${environment.cores} cores, Node ${environment.node}, ${settings.forks} forks${values.quick ? ', quick' : ''}`,
  );
  try {
    for (const suite of all.filter((candidate) => wanted.includes(candidate.name))) {
      const started = performance.now();
      const date = new Date().toISOString();
      const forks: RawGroup[][] = [];
      for (let index = 0; index < settings.forks; index++) {
        forks.push(await fork(suite.name, values.quick, scratch, index));
      }
      const groups = (forks[0] ?? []).map((_, group) =>
        summariseGroup(forks.map((measured) => measured[group]).filter((raw) => raw !== undefined)),
      );
      for (const result of groups) {
        const line = result.tasks
          .filter((task) => task.name !== result.baseline)
          .map((task) => `${task.name} ${task.ratio.median.toFixed(2)}x`)
          .join(', ');
        console.log(`${suite.name} / ${result.name}: ${line} (vs ${result.baseline})`);
      }
      const report: SuiteReport = {
        suite: suite.name,
        title: suite.title,
        description: suite.description,
        date,
        quick: values.quick,
        settings,
        durationSeconds: (performance.now() - started) / 1000,
        environment,
        groups,
      };
      writeSuiteReport(resultsDirectory, report);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const included = writeCombinedReport(resultsDirectory);
  console.log(`wrote bench/results/REPORT.md (${included.join(', ')})`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
