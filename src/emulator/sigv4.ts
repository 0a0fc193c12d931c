/**
 * Verification of AWS Signature Version 4 on data-plane HTTP requests (header form), with node:crypto only.
 *
 * The checks follow the order AWS services apply them (observed answers of AWS's JSON services, as recorded by
 * DynamoDB emulators): the date header exists → it is ISO-8601 basic format → it is within 15 minutes of the
 * service's clock (`Signature expired` / `Signature not yet current`) → `host` is a signed header → the
 * credential scope is well formed → the access key is known → the signature matches.
 *
 * Everything up to the access key needs only the headers ({@link inspectSigV4}), so the HTTP front refuses a
 * request without a valid-looking signature before it reads (or measures) the body. The signature itself is then
 * checked over the canonical request rebuilt exactly as the AWS SDK's signer builds it for a non-S3 service
 * ({@link checkSigV4Signature}): the path as sent (already percent-encoded) encoded once more per segment, the
 * query sorted and encoded, signed headers lower-cased with trimmed values, and the payload hash **computed from
 * the body received**. AWS's non-S3 services never trust `x-amz-content-sha256`: a body that is not the one
 * signed, or `UNSIGNED-PAYLOAD` (allowed by S3 only), makes the signature not match.
 *
 * Error types: AWS's JSON services answer these conditions with `InvalidSignatureException` /
 * `IncompleteSignatureException` / `UnrecognizedClientException` (HTTP 400 or 403), but the IoT data plane's API
 * models none of them; its model has `ForbiddenException` (403), which the HTTP front sends for every SigV4
 * failure, with AWS's message texts. The AWS SDK corrects its clock from the `date` header of any answer
 * (`systemClockOffset`), so the front stamps its answers with the service's (injected) clock.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

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

/** How far, in milliseconds, a request's `x-amz-date` may be from the service's clock either way: AWS's 15 minutes. */
export const SIGV4_MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

const AUTH_PATTERN =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** AWS's texts for the ways a signature can fail (the skew texts are built by {@link skewMessage}). */
export const SIGV4_MESSAGES = Object.freeze({
  missing: 'Missing Authentication Token',
  missingDate: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
  hostNotSigned: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
  unknownKey: 'The security token included in the request is invalid.',
  mismatch:
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
});

/** A request whose headers passed every check that does not need the body. */
export interface SigV4Inspection {
  readonly ok: true;
  readonly amzDate: string;
  readonly scope: string;
  readonly signedHeaderList: string;
  readonly signedHeaders: readonly string[];
  readonly signature: Buffer;
  readonly signingKey: Buffer;
}

/** A refused request: AWS's message for the 403. */
export interface SigV4Refusal {
  readonly ok: false;
  readonly message: string;
}

/** The parts of a request that SigV4 covers. */
export interface SigV4Request {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingHttpHeaders;
}

