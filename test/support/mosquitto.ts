/**
 * Test fixtures for an external broker: a free loopback port, and a real mosquitto process on it that a test
 * starts in `beforeAll` and stops in `afterAll`. A missing mosquitto fails the test with a clear message.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMosquitto } from '../../src/emulator/managed-mosquitto.js';

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The mosquitto binary, found as the service finds it; a missing one fails the test with a clear message. */
function mosquittoPath(): string {
  const path = findMosquitto();
  if (path !== undefined) return path;
  throw new Error(
    'mosquitto is not installed: the external-broker tests need it (Debian: apt-get install -y mosquitto; npm test installs it when run as root)',
  );
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = netConnect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`mosquitto did not accept connections on port ${port}: ${output()}`);
}

/** A running mosquitto on loopback. */
export interface Mosquitto {
  /** `mqtt://127.0.0.1:<port>` */
  url: string;
  /** What mosquitto printed so far. */
  log(): string;
  /** Stops the process and removes its configuration directory. */
  stop(): Promise<void>;
}

/**
 * Starts mosquitto on a free loopback port, anonymous access allowed, no persistence, extra configuration
 * lines appended (for example `password_file` and `allow_anonymous false`).
 *
 * @param extraConfig - lines added to the generated configuration; `dir` is the process's own temp directory
 */
export async function startMosquitto(extraConfig: (dir: string) => string[] = () => []): Promise<Mosquitto> {
  const binary = mosquittoPath();
  const dir = mkdtempSync(join(tmpdir(), 'shadow-sync-mosquitto-'));
  const port = await freePort();
  const config = join(dir, 'mosquitto.conf');
  const lines = [`listener ${port} 127.0.0.1`, 'persistence false', 'log_dest stderr', ...extraConfig(dir)];
  if (!lines.some((line) => line.startsWith('allow_anonymous'))) lines.push('allow_anonymous true');
  writeFileSync(config, `${lines.join('\n')}\n`);
  let log = '';
  const child = spawn(binary, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (chunk) => {
    log += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    log += chunk;
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, child, () => log);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `mqtt://127.0.0.1:${port}`, log: () => log, stop };
}
