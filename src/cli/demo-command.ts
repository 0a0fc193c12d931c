/**
 * `shadow-sync demo`: runs the reference system (local service, IoT rules, Lambdas, a fleet of simulated air
 * conditioners) under app traffic for a bounded time and prints a summary; exits 1 when an update was lost or
 * the fleet did not converge.
 */
import { parseArgs } from 'node:util';
import type { DemoOptions, DemoProgress, DemoSummary } from '../../examples/demo.js';
import { isShadowError } from '../errors.js';
import { parseCommandLine, UsageError } from './command-line.js';
import type { CliCommand, CliIo } from './run-cli.js';

const HELP = `Usage: shadow-sync demo [options]

Starts the local shadow service with its IoT rules, the reference Lambdas and a fleet of simulated air
conditioners, sends app traffic (concurrent desired changes through the set-desired Lambda) for a bounded
time, and prints a summary: changes issued and committed, conflicts resolved, retries, lost updates, time
for a change to reach the device, shadow versions per hour, alerts, telemetry records.
No AWS account and no network beyond 127.0.0.1. Exits 1 if an update was lost or the fleet did not converge.

Options:
  --duration S        seconds of app traffic (default 20)
  --devices N         air conditioners in the fleet (default 50)
  --no-split          report temperature and humidity to the shadow too (the seed's failure)
  --compare           run twice, with and without the split, and print both side by side
  --rate N            desired changes per second over the fleet (default devices / 5)
  --latency MS        simulated Lambda <-> IoT data plane round trip in ms (default 50; 0 = loopback only)
  --grace S           seconds the fleet gets to converge after traffic stops (default 10)
  --seed N            seed of every random choice (default 1)
  --plain             progress as plain lines even on a terminal
  --keep-open         after the summary, keep the service and the fleet running until Ctrl-C (watch them
                      on the web console)
  --no-console        do not serve the web console (by default at <http endpoint>/console, loopback only)
  -h, --help          show this help`;

function parseNumber(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number < min || number > max)
    throw new UsageError(`${flag} must be a number ${min}-${max}, got '${value}'`);
  return number;
}

function parseInteger(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  const number = parseNumber(value, flag, min, max);
  if (number !== undefined && !Number.isInteger(number))
    throw new UsageError(`${flag} must be a whole number, got '${value}'`);
  return number;
}

/** The demo options the arguments ask for, `'help'`, and whether progress must be plain lines. */
function optionsFrom(
  args: string[],
): { options: DemoOptions; plain: boolean; compare: boolean; keepOpen: boolean } | 'help' {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(args).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) return 'help';
  const options: DemoOptions = {};
  const duration = parseNumber(values.duration, '--duration', 0.1, 3_600);
  if (duration !== undefined) options.durationMs = Math.round(duration * 1_000);
  const devices = parseInteger(values.devices, '--devices', 1, 1_000);
  if (devices !== undefined) options.devices = devices;
  if (values['no-split'] === true) options.split = false;
  const rate = parseNumber(values.rate, '--rate', 0.1, 1_000);
  if (rate !== undefined) options.changesPerSecond = rate;
  const latency = parseInteger(values.latency, '--latency', 0, 10_000);
  if (latency !== undefined) options.lambdaLatencyMs = latency;
  const grace = parseNumber(values.grace, '--grace', 0, 600);
  if (grace !== undefined) options.graceMs = Math.round(grace * 1_000);
  const seed = parseInteger(values.seed, '--seed', 0, 2 ** 32 - 1);
  if (seed !== undefined) options.seed = seed;
  if (values.compare === true && values['no-split'] === true)
    throw new UsageError('--compare runs both variants: leave out --no-split');
  if (values['no-console'] === true) options.console = false;
  return {
    options,
    plain: values.plain === true,
    compare: values.compare === true,
    keepOpen: values['keep-open'] === true,
  };
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      duration: { type: 'string' },
      devices: { type: 'string' },
      'no-split': { type: 'boolean' },
      compare: { type: 'boolean' },
      rate: { type: 'string' },
      latency: { type: 'string' },
      grace: { type: 'string' },
      seed: { type: 'string' },
      plain: { type: 'boolean' },
      'keep-open': { type: 'boolean' },
      'no-console': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

