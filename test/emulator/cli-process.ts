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
export function waitForEndpoints(cli: CliProcess, timeoutMs = 15_000): Promise<ServeEndpoints> {
  return new Promise((resolve, reject) => {
    const stdout = cli.child.stdout;
    // Checked on each chunk of output (spawnCli's own listener, added first, has collected it by then).
    const check = () => {
      const match = LINE.exec(cli.stdout());
      if (match === null) return;
      done();
      resolve({ httpEndpoint: match[1] as string, mqttUrl: match[2] as string, line: match[0] });
    };
    const exited = () => {
      done();
      reject(new Error(`serve exited before printing its endpoints: ${cli.stderr()}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`serve printed no endpoints within ${timeoutMs} ms: ${cli.stderr()}`));
    }, timeoutMs);
    function done(): void {
      clearTimeout(timer);
      stdout?.off('data', check);
      cli.child.off('close', exited);
    }
    stdout?.on('data', check);
    // 'close' (not 'exit'): every byte of output has been read by then, so the error shows all of stderr.
    cli.child.once('close', exited);
    check();
    if (stdout?.closed === true) exited();
  });
}
