/**
 * Test support: runs the real `shadow-sync` CLI (`node --import tsx src/cli/main.ts ...`) in a child process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A running CLI process with its output collected. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal name) once the process ended. */
  readonly exited: Promise<number | NodeJS.Signals>;
}

/** Spawns the CLI with `args`. */
export function spawnCli(args: string[]): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal as NodeJS.Signals)));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** The endpoints printed by `serve`. */
export interface ServeEndpoints {
  httpEndpoint: string;
  mqttUrl: string;
  line: string;
}

const LINE = /^(http:\/\/[^\s]+) (mqtts?:\/\/[^\s]+)\n/;

/** Waits for the one line `serve` prints once it accepts connections. */
export async function waitForEndpoints(cli: CliProcess, timeoutMs = 15_000): Promise<ServeEndpoints> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = LINE.exec(cli.stdout());
    if (match !== null)
      return { httpEndpoint: match[1] as string, mqttUrl: match[2] as string, line: match[0] };
    if (cli.child.exitCode !== null || cli.child.signalCode !== null)
      throw new Error(`serve exited before printing its endpoints: ${cli.stderr()}`);
    if (Date.now() > deadline)
      throw new Error(`serve printed no endpoints within ${timeoutMs} ms: ${cli.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
