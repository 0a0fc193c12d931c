/**
 * `shadow-sync serve --broker mosquitto`: the CLI starts its own mosquitto (needs the binary; `npm test` installs
 * it through `scripts/ensure-mosquitto.mjs`), says which broker and MQTT versions it serves, and stops it again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run-cli.js';
import { type CliProcess, spawnCli, waitForEndpoints } from './cli-process.js';
import { connectTestClient } from './mqtt-test-client.js';

describe('shadow-sync serve and the MQTT broker choice', () => {
  let cli: CliProcess | undefined;

  afterEach(async () => {
    if (cli !== undefined && cli.child.exitCode === null && cli.child.signalCode === null) {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
    cli = undefined;
  });

  it('--broker mosquitto serves MQTT 5 devices with the policy flags, announces it, and removes its broker on SIGTERM', async () => {
    cli = spawnCli([
      'serve',
      '--broker',
      'mosquitto',
      '--service-credentials',
      'ops:ops-pass',
      '--telemetry-topic',
      'my/things/{thingName}/#',
      '--limit',
      'requestsPerSecondPerThing=1000',
    ]);
    const { mqttUrl } = await waitForEndpoints(cli);
    await expect
      .poll(() => cli?.stderr())
      .toMatch(/MQTT via managed mosquitto version [\d.]+: MQTT 5, 3\.1\.1/);
    // What mosquitto cannot enforce of the per-connection quotas is said at start, not silently ignored.
    expect(cli.stderr()).toContain(
      "of AWS IoT's per-connection quotas only the 128 KB message size is enforced (mosquitto cannot limit subscriptions per connection",
    );
    const device = await connectTestClient(mqttUrl, { clientId: 'cli-lamp', extra: { protocolVersion: 5 } });
    try {
      await device.subscribe('$aws/things/cli-lamp/shadow/update/accepted');
      await device.publish('$aws/things/cli-lamp/shadow/update', { state: { reported: { on: true } } });
      expect((await device.take('$aws/things/cli-lamp/shadow/update/accepted')).json).toMatchObject({
        version: 1,
      });
    } finally {
      await device.close();
    }
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    // The broker went with the service: nothing listens on its port any more.
    await expect(connectTestClient(mqttUrl, { clientId: 'late' })).rejects.toThrow();
  });

  it('the default embedded broker says it serves MQTT 3.1.1 and 3.1 and refuses MQTT 5', async () => {
    cli = spawnCli(['serve']);
    await waitForEndpoints(cli);
    await expect
      .poll(() => cli?.stderr())
      .toContain('MQTT via embedded aedes broker: MQTT 3.1.1 and 3.1 (MQTT 5 clients get CONNACK 0x84');
    // The per-connection quotas are on by default, like the per-thing ones.
    expect(cli.stderr()).toContain(
      "AWS IoT's per-connection quotas enforced: 50 subscriptions, 8 filters per SUBSCRIBE, 100 publishes/s (over it: unacknowledged), 128 KB messages",
    );
  });

  it('--no-connection-quotas turns them off (nine filters in one SUBSCRIBE are granted); --quota raises one', async () => {
    cli = spawnCli(['serve', '--no-connection-quotas']);
    const { mqttUrl } = await waitForEndpoints(cli);
    await expect.poll(() => cli?.stderr()).toContain("AWS IoT's per-connection quotas off");
    const app = await connectTestClient(mqttUrl, { clientId: 'nine-filters' });
    try {
      expect(await app.subscribe(Array.from({ length: 9 }, (_, i) => `f/${i}`))).toEqual(Array(9).fill(1));
    } finally {
      await app.close();
    }
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    cli = spawnCli(['serve', '--quota', 'publishesPerSecondPerConnection=500']);
    await waitForEndpoints(cli);
    await expect
      .poll(() => cli?.stderr())
      .toContain('50 subscriptions, 8 filters per SUBSCRIBE, 500 publishes/s');
  });

  it('refuses connection quotas with mosquitto and unknown quota names before starting anything', async () => {
    const cases: [string[], string][] = [
      [
        ['--broker', 'mosquitto', '--connection-quotas'],
        'connectionQuotas is enforced by the embedded broker only',
      ],
      [['--quota', 'maxSubs=3'], "--quota: unknown connection quota 'maxSubs'"],
      [
        ['--no-connection-quotas', '--quota', 'maxFiltersPerSubscribe=9'],
        '--no-connection-quotas cannot be combined with --connection-quotas or --quota',
      ],
      [['--quota', 'maxFiltersPerSubscribe=0'], 'maxFiltersPerSubscribe must be a positive integer, got 0'],
      [
        ['--broker', 'mosquitto', '--denied-publish', 'disconnect'],
        "deniedPublish 'disconnect' cannot be enforced by mosquitto",
      ],
    ];
    for (const [args, message] of cases) {
      const lines: string[] = [];
      const io = { stdout: (l: string) => lines.push(l), stderr: (l: string) => lines.push(l) };
      const code = await runCli(['serve', ...args], io);
      expect({ args, code, said: lines.join('\n').includes(message) }).toEqual({ args, code: 2, said: true });
    }
  });
});