async function demo(args: string[], io: CliIo): Promise<number> {
  const commandLine = parseCommandLine('demo', HELP, () => optionsFrom(args), io);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const parsed = commandLine.options;
  // The AWS SDK warns once per process that its 2027 releases need Node 22; the demo's output is a table.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // Loaded on use: the reference system (Lambdas, their AWS SDK clients) is not needed by other commands.
  const { demoPassed, formatDemoComparison, formatDemoProgress, formatDemoSummary, runDemo } = await import(
    '../../examples/demo.js'
  );
  // On a terminal one status line is rewritten in place; anywhere else (CI logs, pipes) one line per second.
  const live = !parsed.plain && process.stdout.isTTY === true;
  let shown = false;
  const onProgress = (progress: DemoProgress) => {
    const line = formatDemoProgress(progress);
    if (live) {
      process.stdout.write(`\r\x1b[2K${line}`);
      shown = true;
    } else io.stdout(line);
  };
  const options = parsed.options;
  io.stdout(
    `shadow-sync demo: starting the local service, its rules, the Lambdas and ${options.devices ?? 50} air conditioners...`,
  );
  // Ctrl-C ends the app traffic early and still prints the summary; a second one stops at once. While the demo is
  // kept open after its summary, Ctrl-C shuts it down.
  const abort = new AbortController();
  let release: (() => void) | undefined;
  const onSignal = () => {
    if (release !== undefined) {
      release();
      release = undefined;
      return;
    }
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
    io.stderr('\nshadow-sync demo: stopping app traffic (Ctrl-C again to quit now)');
  };
  const onStarted = ({ consoleUrl }: { consoleUrl: string | undefined }) => {
    if (consoleUrl !== undefined) io.stdout(`shadow-sync demo: web console at ${consoleUrl}`);
  };
  /** With --keep-open: print what the run found, then keep the system up until Ctrl-C. */
  const holdOpen = async (print: () => void) => {
    if (shown) process.stdout.write('\n');
    shown = false;
    print();
    io.stdout('shadow-sync demo: still running (the fleet keeps reporting); Ctrl-C to stop');
    await new Promise<void>((resolve) => {
      release = resolve;
    });
  };
  process.on('SIGINT', onSignal);
  try {
    let printed = false;
    const first = (summary: DemoSummary) => {
      printed = true;
      for (const line of formatDemoSummary(summary)) io.stdout(line);
    };
    const summary = await runDemo({
      ...options,
      onProgress,
      onStarted,
      signal: abort.signal,
      ...(parsed.keepOpen && !parsed.compare
        ? { keepOpen: (s: DemoSummary) => holdOpen(() => first(s)) }
        : {}),
    });
    if (shown) process.stdout.write('\n');
    shown = false;
    if (!printed) first(summary);
    if (!parsed.compare) return demoPassed(summary) ? 0 : 1;
    io.stdout('\nshadow-sync demo: the same fleet and traffic again, without the split policy...');
    let comparedPrinted = false;
    const compared = (noSplit: DemoSummary) => {
      comparedPrinted = true;
      for (const line of formatDemoSummary(noSplit)) io.stdout(line);
      for (const line of formatDemoComparison(summary, noSplit)) io.stdout(line);
    };
    const noSplit = await runDemo({
      ...options,
      split: false,
      onProgress,
      onStarted,
      signal: abort.signal,
      ...(parsed.keepOpen ? { keepOpen: (s: DemoSummary) => holdOpen(() => compared(s)) } : {}),
    });
    if (shown) process.stdout.write('\n');
    if (!comparedPrinted) compared(noSplit);
    return demoPassed(summary) && demoPassed(noSplit) ? 0 : 1;
  } catch (error) {
    if (shown) process.stdout.write('\n');
    if (isShadowError(error) && error.code === 'OPTIONS') {
      io.stderr(`shadow-sync demo: ${error.message}`);
      return 2;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
  }
}

/** The `demo` subcommand. */
export const demoCommand: CliCommand = {
  summary: 'run the reference system under app traffic and check that no update is lost',
  run: demo,
};
