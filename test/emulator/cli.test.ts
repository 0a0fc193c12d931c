import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run-cli.js';
import { startBroker } from '../../src/emulator/broker.js';
import { freePort } from '../support/mosquitto.js';
import { makeTestPki, type TestPem } from '../support/test-pki.js';
import { spawnCli, waitForEndpoints } from './cli-process.js';
import { buildMqttClient, connectTestClient } from './mqtt-test-client.js';

const dir = mkdtempSync(join(tmpdir(), 'shadow-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const client = (endpoint: string) =>
  new IoTDataPlaneClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });

function refused(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('shadow-sync serve', () => {
  it('prints exactly one line with both endpoints once they accept connections, and stops cleanly on SIGTERM', async () => {
    const dataDir = join(dir, 'term');
    const cli = spawnCli(['serve', '--data-dir', dataDir]);
    const { httpEndpoint, mqttUrl, line } = await waitForEndpoints(cli);
    expect(line).toMatch(/^http:\/\/127\.0\.0\.1:\d+ mqtt:\/\/127\.0\.0\.1:\d+\n$/);
    const sdk = client(httpEndpoint);
    await sdk.send(
      new UpdateThingShadowCommand({
        thingName: 'lamp',
        payload: new TextEncoder().encode('{"state":{"reported":{"on":true}}}'),
      }),
    );
    const device = await connectTestClient(mqttUrl, { clientId: 'lamp' });
    await device.close();
    sdk.destroy();
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(cli.stdout()).toBe(line);
    expect(await refused(httpEndpoint)).toBe(true);
    expect(await refused(mqttUrl)).toBe(true);

    // Same data directory, explicit ports, SIGINT this time.
    const [httpPort, mqttPort] = [await freePort(), await freePort()];
    const again = spawnCli([
      'serve',
      '--data-dir',
      dataDir,
      '--http-port',
      String(httpPort),
      '--mqtt-port',
      String(mqttPort),
      '--host',
      '127.0.0.1',
    ]);
    const second = await waitForEndpoints(again);
    expect(second.line).toBe(`http://127.0.0.1:${httpPort} mqtt://127.0.0.1:${mqttPort}\n`);
    const sdk2 = client(second.httpEndpoint);
    const got = await sdk2.send(new GetThingShadowCommand({ thingName: 'lamp' }));
    expect(JSON.parse(new TextDecoder().decode(got.payload))).toMatchObject({
      version: 1,
      state: { reported: { on: true } },
    });
    sdk2.destroy();
    again.child.kill('SIGINT');
    expect(await again.exited).toBe(0);
  });

  it('exits 2 with a message naming the problem for bad arguments', async () => {
    const badPort = spawnCli(['serve', '--http-port', 'eighty']);
    expect(await badPort.exited).toBe(2);
    expect(badPort.stderr()).toContain("--http-port must be a port number 0-65535, got 'eighty'");
    const lines: string[] = [];
    const io = { stdout: (l: string) => lines.push(l), stderr: (l: string) => lines.push(l) };
    expect(await runCli(['serve', '--colour', 'red'], io)).toBe(2);
    expect(lines.join('\n')).toContain("Unknown option '--colour'");
    expect(await runCli(['serve', '--require-sigv4', 'nocolon'], io)).toBe(2);
    expect(lines.join('\n')).toContain('--require-sigv4 must be ACCESS_KEY:SECRET');
    expect(await runCli(['launch'], io)).toBe(2);
    expect(lines.join('\n')).toContain("unknown command 'launch'");
    lines.length = 0;
    expect(await runCli(['serve', '--help'], io)).toBe(0);
    expect(lines.join('\n')).toContain('Usage: shadow-sync serve');
    lines.length = 0;
    expect(await runCli(['--help'], io)).toBe(0);
    expect(lines.join('\n')).toMatch(/serve\s+run the local shadow service/);
  });
});

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const decode = (payload: Uint8Array | undefined) => JSON.parse(new TextDecoder().decode(payload)) as unknown;

/** Starts `serve` with `args`, runs `body` against it, and always stops it with SIGTERM (exit 0 expected). */
async function withServe(
  args: string[],
  body: (endpoints: { httpEndpoint: string; mqttUrl: string; line: string }) => Promise<void>,
): Promise<void> {
  const cli = spawnCli(['serve', ...args]);
  try {
    await body(await waitForEndpoints(cli));
  } finally {
    if (cli.child.exitCode === null) cli.child.kill('SIGTERM');
  }
  expect(await cli.exited).toBe(0);
}

/** The shared test PKI with a client 'lamp', and the server's PEMs written to files for the CLI's flags. */
function makePkiFiles(pkiDir: string) {
  const pki = makeTestPki(['lamp']);
  const write = (name: string, pem: string) => {
    const path = join(pkiDir, name);
    writeFileSync(path, pem);
    return path;
  };
  return {
    ...pki,
    caPath: write('ca.crt', pki.ca),
    serverKeyPath: write('server.key', pki.server.key),
    serverCertPath: write('server.crt', pki.server.cert),
  };
}

describe('shadow-sync serve: service options on the command line', () => {
  it('--limit overrides limits (repeatable): state size, deleted-version retention and the request rate', async () => {
    await withServe(
      [
        '--limit',
        'maxStateBytes=40',
        '--limit',
        'deletedVersionRetentionMs=0',
        '--limit',
        'requestsPerSecondPerThing=1000',
      ],
      async ({ httpEndpoint }) => {
        const sdk = client(httpEndpoint);
        try {
          const big = { state: { desired: { text: 'x'.repeat(40) } } };
          await expect(
            sdk.send(new UpdateThingShadowCommand({ thingName: 'lamp', payload: encode(big) })),
          ).rejects.toMatchObject({ name: 'RequestEntityTooLargeException' });
          const small = { state: { desired: { on: true } } };
          await sdk.send(new UpdateThingShadowCommand({ thingName: 'lamp', payload: encode(small) }));
          await sdk.send(new DeleteThingShadowCommand({ thingName: 'lamp' }));
          // Retention 0: the deleted version is forgotten at once, so the re-created shadow starts at 1.
          const recreated = await sdk.send(
            new UpdateThingShadowCommand({ thingName: 'lamp', payload: encode(small) }),
          );
          expect(decode(recreated.payload)).toMatchObject({ version: 1 });
          // 40 requests in well under a second: the default 20/s would answer 429 to some of them.
          for (let n = 0; n < 40; n++)
            await sdk.send(
              new UpdateThingShadowCommand({
                thingName: 'fan',
                payload: encode({ state: { reported: { n } } }),
              }),
            );
          const fan = await sdk.send(new GetThingShadowCommand({ thingName: 'fan' }));
          expect(decode(fan.payload)).toMatchObject({ version: 40 });
        } finally {
          sdk.destroy();
        }
      },
    );
  });

  it('--service-credentials and --telemetry-topic set the device policy; --response-qos and --faults shape responses', async () => {
    await withServe(
      [
        '--service-credentials',
        'svc:p4ss:word',
        '--telemetry-topic',
        'tele/{thingName}/#',
        '--response-qos',
        '1',
        '--faults',
        '{"seed":3,"duplicate":1}',
      ],
      async ({ mqttUrl }) => {
        const device = await connectTestClient(mqttUrl, { clientId: 'lamp' });
        // The password keeps everything after the first colon.
        const backend = await connectTestClient(mqttUrl, {
          clientId: 'backend',
          username: 'svc',
          password: 'p4ss:word',
        });
        try {
          expect(
            await device.subscribe([
              '$aws/things/lamp/shadow/update/accepted',
              '$aws/things/fan/shadow/update/accepted',
              'my/things/lamp/#',
              'tele/lamp/#',
            ]),
          ).toEqual([1, 128, 128, 1]);
          expect(await backend.subscribe(['tele/#', '$aws/things/+/shadow/update/accepted'])).toEqual([1, 1]);

          await device.publish('$aws/things/lamp/shadow/update', {
            state: { reported: { on: true } },
            clientToken: 'c1',
          });
          // duplicate = 1: every response arrives twice, at the chosen QoS 1.
          const accepted = await device.takeMany('$aws/things/lamp/shadow/update/accepted', 2);
          for (const message of accepted) {
            expect(message.qos).toBe(1);
            expect(message.json).toMatchObject({ version: 1, clientToken: 'c1' });
          }
          await backend.takeMany('$aws/things/lamp/shadow/update/accepted', 2);

          await device.publish('tele/lamp/temperature', { celsius: 21 });
          expect((await backend.take('tele/lamp/temperature')).json).toEqual({ celsius: 21 });
        } finally {
          await device.close();
          await backend.close();
        }
      },
    );
  });

  it('--denied-publish disconnect closes the connection of a device that publishes outside its policy', async () => {
    await withServe(['--denied-publish', 'disconnect'], async ({ mqttUrl }) => {
      const device = await connectTestClient(mqttUrl, { clientId: 'lamp' });
      const closed = new Promise<void>((resolve) => device.client.once('close', () => resolve()));
      device.client.publish('$aws/things/fan/shadow/update', '{"state":{}}', { qos: 0 });
      await closed;
      await device.close();
    });
  });

  it('--tls-key/--tls-cert/--tls-ca/--require-client-cert serve MQTT over TLS with client certificates', async () => {
    const pki = makePkiFiles(mkdtempSync(join(dir, 'pki-')));
    await withServe(
      [
        '--tls-key',
        pki.serverKeyPath,
        '--tls-cert',
        pki.serverCertPath,
        '--tls-ca',
        pki.caPath,
        '--require-client-cert',
      ],
      async ({ mqttUrl, line }) => {
        expect(line).toMatch(/ mqtts:\/\/127\.0\.0\.1:\d+\n$/);
        const lamp = await connectTestClient(mqttUrl, {
          clientId: 'lamp',
          tls: { ca: pki.ca, ...(pki.clients.lamp as TestPem) },
        });
        try {
          await lamp.subscribe('$aws/things/lamp/shadow/update/accepted');
          await lamp.publish('$aws/things/lamp/shadow/update', { state: { reported: { on: true } } });
          expect((await lamp.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
            version: 1,
          });
        } finally {
          await lamp.close();
        }
        // Without a client certificate the TLS handshake is refused.
        const anonymous = buildMqttClient(mqttUrl, { clientId: 'lamp', tls: { ca: pki.ca } });
        const outcome = await new Promise<string>((resolve) => {
          anonymous.once('connect', () => resolve('connected'));
          anonymous.once('error', () => resolve('refused'));
          anonymous.once('close', () => resolve('refused'));
        });
        anonymous.end(true);
        expect(outcome).toBe('refused');
      },
    );
  });

  it('--broker with --service-credentials: the service logs in to the external broker with them', async () => {
    const broker = await startBroker({
      auth: { serviceCredentials: { username: 'svc', password: 'b-pass' } },
    });
    try {
      await withServe(
        ['--broker', broker.url, '--service-credentials', 'svc:b-pass'],
        async ({ mqttUrl }) => {
          expect(mqttUrl).toBe(broker.url);
          const device = await connectTestClient(mqttUrl, { clientId: 'lamp' });
          try {
            await device.subscribe('$aws/things/lamp/shadow/update/accepted');
            await device.publish('$aws/things/lamp/shadow/update', { state: { reported: { on: true } } });
            expect((await device.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
              version: 1,
            });
          } finally {
            await device.close();
          }
        },
      );
      // Without the right login the broker treats the service as a device, which may not take every shadow's
      // request topics: serve fails instead of running deaf.
      const denied = spawnCli(['serve', '--broker', broker.url, '--service-credentials', 'svc:wrong']);
      expect(await denied.exited).toBe(1);
      expect(denied.stdout()).toBe('');
    } finally {
      await broker.close();
    }
  });

  it('exits 2 naming the flag and the problem for every invalid service option', async () => {
    const spawned = spawnCli(['serve', '--limit', 'maxDepth=0']);
    expect(await spawned.exited).toBe(2);
    expect(spawned.stderr()).toContain("--limit: Shadow limit 'maxDepth' must be an integer >= 1, got 0");

    const missing = join(dir, 'no-such.pem');
    const cases: [string[], string][] = [
      [['--limit', 'maxColour=3'], "--limit: Unknown shadow limit 'maxColour'; known limits: maxStateBytes"],
      [['--limit', 'maxDepth'], "--limit must be NAME=VALUE, got 'maxDepth'"],
      [['--limit', 'maxDepth=six'], "--limit maxDepth must be a non-negative integer, got 'six'"],
      [['--limit', 'maxDepth=3', '--limit', 'maxDepth=4'], '--limit maxDepth is given twice'],
      [['--service-credentials', 'svc'], "--service-credentials must be USER:PASS, got 'svc'"],
      [['--service-credentials', ':pw'], "--service-credentials must be USER:PASS, got ':pw'"],
      [['--denied-publish', 'ignore'], "--denied-publish must be drop or disconnect, got 'ignore'"],
      [['--response-qos', '2'], "--response-qos must be 0 or 1 (AWS IoT has no QoS 2), got '2'"],
      [['--faults', '{drop:1}'], '--faults must be a JSON object'],
      [['--faults', '[1]'], '--faults must be a JSON object'],
      [['--faults', '{"drop":2}'], "--faults: fault option 'drop' must be a probability in [0, 1], got 2"],
      [['--faults', '{"lose":0.1}'], "--faults: unknown fault option 'lose'"],
      [['--tls-key', missing], '--tls-key needs --tls-cert'],
      [['--tls-cert', missing], '--tls-cert needs --tls-key'],
      [['--tls-key', missing, '--tls-cert', missing], `--tls-key: cannot read '${missing}': ENOENT`],
      [['--tls-ca', missing], '--tls-ca needs --tls-key and --tls-cert'],
      [['--require-client-cert'], '--require-client-cert needs --tls-key, --tls-cert and --tls-ca'],
      [
        ['--tls-key', missing, '--tls-cert', missing, '--require-client-cert'],
        '--require-client-cert needs --tls-ca',
      ],
      [
        ['--broker', 'mqtt://127.0.0.1:1883', '--telemetry-topic', 't/{thingName}'],
        '--telemetry-topic configures the embedded broker and cannot be combined with --broker',
      ],
      [
        ['--broker', 'mqtt://127.0.0.1:1883', '--mqtt-port', '1884'],
        '--mqtt-port sets the embedded broker and cannot be combined with --broker',
      ],
      [['--broker', 'http://127.0.0.1:1883'], "MQTT broker must be 'embedded' or a URL like mqtt://"],
      [['--host', ''], 'host must be a non-empty string'],
    ];
    for (const [args, message] of cases) {
      const lines: string[] = [];
      const io = { stdout: (l: string) => lines.push(l), stderr: (l: string) => lines.push(l) };
      const code = await runCli(['serve', ...args], io);
      expect({ args, code, said: lines.join('\n').includes(message) }).toEqual({ args, code: 2, said: true });
    }

    const help: string[] = [];
    expect(
      await runCli(['serve', '--help'], { stdout: (l) => help.push(l), stderr: (l) => help.push(l) }),
    ).toBe(0);
    for (const flag of [
      '--limit NAME=VALUE',
      '--service-credentials USER:PASS',
      '--telemetry-topic FILTER',
      '--tls-key FILE',
      '--tls-cert FILE',
      '--tls-ca FILE',
      '--require-client-cert',
      '--faults JSON',
      '--response-qos 0|1',
      'requestsPerSecondPerThing',
    ])
      expect(help.join('\n')).toContain(flag);
  });
});
