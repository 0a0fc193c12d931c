import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run-cli.js';
import { spawnCli, waitForEndpoints } from './cli-process.js';
import { connectTestClient } from './mqtt-test-client.js';

const dir = mkdtempSync(join(tmpdir(), 'shadow-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const client = (endpoint: string) =>
  new IoTDataPlaneClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

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