function basicFormat(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function skewMessage(amzDate: string, signedAt: number, now: number): string | undefined {
  if (signedAt < now - SIGV4_MAX_CLOCK_SKEW_MS)
    return `Signature expired: ${amzDate} is now earlier than ${basicFormat(now - SIGV4_MAX_CLOCK_SKEW_MS)} (${basicFormat(now)} - 15 min.)`;
  if (signedAt > now + SIGV4_MAX_CLOCK_SKEW_MS)
    return `Signature not yet current: ${amzDate} is still later than ${basicFormat(now + SIGV4_MAX_CLOCK_SKEW_MS)} (${basicFormat(now)} + 15 min.)`;
  return undefined;
}

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

const refuse = (message: string): SigV4Refusal => ({ ok: false, message });

/**
 * Checks everything about a request's SigV4 `authorization` header that needs no body: presence and shape, the
 * date and its 15-minute window around `now`, a signed `host`, the credential scope and the access key.
 *
 * @param req - method, url and headers of the request
 * @param credentials - the only access key accepted
 * @param now - the service's clock, epoch milliseconds
 * @returns the parsed signature to finish with {@link checkSigV4Signature}, or AWS's message for the 403
 */
export function inspectSigV4(
  req: SigV4Request,
  credentials: SigV4Credentials,
  now: number,
): SigV4Inspection | SigV4Refusal {
  const authorization = req.headers.authorization;
  if (typeof authorization !== 'string' || !authorization.startsWith('AWS4-'))
    return refuse(SIGV4_MESSAGES.missing);
  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string') return refuse(SIGV4_MESSAGES.missingDate);
  const date = AMZ_DATE.exec(amzDate);
  if (date === null)
    return refuse(
      `Date must be in ISO-8601 'basic format'. Got '${amzDate}'. See http://en.wikipedia.org/wiki/ISO_8601`,
    );
  const [, y, mo, d, h, mi, s] = date.map(Number) as number[];
  const signedAt = Date.UTC(y as number, (mo as number) - 1, d, h, mi, s);
  const skew = skewMessage(amzDate, signedAt, now);
  if (skew !== undefined) return refuse(skew);
  const match = AUTH_PATTERN.exec(authorization);
  if (match === null) return refuse(SIGV4_MESSAGES.mismatch);
  const [, accessKeyId, scopeDate, region, service, signedHeaderList, signature] =
    match as unknown as string[];
  const signedHeaders = (signedHeaderList as string).split(';');
  if (!signedHeaders.includes('host')) return refuse(SIGV4_MESSAGES.hostNotSigned);
  if (!SIGV4_SERVICES.includes(service as string) || !amzDate.startsWith(scopeDate as string))
    return refuse(SIGV4_MESSAGES.mismatch);
  if (accessKeyId !== credentials.accessKeyId) return refuse(SIGV4_MESSAGES.unknownKey);
  const signingKey = hmac(
    hmac(
      hmac(hmac(`AWS4${credentials.secretAccessKey}`, scopeDate as string), region as string),
      service as string,
    ),
    'aws4_request',
  );
  return {
    ok: true,
    amzDate,
    scope: `${scopeDate}/${region}/${service}/aws4_request`,
    signedHeaderList: signedHeaderList as string,
    signedHeaders,
    signature: Buffer.from(signature as string, 'hex'),
    signingKey,
  };
}

/**
 * Checks the signature of an inspected request over its canonical request, with the payload hash computed from
 * the body received.
 *
 * @param req - method, url and headers of the request
 * @param inspection - what {@link inspectSigV4} returned for it
 * @param bodySha256Hex - the hex SHA-256 of the whole body as received
 * @returns `undefined` when the signature is valid, otherwise AWS's message for the 403
 */
export function checkSigV4Signature(
  req: SigV4Request,
  inspection: SigV4Inspection,
  bodySha256Hex: string,
): string | undefined {
  // Only S3 lets a client sign something other than the body's hash (UNSIGNED-PAYLOAD, streaming chunks).
  const declared = req.headers['x-amz-content-sha256'];
  if (declared !== undefined && declared !== bodySha256Hex) return SIGV4_MESSAGES.mismatch;
  const headerLines: string[] = [];
  for (const name of inspection.signedHeaders) {
    const value = req.headers[name];
    if (value === undefined) return SIGV4_MESSAGES.mismatch;
    const text = Array.isArray(value) ? value.join(',') : String(value);
    headerLines.push(`${name}:${text.trim().replace(/\s+/g, ' ')}`);
  }
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const canonicalRequest = [
    req.method ?? 'GET',
    canonicalPath(q < 0 ? url : url.slice(0, q)),
    canonicalQuery(q < 0 ? '' : url.slice(q + 1)),
    `${headerLines.join('\n')}\n`,
    inspection.signedHeaderList,
    bodySha256Hex,
  ].join('\n');
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    inspection.amzDate,
    inspection.scope,
    createHash('sha256').update(canonicalRequest, 'utf8').digest('hex'),
  ].join('\n');
  const expected = createHmac('sha256', inspection.signingKey).update(stringToSign, 'utf8').digest();
  const given = inspection.signature;
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? undefined
    : SIGV4_MESSAGES.mismatch;
}

/**
 * Checks a request's SigV4 `authorization` header against the configured credentials, body included.
 *
 * @param req - the request (method, url and headers are read)
 * @param body - the full request body
 * @param credentials - the only access key accepted
 * @param now - the service's clock, epoch milliseconds (the signature's date must be within 15 minutes of it)
 * @returns `undefined` when the signature is valid, otherwise AWS's message for the 403
 */
export function verifySigV4(
  req: SigV4Request,
  body: Uint8Array,
  credentials: SigV4Credentials,
  now: number = Date.now(),
): string | undefined {
  const inspection = inspectSigV4(req, credentials, now);
  if (!inspection.ok) return inspection.message;
  return checkSigV4Signature(req, inspection, createHash('sha256').update(body).digest('hex'));
}
