/** Unit tests of telemetry-sink on the IoT rule event: the local directory sink for real, S3 through aws-sdk-client-mock. */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directoryRecordSink, s3RecordSink } from '../../examples/lambdas/record-sink.js';
import { createTelemetrySinkHandler, telemetryObjectKey } from '../../examples/lambdas/telemetry-sink.js';
import { silentLogger } from './lambda-events.js';

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'telemetry-sink-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

// What `SELECT *, topic(3) AS thing_name, timestamp() AS received_at FROM 'my/things/+/state'` delivers for the
// device agent's telemetry message `{ state, timestamp }`.
const event = (thing: string, receivedAt: number, state: object) => ({
  state,
  timestamp: receivedAt - 40,
  thing_name: thing,
  received_at: receivedAt,
});

describe('telemetryObjectKey', () => {
  it('partitions by thing, UTC date and hour', () => {
    expect(telemetryObjectKey('aircon-1', Date.UTC(2026, 0, 5, 3, 59, 59), 'id')).toBe(
      'thing=aircon-1/date=2026-01-05/hour=03/id.ndjson',
    );
    expect(telemetryObjectKey('aircon-1', Date.UTC(2026, 11, 31, 23, 0, 0), 'id')).toBe(
      'thing=aircon-1/date=2026-12-31/hour=23/id.ndjson',
    );
  });
});

describe('telemetry-sink with a directory', () => {
  it('writes one NDJSON record per message under the partitioned key, named by the request id', async () => {
    const handler = createTelemetrySinkHandler({
      sink: directoryRecordSink(directory),
      logger: silentLogger(),
    });
    const at = Date.UTC(2026, 10, 29, 9, 15);
    const key = await handler(event('aircon-1', at, { temperature: 23.5, humidity: 41 }), {
      awsRequestId: 'req-1',
    });
    expect(key).toBe('thing=aircon-1/date=2026-11-29/hour=09/req-1.ndjson');
    const text = await readFile(
      join(directory, 'thing=aircon-1', 'date=2026-11-29', 'hour=09', 'req-1.ndjson'),
      'utf8',
    );
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({
      thingName: 'aircon-1',
      receivedAt: at,
      deviceTimestamp: at - 40,
      state: { temperature: 23.5, humidity: 41 },
    });
  });

  it('replaces the object when an invocation is retried with the same request id', async () => {
    const handler = createTelemetrySinkHandler({
      sink: directoryRecordSink(directory),
      logger: silentLogger(),
    });
    const at = Date.UTC(2026, 10, 29, 9);
    await handler(event('aircon-1', at, { temperature: 1 }), { awsRequestId: 'same' });
    await handler(event('aircon-1', at, { temperature: 1 }), { awsRequestId: 'same' });
    const files = await readdir(join(directory, 'thing=aircon-1', 'date=2026-11-29', 'hour=09'));
    expect(files).toEqual(['same.ndjson']);
  });

  it('uses a fresh id without a Lambda context', async () => {
    let n = 0;
    const handler = createTelemetrySinkHandler({
      sink: directoryRecordSink(directory),
      logger: silentLogger(),
      newId: () => `id-${++n}`,
    });
    await handler(event('t', 0, { a: 1 }));
    await handler(event('t', 0, { a: 2 }));
    expect(await readdir(join(directory, 'thing=t', 'date=1970-01-01', 'hour=00'))).toEqual([
      'id-1.ndjson',
      'id-2.ndjson',
    ]);
  });

  it('drops a malformed event (a retry cannot fix it) without writing', async () => {
    const handler = createTelemetrySinkHandler({
      sink: directoryRecordSink(directory),
      logger: silentLogger(),
    });
    await expect(handler({ thing_name: 'x', state: {} })).resolves.toBeUndefined();
    await expect(handler({ thing_name: '../../etc', received_at: 1, state: {} })).resolves.toBeUndefined();
    expect(await readdir(directory)).toEqual([]);
  });

  it('a directory sink refuses keys that leave its directory', async () => {
    await expect(directoryRecordSink(directory).put('../escape.ndjson', 'x')).rejects.toThrow(
      /leaves the sink/,
    );
  });
});

describe('s3RecordSink', () => {
  const client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  const mock = mockClient(client);
  afterEach(() => mock.reset());

  it('puts the record as an NDJSON object under the partitioned key', async () => {
    mock.on(PutObjectCommand).resolves({});
    const handler = createTelemetrySinkHandler({
      sink: s3RecordSink(client, 'bucket'),
      logger: silentLogger(),
    });
    await handler(event('aircon-2', Date.UTC(2026, 10, 29, 18), { humidity: 50 }), { awsRequestId: 'r' });
    const input = mock.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      Bucket: 'bucket',
      Key: 'thing=aircon-2/date=2026-11-29/hour=18/r.ndjson',
      ContentType: 'application/x-ndjson',
    });
    expect(JSON.parse(String(input?.Body))).toMatchObject({ thingName: 'aircon-2', state: { humidity: 50 } });
  });

  it('lets an S3 failure reject so AWS retries the invocation', async () => {
    mock.on(PutObjectCommand).rejects(new Error('SlowDown'));
    const handler = createTelemetrySinkHandler({
      sink: s3RecordSink(client, 'bucket'),
      logger: silentLogger(),
    });
    await expect(handler(event('a', 0, { x: 1 }), { awsRequestId: 'r' })).rejects.toThrow('SlowDown');
  });
});
