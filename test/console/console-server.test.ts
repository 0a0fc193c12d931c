import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createConsoleServer,
  isLoopbackAddress,
  resolveConsoleOptions,
} from '../../src/emulator/console/console-server.js';
import type {
  MessageEntry,
  ShadowSummary,
  TimelineEntry,
} from '../../src/emulator/console/shadow-tracker.js';
import {
  resolveShadowServiceOptions,
  type ShadowService,
  startShadowService,
} from '../../src/emulator/index.js';
import { ShadowOptionsError } from '../../src/errors.js';
import { connectTestClient, type TestClient } from '../emulator/mqtt-test-client.js';
import { openSse, type SseReader } from './sse-reader.js';

interface Series {
  bucketMs: number;
  last: number;
  rows: number[][];
}
interface FleetSnapshot {
  shadows: ShadowSummary[];
  stats: Series;
}
interface ShadowSnapshot {
  document: { state: Record<string, unknown>; version: number } | null;
  timeline: TimelineEntry[];
  messages: MessageEntry[];
  stats: Series;
}

const decoder = new TextDecoder();
const sum = (series: Series, col: number) => series.rows.reduce((total, row) => total + (row[col] ?? 0), 0);

/** A raw HTTP request (no SDK), for the status, error type and body exactly as sent. */
function raw(
  url: string,
  method: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; errorType: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          errorType: res.headers['x-amzn-errortype'] as string | undefined,
          body: text,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const edit = (service: ShadowService, thing: string, body: string, shadow = '') =>
  raw(
    `${service.consoleUrl}/api/update?thing=${encodeURIComponent(thing)}&shadow=${encodeURIComponent(shadow)}`,
    'POST',
    body,
    { 'content-type': 'application/json' },
  );

let service: ShadowService;
let sdk: IoTDataPlaneClient;
const open: SseReader[] = [];
const devices: TestClient[] = [];

async function stream(query = ''): Promise<SseReader> {
  const reader = await openSse(`${service.consoleUrl}/events${query}`);
  open.push(reader);
  return reader;
}

async function update(thing: string, payload: unknown, shadowName?: string) {
  const out = await sdk.send(
    new UpdateThingShadowCommand({
      thingName: thing,
      ...(shadowName === undefined ? {} : { shadowName }),
      payload: new TextEncoder().encode(JSON.stringify(payload)),
    }),
  );
  return JSON.parse(decoder.decode(out.payload)) as { version: number };
}

beforeEach(async () => {
  service = await startShadowService({ console: true });
  sdk = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
});

afterEach(async () => {
  for (const reader of open.splice(0)) reader.close();
  for (const device of devices.splice(0)) await device.close();
  sdk.destroy();
  await service.close();
});

describe('console event streams', () => {
  it('sends one snapshot of every shadow, classic and named, then only the changed ones', async () => {
    await update('ac-1', { state: { desired: { power: 'on' } } });
    await update('ac-1', { state: { reported: { power: 'on' } } }, 'settings');
    await update('ac-2', { state: { reported: { t: 1 } } });
    const fleet = await stream();
    const snapshot = await fleet.next<FleetSnapshot>('snapshot');
    const byKey = new Map(snapshot.shadows.map((s) => [`${s.thing}/${s.shadow}`, s]));
    expect(byKey.size).toBe(3);
    expect(byKey.get('ac-1/')).toMatchObject({ version: 1, delta: true, deleted: false });
    expect(byKey.get('ac-1/settings')).toMatchObject({ version: 1, delta: false });
    expect(byKey.get('ac-2/')).toMatchObject({ version: 1, delta: false });
    expect(sum(snapshot.stats, 0)).toBe(3);

    await update('ac-2', { state: { desired: { t: 2 } } });
    const changed = await fleet.next<ShadowSummary[]>('shadows');
    expect(changed).toEqual([
      expect.objectContaining({ thing: 'ac-2', shadow: '', version: 2, delta: true }),
    ]);
  });

  it('splits versions into app writes, device reports and others, and counts 409s and 429s', async () => {
    const fleet = await stream();
    await fleet.next('snapshot');
    await update('ac-1', { state: { desired: { power: 'on' } } });
    const device = await connectTestClient(service.mqttUrl, { clientId: 'ac-1' });
    devices.push(device);
    await device.subscribe('$aws/things/ac-1/shadow/update/accepted', 1);
    await device.publish('$aws/things/ac-1/shadow/update', { state: { reported: { power: 'on' } } }, 1);
    await device.take('$aws/things/ac-1/shadow/update/accepted');
    await device.publish('$aws/things/ac-1/shadow/update', { state: { desired: { power: 'off' } } }, 1);
    await device.take('$aws/things/ac-1/shadow/update/accepted');
    // A stale versioned write: 409.
    await expect(update('ac-1', { state: { desired: { power: 'on' } }, version: 1 })).rejects.toMatchObject({
      name: 'ConflictException',
    });
    // More requests at once than the thing's in-flight quota: some 429s.
    const burst = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => update('busy', { state: { reported: { i } } })),
    );
    const throttled = burst.filter((r) => r.status === 'rejected').length;
    expect(throttled).toBeGreaterThan(0);

    const stats = await fleet.next<Series>(
      'stats',
      (s) => sum(s, 3) === 1 && sum(s, 4) === throttled && sum(s, 0) === 1 + (60 - throttled),
    );
    expect(sum(stats, 1)).toBe(1);
    expect(sum(stats, 2)).toBe(1);

    const one = await stream('?thing=ac-1');
    const snap = await one.next<ShadowSnapshot>('snapshot');
    expect(snap.timeline.map((e) => [e.version, e.kind, e.source])).toEqual([
      [1, 'app', 'http'],
      [2, 'device', 'mqtt:ac-1'],
      [3, 'other', 'mqtt:ac-1'],
    ]);
    expect(snap.stats.rows.flat().reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('streams one shadow: its document as GetThingShadow returns it, versions and reserved-topic messages', async () => {
    await update('lamp', { state: { desired: { on: true } } }, 'light');
    const one = await stream('?thing=lamp&shadow=light');
    const snap = await one.next<ShadowSnapshot>('snapshot');
    const got = await sdk.send(new GetThingShadowCommand({ thingName: 'lamp', shadowName: 'light' }));
    const viaApi = JSON.parse(decoder.decode(got.payload));
    expect({ ...snap.document, timestamp: 0 }).toEqual({ ...viaApi, timestamp: 0 });
    expect(snap.messages.map((m) => m.topic)).toEqual([
      '$aws/things/lamp/shadow/name/light/update/accepted',
      '$aws/things/lamp/shadow/name/light/update/delta',
      '$aws/things/lamp/shadow/name/light/update/documents',
    ]);

    const device = await connectTestClient(service.mqttUrl, { clientId: 'lamp' });
    devices.push(device);
    await device.publish(
      '$aws/things/lamp/shadow/name/light/update',
      { state: { reported: { on: true } } },
      1,
    );
    const doc = await one.next<{ state: { reported?: unknown; delta?: unknown }; version: number }>('doc');
    expect(doc.version).toBe(2);
    expect(doc.state.reported).toEqual({ on: true });
    expect(doc.state.delta).toBeUndefined();
    const timeline = await one.next<TimelineEntry[]>('timeline');
    expect(timeline).toEqual([expect.objectContaining({ version: 2, kind: 'device' })]);
    // The device's request is listed before the answers it caused.
    const messages: MessageEntry[] = [];
    while (messages.length < 3) messages.push(...(await one.next<MessageEntry[]>('messages')));
    messages.sort((a, b) => a.seq - b.seq);
    expect(messages.map((m) => [m.direction, m.topic.split('/light/')[1]])).toEqual([
      ['in', 'update'],
      ['out', 'update/accepted'],
      ['out', 'update/documents'],
    ]);
    expect(JSON.parse(messages[0]?.payload ?? '')).toEqual({ state: { reported: { on: true } } });
  });

  it('ends every stream when the service closes', async () => {
    const fleet = await stream();
    await fleet.next('snapshot');
    await service.close();
    await fleet.ended;
  });
});

describe('console clock', () => {
  it('dates chart buckets and summaries on the service clock, so time can be driven', async () => {
    let now = 1_000_000;
    const timed = await startShadowService({ console: true, clock: () => now });
    try {
      await timed.engine.handle({
        operation: 'update',
        target: { thingName: 'lamp' },
        origin: 'http',
        payload: new TextEncoder().encode('{"state":{"desired":{"on":true}}}'),
      });
      const first = await openSse(`${timed.consoleUrl}/events`);
      open.push(first);
      const before = await first.next<FleetSnapshot>('snapshot');
      expect(before.shadows[0]?.updatedAt).toBe(1_000_000);
      expect(before.stats.last).toBe(200);
      expect(before.stats.rows.at(-1)).toEqual([1, 0, 0, 0, 0]);
      now += 10_000;
      const later = await openSse(`${timed.consoleUrl}/events`);
      open.push(later);
      const after = await later.next<FleetSnapshot>('snapshot');
      expect(after.stats.last).toBe(202);
      expect(after.stats.rows.at(-3)).toEqual([1, 0, 0, 0, 0]);
      expect(after.stats.rows.at(-1)).toEqual([0, 0, 0, 0, 0]);
    } finally {
      await timed.close();
    }
  });
});

describe('console edits', () => {
  it('applies an edit as a versioned update and resolves a stale one instead of overwriting', async () => {
    await update('ac-1', { state: { desired: { power: 'off', temp: 20 } } });
    const one = await stream('?thing=ac-1');
    await one.next('snapshot');
    // The page showed v1; a concurrent writer (the real AWS SDK) changes another key first.
    await update('ac-1', { state: { desired: { fan: 'high' } } });
    const answer = await edit(
      service,
      'ac-1',
      JSON.stringify({ state: { desired: { temp: 22 } }, version: 1 }),
    );
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.body) as { version: number; attempts: number; events: { type: string }[] };
    expect(body.version).toBe(3);
    expect(body.attempts).toBe(2);
    expect(body.events.map((e) => e.type)).toEqual(['attempt', 'conflict', 'retry', 'attempt', 'attempt']);
    const live = await one.next<{ type: string }[]>('edit', (events) =>
      events.some((e) => e.type === 'conflict'),
    );
    expect(live[0]).toMatchObject({ type: 'attempt', expectedVersion: 1 });
    const got = await sdk.send(new GetThingShadowCommand({ thingName: 'ac-1' }));
    expect(JSON.parse(decoder.decode(got.payload)).state.desired).toEqual({
      power: 'off',
      temp: 22,
      fan: 'high',
    });
    const timeline = await one.next<TimelineEntry[]>('timeline', (t) => t.some((e) => e.version === 3));
    expect(timeline.find((e) => e.version === 3)).toMatchObject({ kind: 'app', source: 'console' });
  });

  it('answers bad input with the same status, error type and text as the HTTP API', async () => {
    await update('ac-1', { state: { desired: { power: 'off' } } });
    const bodies = [
      '{"state":{"desired":{power:1}},"version":1}',
      '{"state":{"desired":[1]},"version":1}',
      '{"state":{"delta":{}},"version":1}',
      '{"state":{"desired":{"a":[null]}},"version":1}',
      '{"state":{"desired":{"a":1}},"version":-1}',
      '"just a string"',
      JSON.stringify({ state: { desired: { big: 'x'.repeat(9000) } } }),
    ];
    for (const body of bodies) {
      const viaConsole = await edit(service, 'ac-1', body);
      const viaApi = await raw(`${service.httpEndpoint}/things/ac-1/shadow`, 'POST', body);
      expect(viaApi.status).toBeGreaterThanOrEqual(400);
      expect([viaConsole.status, viaConsole.errorType]).toEqual([viaApi.status, viaApi.errorType]);
      expect(JSON.parse(viaConsole.body).message).toBe(JSON.parse(viaApi.body).message);
    }
    const badName = await edit(service, 'bad name!', '{"state":{"desired":{"a":1}}}');
    const apiBadName = await raw(
      `${service.httpEndpoint}/things/bad%20name!/shadow`,
      'POST',
      '{"state":{"desired":{"a":1}}}',
    );
    expect([badName.status, badName.errorType]).toEqual([apiBadName.status, apiBadName.errorType]);
    expect(JSON.parse(badName.body).message).toBe(JSON.parse(apiBadName.body).message);
    // Nothing was written by any of them.
    const got = await sdk.send(new GetThingShadowCommand({ thingName: 'ac-1' }));
    expect(JSON.parse(decoder.decode(got.payload)).version).toBe(1);
  });

  it('refuses edits that are not JSON posts from the console page itself', async () => {
    const url = `${service.consoleUrl}/api/update?thing=ac-1`;
    const body = '{"state":{"desired":{"a":1}}}';
    expect((await raw(url, 'POST', body, { 'content-type': 'text/plain' })).status).toBe(403);
    const foreign = await raw(url, 'POST', body, {
      'content-type': 'application/json',
      origin: 'http://evil.example',
    });
    expect([foreign.status, foreign.errorType]).toEqual([403, 'ForbiddenException']);
    expect((await raw(url, 'GET')).status).toBe(405);
    expect((await raw(`${service.consoleUrl}/nope`, 'GET')).status).toBe(404);
  });
});

describe('console options', () => {
  it('is off unless asked for, and "loopback" serves it only on loopback without SigV4', async () => {
    const plain = await startShadowService();
    try {
      expect(plain.consoleUrl).toBeUndefined();
      expect((await raw(`${plain.httpEndpoint}/console`, 'GET')).errorType).toBe('UnknownOperationException');
    } finally {
      await plain.close();
    }
    const local = await startShadowService({ console: 'loopback' });
    try {
      expect(local.consoleUrl).toBe(`${local.httpEndpoint}/console`);
      const page = await raw(local.consoleUrl as string, 'GET');
      expect(page.status).toBe(200);
      expect(page.body).toContain('<title>shadow-sync console</title>');
    } finally {
      await local.close();
    }
    const credentials = { accessKeyId: 'AKID', secretAccessKey: 'secret' };
    const signed = await startShadowService({ console: 'loopback', requireSigV4: credentials });
    try {
      expect(signed.consoleUrl).toBeUndefined();
      // Without the console, /console is an unsigned API request like any other: 403.
      expect((await raw(`${signed.httpEndpoint}/console`, 'GET')).status).toBe(403);
    } finally {
      await signed.close();
    }
    const explicit = await startShadowService({ console: true, requireSigV4: credentials });
    try {
      // Explicitly on: served, to loopback peers only.
      expect((await raw(explicit.consoleUrl as string, 'GET')).status).toBe(200);
    } finally {
      await explicit.close();
    }
  });

  it('with loopbackOnly, answers 403 to a peer that is not on loopback', () => {
    const server = createConsoleServer(service.engine, { loopbackOnly: true });
    try {
      const answer = (remoteAddress: string) => {
        let status = 0;
        let body = '';
        const req = { url: '/console', method: 'GET', headers: {}, socket: { remoteAddress } };
        const res = {
          writeHead(code: number) {
            status = code;
            return res;
          },
          end(text?: string) {
            body = text ?? '';
          },
        };
        expect(server.handle(req as never, res as never)).toBe(true);
        return { status, body };
      };
      expect(answer('192.168.1.20')).toEqual({
        status: 403,
        body: JSON.stringify({
          __type: 'ForbiddenException',
          message: 'The console answers loopback clients only',
        }),
      });
      expect(answer('127.0.0.1').status).toBe(200);
      expect(server.handle({ url: '/things/x/shadow', method: 'GET' } as never, {} as never)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('validates its options', () => {
    expect(() => resolveShadowServiceOptions({ console: 'yes' as never })).toThrow(ShadowOptionsError);
    expect(() => resolveConsoleOptions({ bucketMs: 0 })).toThrow(/bucketMs/);
    expect(() => resolveConsoleOptions({ colour: 'red' } as never)).toThrow(
      /Unknown console option 'colour'/,
    );
    expect(resolveConsoleOptions()).toMatchObject({
      bucketMs: 5000,
      buckets: 36,
      flushMs: 10,
      loopbackOnly: false,
    });
    expect(['127.0.0.1', '127.8.9.1', '::1', '::ffff:127.0.0.1'].map(isLoopbackAddress)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['10.0.0.1', '::ffff:192.168.1.2', '0.0.0.0', undefined].map(isLoopbackAddress)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it('ships the page as a generated module that matches its sources', async () => {
    const script = '../../scripts/embed-console-assets.mjs';
    const { consoleAssetsModule } = (await import(script)) as { consoleAssetsModule: () => string };
    const generated = readFileSync(
      new URL('../../src/emulator/console/console-assets.ts', import.meta.url),
      'utf8',
    );
    expect(generated).toBe(consoleAssetsModule());
  });
});
