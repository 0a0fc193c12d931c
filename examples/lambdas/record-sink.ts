/**
 * Where telemetry records land: objects addressed by a partitioned key. In AWS an S3 bucket; locally a
 * directory with the same layout, so tools that read one read the other.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** Writes whole objects; writing a key again replaces it (so a retried invocation does not duplicate). */
export interface RecordSink {
  /**
   * Stores `body` under `key` (a relative path with `/` separators).
   *
   * @throws Error when the object cannot be stored
   */
  put(key: string, body: string): Promise<void>;
}

/**
 * A {@link RecordSink} on an S3 bucket (`BUCKET_NAME`), content type `application/x-ndjson`.
 *
 * @param client - an S3 client
 * @param bucket - the bucket
 */
export function s3RecordSink(client: S3Client, bucket: string): RecordSink {
  return {
    async put(key, body) {
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/x-ndjson' }),
      );
    },
  };
}

/**
 * A {@link RecordSink} on a local directory: `key` becomes a file path below it, written through a temporary
 * file and a rename so a reader never sees half an object.
 *
 * @param directory - the root directory (created on demand)
 * @throws Error from `put` when a key would leave the directory (`..`, absolute paths)
 */
export function directoryRecordSink(directory: string): RecordSink {
  const root = resolve(directory);
  let sequence = 0;
  return {
    async put(key, body) {
      const path = resolve(join(root, ...key.split('/')));
      if (!path.startsWith(root + sep)) throw new Error(`record key '${key}' leaves the sink directory`);
      await mkdir(dirname(path), { recursive: true });
      const temporary = `${path}.${process.pid}.${sequence++}.tmp`;
      await writeFile(temporary, body);
      await rename(temporary, path);
    },
  };
}
