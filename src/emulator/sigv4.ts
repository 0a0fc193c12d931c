/**
 * Verification of AWS Signature Version 4 on data-plane HTTP requests (header form), with node:crypto only.
 *
 * The canonical request is rebuilt exactly as the AWS SDK's signer builds it for a non-S3 service: the
 * request path as sent (already percent-encoded) is encoded once more per segment, query parameters are
 * sorted and encoded, signed headers are lower-cased with trimmed values, and the payload hash is
 * `x-amz-content-sha256` when present, else the SHA-256 of the body. Clock skew is not checked: the local
 * service runs next to its clients and tests may use a fake clock.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The one access key the local service accepts. */
export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/**
 * The SigV4 signing names accepted: `iotdevicegateway` is the one AWS documents for the data plane (spec 8.1);
 * the AWS SDK for JavaScript v3 `IoTDataPlaneClient` signs with `iotdata` (its model's signing name).
 */
export const SIGV4_SERVICES: readonly string[] = Object.freeze(['iotdevicegateway', 'iotdata']);

const AUTH_PATTERN =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/;

/** AWS's texts for the three ways a signature can fail. */
export const SIGV4_MESSAGES = Object.freeze({
  missing: 'Missing Authentication Token',
  unknownKey: 'The security token included in the request is invalid.',
  mismatch:
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
});

function escapeUri(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `${path.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && path.endsWith('/') ? '/' : ''}`;
  return escapeUri(normalized).replace(/%2F/g, '/');
}

function canonicalQuery(rawQuery: string): string {
  const pairs: [string, string][] = [];
  for (const [key, value] of new URLSearchParams(rawQuery)) {
    if (key.toLowerCase() === 'x-amz-signature') continue;
    pairs.push([escapeUri(key), escapeUri(value)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/**
 * Checks the request's SigV4 `authorization` header against the configured credentials.
 *
 * @param req - the request (method, url and headers are read)
 * @param body - the full request body
 * @param credentials - the only access key accepted
 * @returns `undefined` when the signature is valid, otherwise AWS's message for the 403
 */
export function verifySigV4(
  req: IncomingMessage,
  body: Uint8Array,
  credentials: SigV4Credentials,
): string | undefined {
  const authorization = req.headers.authorization;
  if (typeof authorization !== 'string') return SIGV4_MESSAGES.missing;
  const match = AUTH_PATTERN.exec(authorization);
  if (match === null) return SIGV4_MESSAGES.mismatch;
  const [, accessKeyId, date, region, service, signedHeaderList, signature] = match as unknown as string[];
  if (accessKeyId !== credentials.accessKeyId) return SIGV4_MESSAGES.unknownKey;
  if (!SIGV4_SERVICES.includes(service as string)) return SIGV4_MESSAGES.mismatch;
  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !amzDate.startsWith(date as string)) return SIGV4_MESSAGES.mismatch;

  const signedHeaders = (signedHeaderList as string).split(';');
  const headerLines: string[] = [];
  for (const name of signedHeaders) {
    const value = req.headers[name];
    if (value === undefined) return SIGV4_MESSAGES.mismatch;
    const text = Array.isArray(value) ? value.join(',') : String(value);
    headerLines.push(`${name}:${text.trim().replace(/\s+/g, ' ')}`);
  }
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const contentHash = req.headers['x-amz-content-sha256'];
  const payloadHash =
    typeof contentHash === 'string' ? contentHash : createHash('sha256').update(body).digest('hex');
  const canonicalRequest = [
    req.method ?? 'GET',
    canonicalPath(q < 0 ? url : url.slice(0, q)),
    canonicalQuery(q < 0 ? '' : url.slice(q + 1)),
    `${headerLines.join('\n')}\n`,
    signedHeaderList,
    payloadHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonicalRequest, 'utf8').digest('hex'),
  ].join('\n');
  const key = hmac(
    hmac(
      hmac(hmac(`AWS4${credentials.secretAccessKey}`, date as string), region as string),
      service as string,
    ),
    'aws4_request',
  );
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest();
  const given = Buffer.from(signature as string, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? undefined
    : SIGV4_MESSAGES.mismatch;
}
