/**
 * With client certificates the device policy applies unless it is explicitly turned off: the certificate's CN
 * is the identity, a device can neither act on another thing's shadow nor connect under its client id.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/run-cli.js';
import { type ShadowService, startShadowService } from '../../../src/emulator/index.js';
import { makeTestPki, type TestPki } from '../../support/test-pki.js';
import { spawnCli, waitForEndpoints } from '../cli-process.js';
import { buildMqttClient, connectTestClient } from '../mqtt-test-client.js';

let dir: string;
let pki: TestPki;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'shadow-cert-'));
  pki = makeTestPki(['aircon-1', 'aircon-2']);
  // The CLI reads the server's key and certificate and the CA from files.
  writeFileSync(join(dir, 'server.key'), pki.server.key);
  writeFileSync(join(dir, 'server.crt'), pki.server.cert);
  writeFileSync(join(dir, 'ca.crt'), pki.ca);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tlsOf = (cn: string) => ({
  ca: pki.ca,
  key: pki.clients[cn]?.key as string,
  cert: pki.clients[cn]?.cert as string,
});

/** 'connected' or 'refused' for a client presenting `cn`'s certificate with `clientId`. */
async function connectAs(url: string, cn: string, clientId: string): Promise<'connected' | 'refused'> {
  const client = buildMqttClient(url, { clientId, tls: tlsOf(cn), extra: { reconnectPeriod: 0 } });
  const outcome = await new Promise<'connected' | 'refused'>((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.once('error', () => resolve('refused'));
    client.once('close', () => resolve('refused'));
  });
  client.end(true);
  return outcome;
}

/** Checks that aircon-2 cannot touch aircon-1 and cannot pose as it. */
async function expectPolicy(url: string, service: { updates(): Promise<unknown> }): Promise<void> {
  expect(await connectAs(url, 'aircon-2', 'aircon-1')).toBe('refused');
  const intruder = await connectTestClient(url, { clientId: 'aircon-2', tls: tlsOf('aircon-2') });
  try {
    expect(
      await intruder.subscribe(
        ['$aws/things/aircon-1/shadow/update/delta', '$aws/things/aircon-2/shadow/#'],
        1,
      ),
    ).toEqual([128, 1]);
    await intruder.publish('$aws/things/aircon-1/shadow/update', { state: { desired: { power: 'off' } } }, 1);
    await intruder.publish('$aws/things/aircon-2/shadow/update', { state: { reported: { power: 'on' } } }, 1);
    // Its own update is answered; the one on aircon-1 was dropped before the service saw it.
    await intruder.take('$aws/things/aircon-2/shadow/update/accepted');
    expect(await service.updates()).toEqual({ 'aircon-1': undefined, 'aircon-2': 1 });
  } finally {
    await intruder.close();
  }
}

describe('the library: tls.requestCert without auth', () => {
  let service: ShadowService;
  afterAll(async () => service?.close());

  it('applies the device policy with the CN as the identity', async () => {
    service = await startShadowService({
      tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true },
    });
    await expectPolicy(service.mqttUrl, {
      async updates() {
        const versions: Record<string, number | undefined> = {};
        for (const thing of ['aircon-1', 'aircon-2']) {
          const result = await service.engine.handle({
            operation: 'get',
            target: { thingName: thing },
            payload: new Uint8Array(0),
            origin: 'http',
          });
          versions[thing] = result.ok ? (result.body as { version: number }).version : undefined;
        }
        return versions;
      },
    });
  });

  it('is open only when the policy is explicitly turned off', async () => {
    const open = await startShadowService({
      tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true },
      auth: { devicePolicy: false },
    });
    try {
      expect(await connectAs(open.mqttUrl, 'aircon-2', 'aircon-1')).toBe('connected');
    } finally {
      await open.close();
    }
  });
});

describe('shadow-sync serve --require-client-cert', () => {
  const tlsFlags = () => [
    '--tls-key',
    join(dir, 'server.key'),
    '--tls-cert',
    join(dir, 'server.crt'),
    '--tls-ca',
    join(dir, 'ca.crt'),
  ];

  it('turns the device policy on; --no-device-policy turns it off', async () => {
    const strict = spawnCli(['serve', ...tlsFlags(), '--require-client-cert']);
    try {
      const { mqttUrl } = await waitForEndpoints(strict);
      expect(await connectAs(mqttUrl, 'aircon-2', 'aircon-1')).toBe('refused');
      expect(await connectAs(mqttUrl, 'aircon-2', 'aircon-2')).toBe('connected');
    } finally {
      strict.child.kill('SIGTERM');
      await strict.exited;
    }
    const open = spawnCli(['serve', ...tlsFlags(), '--require-client-cert', '--no-device-policy']);
    try {
      const { mqttUrl } = await waitForEndpoints(open);
      expect(await connectAs(mqttUrl, 'aircon-2', 'aircon-1')).toBe('connected');
    } finally {
      open.child.kill('SIGTERM');
      await open.exited;
    }
  }, 60_000);

  it('refuses --no-device-policy together with policy flags or an external broker', async () => {
    const lines: string[] = [];
    const io = { stdout: (l: string) => lines.push(l), stderr: (l: string) => lines.push(l) };
    expect(await runCli(['serve', '--no-device-policy', '--telemetry-topic', 'x/{thingName}'], io)).toBe(2);
    expect(lines.join('\n')).toContain(
      '--no-device-policy turns the device policy off and cannot be combined',
    );
    lines.length = 0;
    expect(await runCli(['serve', '--broker', 'mqtt://127.0.0.1:1', '--no-device-policy'], io)).toBe(2);
    expect(lines.join('\n')).toContain('--no-device-policy configures the embedded broker');
  });
});
