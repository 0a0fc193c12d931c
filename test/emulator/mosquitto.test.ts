import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientPublish } from '../../src/emulator/broker.js';
import { type MqttFront, startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { connectTestClient, type TestClient } from './mqtt-test-client.js';

/** The mosquitto binary: Debian puts it in /usr/sbin, which is not always on a non-root PATH. */
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
  throw new Error(
    'mosquitto is not installed: the external-broker tests need it (Debian: apt-get install -y mosquitto; .ci/run installs it)',
  );
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

describe('the service joined to an external mosquitto broker', () => {
  let dir: string;
  let mosquitto: ChildProcess;
  let brokerUrl: string;
  let engine: ShadowEngine;
  let front: MqttFront;
  let device: TestClient;
  let log = '';

  beforeAll(async () => {
    const binary = findMosquitto();
    dir = mkdtempSync(join(tmpdir(), 'shadow-sync-mosquitto-'));
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
    brokerUrl = `mqtt://127.0.0.1:${port}`;
    engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 },
    });
    front = await startMqttFront(engine, {
      broker: brokerUrl,
      serviceClient: { clientId: 'shadow-service' },
    });
    device = await connectTestClient(brokerUrl, { clientId: 'lamp' });
  }, 20_000);

  afterAll(async () => {
    await device?.close();
    await front?.close();
    await engine?.close();
    if (mosquitto !== undefined && mosquitto.exitCode === null) {
      const exited = new Promise((resolve) => mosquitto.once('exit', resolve));
      mosquitto.kill('SIGTERM');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('reports the external broker URL', () => {
    expect(front.mqttUrl).toBe(brokerUrl);
    expect(front.stats().broker).toBeUndefined();
  });

  it('a device on mosquitto updates, reads and deletes its classic shadow through the reserved topics', async () => {
    await device.subscribe([
      '$aws/things/lamp/shadow/update/accepted',
      '$aws/things/lamp/shadow/update/delta',
      '$aws/things/lamp/shadow/update/documents',
      '$aws/things/lamp/shadow/get/accepted',
      '$aws/things/lamp/shadow/delete/accepted',
      '$aws/things/lamp/shadow/update/rejected',
    ]);
    await device.publish('$aws/things/lamp/shadow/update', {
      state: { desired: { on: true } },
      clientToken: 'm1',
    });
    expect((await device.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
      state: { desired: { on: true } },
      version: 1,
      clientToken: 'm1',
    });
    expect((await device.take('$aws/things/lamp/shadow/update/delta')).json).toMatchObject({
      state: { on: true },
      version: 1,
    });
    expect((await device.take('$aws/things/lamp/shadow/update/documents')).json).toMatchObject({
      previous: null,
    });

    await device.publish('$aws/things/lamp/shadow/update', '{"state":');
    expect((await device.take('$aws/things/lamp/shadow/update/rejected')).json).toMatchObject({
      code: 400,
      message: 'Invalid JSON',
    });

    await device.publish('$aws/things/lamp/shadow/get', { clientToken: 'g' });
    expect((await device.take('$aws/things/lamp/shadow/get/accepted')).json).toMatchObject({
      state: { desired: { on: true }, delta: { on: true } },
      version: 1,
      clientToken: 'g',
    });
    await device.publish('$aws/things/lamp/shadow/delete', '');
    expect((await device.take('$aws/things/lamp/shadow/delete/accepted')).json).toMatchObject({ version: 1 });
  });

  it('named shadows work through mosquitto too', async () => {
    await device.subscribe([
      '$aws/things/lamp/shadow/name/cfg/update/accepted',
      '$aws/things/lamp/shadow/name/cfg/get/rejected',
    ]);
    await device.publish('$aws/things/lamp/shadow/name/nothing/get', '');
    await device.publish('$aws/things/lamp/shadow/name/cfg/get', { clientToken: 'n' });
    expect((await device.take('$aws/things/lamp/shadow/name/cfg/get/rejected')).json).toMatchObject({
      code: 404,
      message: "No shadow exists with name: 'cfg'",
      clientToken: 'n',
    });
    await device.publish('$aws/things/lamp/shadow/name/cfg/update', { state: { reported: { mode: 1 } } });
    expect((await device.take('$aws/things/lamp/shadow/name/cfg/update/accepted')).json).toMatchObject({
      version: 1,
    });
    expect(engine.read({ thingName: 'lamp', shadowName: 'cfg' })).toMatchObject({
      state: { reported: { mode: 1 } },
    });
  });

  it('keeps arrival order for many QoS 1 updates to one shadow', async () => {
    const d = await connectTestClient(brokerUrl, { clientId: 'counter' });
    await d.subscribe('$aws/things/counter/shadow/update/accepted');
    const count = 150;
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        d.publish('$aws/things/counter/shadow/update', { state: { reported: { n: i } } }, 1),
      ),
    );
    const accepted = await d.takeMany('$aws/things/counter/shadow/update/accepted', count, 15_000);
    expect(accepted.map((m) => (m.json as { state: { reported: { n: number } } }).state.reported.n)).toEqual(
      Array.from({ length: count }, (_, i) => i),
    );
    expect(accepted.map((m) => (m.json as { version: number }).version)).toEqual(
      Array.from({ length: count }, (_, i) => i + 1),
    );
    await d.close();
  });

  it('sees clients publishes on ordinary topics (client id unknown behind an external broker) and publishes to them', async () => {
    const seen: ClientPublish[] = [];
    const stop = front.onClientPublish((p) => seen.push(p));
    await front.clientPublishesObserved();
    await device.publish('my/things/lamp/state', { temperature: 19 }, 1);
    const deadline = Date.now() + 5000;
    while (!seen.some((p) => p.topic === 'my/things/lamp/state') && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    stop();
    const telemetry = seen.find((p) => p.topic === 'my/things/lamp/state');
    expect(telemetry?.clientId).toBeUndefined();
    expect(JSON.parse(telemetry?.payload.toString() ?? 'null')).toEqual({ temperature: 19 });

    await device.subscribe('my/things/lamp/cmd');
    await front.publish('my/things/lamp/cmd', '{"blink":1}', { qos: 1 });
    expect((await device.take('my/things/lamp/cmd')).json).toEqual({ blink: 1 });
  });

  it('fails clearly when the external broker cannot be reached', async () => {
    const closedPort = await freePort();
    const other = createShadowEngine();
    await expect(
      startMqttFront(other, { broker: `mqtt://127.0.0.1:${closedPort}`, connectTimeoutMs: 2000 }),
    ).rejects.toThrow(/ECONNREFUSED|timed out/);
    await other.close();
  });
});
