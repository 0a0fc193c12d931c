/**
 * Rules when the service joins an external broker (mosquitto): client publishes reach the rules through the
 * service's subscriptions, and a republish to a shadow request topic is applied exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RuleStats, type ShadowService, startShadowService } from '../../../src/emulator/index.js';
import { connectTestClient, type TestClient } from '../mqtt-test-client.js';

function findMosquitto(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'mosquitto');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error('mosquitto is not installed (Debian: apt-get install -y mosquitto; .ci/run installs it)');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
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

async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('rules with an external mosquitto broker', () => {
  let dir: string;
  let mosquitto: ChildProcess;
  let service: ShadowService;
  let device: TestClient;
  let watcher: TestClient;
  let log = '';
  const events: unknown[] = [];
  const stats = (name: string) => service.rules.stats()[name] as RuleStats;

  beforeAll(async () => {
    const binary = findMosquitto();
    dir = mkdtempSync(join(tmpdir(), 'shadow-sync-rules-mosquitto-'));
    const port = await freePort();
    const config = join(dir, 'mosquitto.conf');
    writeFileSync(
      config,
      [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', ''].join(
        '\n',
      ),
    );
    mosquitto = spawn(binary, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    mosquitto.stdout?.on('data', (chunk) => {
      log += chunk;
    });
    mosquitto.stderr?.on('data', (chunk) => {
      log += chunk;
    });
    await waitForPort(port, mosquitto, () => log);
    const brokerUrl = `mqtt://127.0.0.1:${port}`;
    service = await startShadowService({
      broker: brokerUrl,
      limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 1000 },
      rules: [
        {
          name: 'illegalState',
          sql: "SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True",
          actions: [
            {
              type: 'lambda',
              handler: async (event: unknown) => {
                events.push(event);
              },
            },
            // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
            { type: 'republish', topic: 'alerts/${topic(3)}', qos: 1 },
          ],
        },
        { name: 'probe', sql: "SELECT * FROM 'probe/#'", actions: [] },
        {
          name: 'relay',
          sql: "SELECT * FROM 'relay/+'",
          // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
          actions: [{ type: 'republish', topic: '$$aws/things/${topic(2)}/shadow/update' }],
        },
      ],
    });
    device = await connectTestClient(brokerUrl, { clientId: 'ac-7' });
    watcher = await connectTestClient(brokerUrl, { clientId: 'watcher' });
    await watcher.subscribe(['alerts/+', '$aws/things/ac-9/shadow/update/accepted'], 1);
    // startShadowService resolves only after the broker acknowledged the service's `#` subscription, so the
    // very first client publish must reach the rules.
    await device.publish('probe/1', '{}', 1);
    const deadline = Date.now() + 5000;
    while (stats('probe').messages === 0) {
      if (Date.now() > deadline) throw new Error('the service missed the first client publish');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }, 20_000);

  afterAll(async () => {
    await device?.close();
    await watcher?.close();
    await service?.close();
    if (mosquitto !== undefined && mosquitto.exitCode === null) {
      const exited = new Promise((resolve) => mosquitto.once('exit', resolve));
      mosquitto.kill('SIGTERM');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("the seed's rule fires on a device publish through mosquitto and republishes once", async () => {
    const update = { state: { reported: { someIllegalState: true } } };
    await device.publish('$aws/things/ac-7/shadow/update', update, 1);
    await eventually(() => events.length === 1, 'the Lambda');
    expect(events[0]).toEqual({ ...update, device_id: 'ac-7' });
    expect((await watcher.take('alerts/ac-7')).json).toEqual({ ...update, device_id: 'ac-7' });
    expect(await watcher.quiet('alerts/ac-7', 100)).toBe(true);
    expect(stats('illegalState')).toMatchObject({ matched: 1, actionsSucceeded: 2, actionsFailed: 0 });
  });

  it('a republish to a shadow request topic is applied exactly once', async () => {
    await device.publish('relay/ac-9', { state: { desired: { power: 'on' } } }, 1);
    const accepted = await watcher.take('$aws/things/ac-9/shadow/update/accepted');
    expect(accepted.json).toMatchObject({ state: { desired: { power: 'on' } }, version: 1 });
    expect(await watcher.quiet('$aws/things/ac-9/shadow/update/accepted', 100)).toBe(true);
  });
});
