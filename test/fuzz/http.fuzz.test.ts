/**
 * Fuzzes the HTTP data plane with request bytes over raw sockets: well-formed requests with fuzzed methods,
 * paths, query strings, headers and bodies, and arbitrary bytes. Properties: every answer is HTTP with AWS's
 * error shape for every error (`x-amzn-errortype` + `{"__type","message"}`), the service stays up (its process
 * never dies, a real request still works afterwards) and its memory stays bounded.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServiceProcess, startServiceProcess } from '../emulator/security/service-process.js';
import { fuzzRuns, fuzzTimeoutMs } from './fuzz-runs.js';

const MB = 1024 * 1024;
const RUNS = fuzzRuns(300);
let service: ServiceProcess;
let port: number;

beforeAll(async () => {
  service = await startServiceProcess();
  port = Number(new URL(service.httpEndpoint).port);
}, 30_000);
afterAll(async () => service.stop());

/** Writes the bytes, half-closes, and returns everything the server sent before it closed. */
function exchange(bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // The server may close while bytes are still being sent (after answering a request it refuses).
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return;
      reject(error);
    });
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.end(bytes);
  });
}

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  /** An answer to HEAD: no body to check. */
  bodiless?: boolean;
}

/** Splits a byte stream of HTTP/1.1 answers (keep-alive may carry several) into answers. */
function parseAnswers(raw: Buffer, head: boolean): Answer[] {
  const answers: Answer[] = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0)
      throw new Error(`an answer without a complete head: ${JSON.stringify(rest.toString('latin1'))}`);
    const [statusLine = '', ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
    if (match === null) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(statusLine)}`);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    if (headers.get('transfer-encoding') === 'chunked') {
      // Node's own answers (written without a length) come chunked.
      const chunks: Buffer[] = [];
      let at = end + 4;
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', at);
        const size = Number.parseInt(rest.subarray(at, lineEnd).toString('latin1'), 16);
        at = lineEnd + 2;
        if (size === 0) break;
        chunks.push(rest.subarray(at, at + size));
        at += size + 2;
      }
      answers.push({ status: Number(match[1]), headers, body: Buffer.concat(chunks) });
      rest = rest.subarray(at + 2);
      continue;
    }
    // An answer to HEAD has no body whatever its Content-Length says (RFC 9110 9.3.2).
    // An answer to HEAD carries no body; the parser's own answer to bytes it cannot read (which may follow a
    // HEAD request line) does. Tell them apart by what follows the head.
    const after = rest.subarray(end + 4);
    const bodiless = head && (after.length === 0 || after.subarray(0, 9).toString('latin1') === 'HTTP/1.1 ');
    const length = bodiless ? 0 : Number(headers.get('content-length') ?? '0');
    answers.push({
      status: Number(match[1]),
      headers,
      body: rest.subarray(end + 4, end + 4 + length),
      bodiless,
    });
    rest = rest.subarray(end + 4 + length);
  }
  return answers;
}

function expectAwsShape(answer: Answer): void {
  if (answer.status < 400) return;
  const errorType = answer.headers.get('x-amzn-errortype');
  expect(errorType, `status ${answer.status} without x-amzn-errortype`).toMatch(/^[A-Za-z]+Exception$/);
  if (answer.bodiless === true) return;
  const body = JSON.parse(answer.body.toString('utf8')) as { __type?: unknown; message?: unknown };
  expect(body.__type).toBe(errorType);
  expect(typeof body.message).toBe('string');
}

const token = fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/);
const method = fc.oneof(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'), token);
const segment = fc.oneof(
  fc.constantFrom('lamp', 'a%24b', '%2F', '%00', '%E0%A4', '..', '.', '', 'x'.repeat(200)),
  fc.string({ maxLength: 20 }).map((s) => encodeURIComponent(s)),
  fc
    .stringMatching(/^[\x21-\x7e]{0,20}$/)
    .filter((s) => !s.includes('/') && !s.includes('?') && !s.includes('#')),
);
const path = fc.oneof(
  segment.map((t) => `/things/${t}/shadow`),
  fc.tuple(segment, segment).map(([t, n]) => `/things/${t}/shadow?name=${n}`),
  segment.map((t) => `/api/things/shadow/ListNamedShadowsForThing/${t}`),
  fc
    .tuple(segment, fc.constantFrom('0', '1', '2', '-1', 'x'))
    .map(([t, q]) => `/topics/${t}?qos=${q}&retain=true`),
  fc.array(segment, { maxLength: 5 }).map((parts) => `/${parts.join('/')}`),
);
const headerName = fc.oneof(
  fc.constantFrom(
    'content-type',
    'x-amz-date',
    'authorization',
    'x-amz-content-sha256',
    'transfer-encoding',
    'expect',
  ),
  token,
);
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
const jsonish = fc.oneof(
  fc.json().map((text) => Buffer.from(text)),
  fc
    .constantFrom(
      '{"state":{"reported":{"on":true}}}',
      '{"state":',
      '{"state":{"desired":null}}',
      '\u0000\u00ff',
    )
    .map((text) => Buffer.from(text, 'latin1')),
  fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes)),
);

/** A request line, headers and a body, with a Content-Length that is right, wrong, or absent. */
const structured = fc
  .record({
    method,
    path,
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
    body: jsonish,
    length: fc.constantFrom('right', 'short', 'long', 'none', 'garbage'),
  })
  .map(({ method: m, path: p, headers, body, length }) => {
    const lines = [`${m} ${p} HTTP/1.1`, 'Host: 127.0.0.1'];
    for (const [name, value] of headers)
      if (name.toLowerCase() !== 'content-length') lines.push(`${name}: ${value}`);
    if (length === 'right') lines.push(`Content-Length: ${body.length}`);
    if (length === 'short') lines.push(`Content-Length: ${Math.max(0, body.length - 3)}`);
    if (length === 'long') lines.push(`Content-Length: ${body.length + 10}`);
    if (length === 'garbage') lines.push('Content-Length: 12abc');
    return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
  });

const raw = fc.oneof(
  fc.uint8Array({ maxLength: 4096 }).map((bytes) => Buffer.from(bytes)),
  fc.array(fc.integer({ min: 0, max: 127 }), { maxLength: 200 }).map((codes) => Buffer.from(codes)),
);

describe('HTTP fuzz', () => {
  it(
    `${RUNS} fuzzed requests: HTTP answers with AWS's error shape, the service stays up, memory bounded`,
    async () => {
      const before = await service.memory();
      await fc.assert(
        fc.asyncProperty(fc.oneof(structured, raw), async (bytes) => {
          const head = bytes.subarray(0, 5).toString('latin1') === 'HEAD ';
          const answers = parseAnswers(await exchange(bytes), head);
          for (const answer of answers) expectAwsShape(answer);
          expect(service.alive()).toBe(true);
        }),
        { numRuns: RUNS },
      );
      const after = await service.memory();
      expect(after.peak - before.current).toBeLessThan(150 * MB);
      const check = await fetch(`${service.httpEndpoint}/things/after-fuzz/shadow`);
      expect(check.status).toBe(404);
      expect(check.headers.get('x-amzn-errortype')).toBe('ResourceNotFoundException');
    },
    fuzzTimeoutMs(RUNS),
  );
});
