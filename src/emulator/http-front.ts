/**
 * The AWS IoT data-plane REST API (spec 8.2) over node:http, for the real `IoTDataPlaneClient`.
 *
 * It only translates: requests go to the shared {@link ShadowEngineApi}, answers come back as AWS sends them
 * (raw JSON documents for shadow operations; errors as status + `x-amzn-errortype` + `{"__type","message"}`,
 * the wire format the SDK v3 maps to its modelled exceptions, spec 8.3).
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ShadowOptionsError } from '../errors.js';
import {
  type BrokerPublish,
  type DataPlaneAnswer,
  errorAnswer,
  DataPlaneError as HttpError,
  routeDataPlaneRequest,
} from './data-plane-router.js';
import type { ShadowEngineApi } from './engine-api.js';
import { answerClientError, answerUnsupportedExpectation } from './http-client-error.js';
import { checkSigV4Signature, inspectSigV4, type SigV4Credentials } from './sigv4.js';

export type { BrokerPublish } from './data-plane-router.js';

/** Options of {@link startHttpFront}. */
export interface HttpFrontOptions {
  /**
   * Interface to listen on.
   * @defaultValue '127.0.0.1'
   */
  host?: string;
  /**
   * Port to listen on; 0 picks a free port.
   * @defaultValue 0
   */
  port?: number;
  /**
   * Where `POST /topics/{topic}` sends messages for topics other than shadow request topics. Without it such
   * messages are accepted and dropped (there is no broker to deliver them to).
   * @defaultValue undefined
   */
  publish?: BrokerPublish;
  /**
   * Largest request body accepted; larger bodies get 413 (AWS's message size limit is 128 KB, spec 6).
   * @defaultValue 131072
   */
  maxPayloadBytes?: number;
  /**
   * When set, every request must carry a valid SigV4 signature (service `iotdevicegateway`) made with these
   * credentials; others get 403 ForbiddenException.
   * @defaultValue undefined (no verification)
   */
  requireSigV4?: SigV4Credentials;
  /**
   * The service's clock in epoch milliseconds: SigV4's 15-minute window is measured against it and answers carry
   * it in their `date` header (from which the AWS SDK corrects its own clock).
   * @defaultValue Date.now
   */
  clock?: () => number;
  /**
   * Serves the web console: called first for every request; returning true means it took the request (no SigV4
   * check applies: the console decides who it answers, see `createConsoleServer`).
   * @defaultValue undefined (no console)
   */
  console?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A running HTTP front. */
export interface HttpFront {
  /** `http://host:port`, for the SDK's `endpoint`. */
  readonly endpoint: string;
  /** The port actually bound. */
  readonly port: number;
  /**
   * Stops listening and closes every connection; requests already being answered (body received) get their
   * answer first, the others are cut off.
   */
  close(): Promise<void>;
  /** Lets the process exit while the server (and its connections) are still open, for benchmarks and tools. */
  unref(): void;
}

/** Defaults of {@link HttpFrontOptions}. */
export const HTTP_FRONT_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  publish: undefined,
  maxPayloadBytes: 128 * 1024,
  requireSigV4: undefined,
  clock: Date.now,
  console: undefined,
});

interface ResolvedHttpFrontOptions {
  host: string;
  port: number;
  publish: BrokerPublish | undefined;
  maxPayloadBytes: number;
  requireSigV4: SigV4Credentials | undefined;
  clock: () => number;
  console: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

/**
 * Validates HTTP front options and applies the defaults.
 *
 * @throws {@link ShadowOptionsError} for an unknown key or an invalid value
 */
export function resolveHttpFrontOptions(options: HttpFrontOptions = {}): ResolvedHttpFrontOptions {
  const known = Object.keys(HTTP_FRONT_DEFAULTS);
  for (const key of Object.keys(options))
    if (!known.includes(key))
      throw new ShadowOptionsError(`Unknown HTTP front option '${key}'; known options: ${known.join(', ')}`);
  const host = options.host ?? HTTP_FRONT_DEFAULTS.host;
  if (typeof host !== 'string' || host === '')
    throw new ShadowOptionsError('HTTP front option host must be a non-empty string');
  const port = options.port ?? HTTP_FRONT_DEFAULTS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ShadowOptionsError(`HTTP front option port must be an integer 0-65535, got ${String(port)}`);
  const maxPayloadBytes = options.maxPayloadBytes ?? HTTP_FRONT_DEFAULTS.maxPayloadBytes;
  if (!Number.isSafeInteger(maxPayloadBytes) || maxPayloadBytes < 1)
    throw new ShadowOptionsError(
      `HTTP front option maxPayloadBytes must be a positive integer, got ${String(maxPayloadBytes)}`,
    );
  if (options.publish !== undefined && typeof options.publish !== 'function')
    throw new ShadowOptionsError('HTTP front option publish must be a function');
  const sig = options.requireSigV4;
  if (
    sig !== undefined &&
    (typeof sig !== 'object' ||
      sig === null ||
      typeof sig.accessKeyId !== 'string' ||
      typeof sig.secretAccessKey !== 'string' ||
      sig.accessKeyId === '')
  )
    throw new ShadowOptionsError(
      'HTTP front option requireSigV4 must be { accessKeyId, secretAccessKey } strings',
    );
  const clock = options.clock ?? HTTP_FRONT_DEFAULTS.clock;
  if (typeof clock !== 'function') throw new ShadowOptionsError('HTTP front option clock must be a function');
  if (options.console !== undefined && typeof options.console !== 'function')
    throw new ShadowOptionsError('HTTP front option console must be a function');
  return {
    host,
    port,
    publish: options.publish,
    maxPayloadBytes,
    requireSigV4: sig,
    clock,
    console: options.console,
  };
}

/** Text of a 413: AWS's documented message. */
const TOO_LARGE = 'The payload exceeds the maximum size allowed';

/**
 * Writes an answer of the data plane (or of a page the HTTP front serves) with its length and a request id, as
 * AWS's endpoints send them.
 */
export function writeAnswer(res: ServerResponse, answer: DataPlaneAnswer): void {
  res.writeHead(answer.status, {
    'content-length': Buffer.byteLength(answer.body),
    'x-amzn-requestid': randomUUID(),
    ...answer.headers,
  });
  res.end(answer.body);
}

const tooLarge = (): HttpError =>
  new HttpError(413, 'RequestEntityTooLargeException', TOO_LARGE, { connection: 'close' });

/** A body as read: the bytes (undefined when more than the limit arrived) and, when asked for, its SHA-256. */
interface ReadBody {
  bytes: Buffer | undefined;
  sha256: string | undefined;
}

/**
 * Reads the body, keeping at most `max` bytes. Without `hash` a larger body is refused (413) at once. With
 * `hash` (SigV4 on) every byte is hashed, the ones past `max` without being kept, so that the signature can be
 * checked before the size: an unauthenticated client learns nothing about limits, and memory stays bounded.
 */
function readBody(req: IncomingMessage, max: number, hash: boolean): Promise<ReadBody> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > max && !hash) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const digest = hash ? createHash('sha256') : undefined;
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      digest?.update(chunk);
      if (size > max) {
        chunks.length = 0;
        if (digest !== undefined) return;
        reject(tooLarge());
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () =>
      resolve({
        bytes: size > max ? undefined : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks),
        sha256: digest?.digest('hex'),
      }),
    );
    req.on('error', reject);
  });
}

/**
 * Starts the data-plane HTTP server in front of an engine.
 *
 * @param engine - the shared shadow engine
 * @param options - host, port, publish function, SigV4 credentials; see {@link HttpFrontOptions}
 * @throws {@link ShadowOptionsError} for invalid options; Error when the port cannot be bound
 * @example
 * const front = await startHttpFront(createShadowEngine(), { port: 0 });
 * const client = new IoTDataPlaneClient({ endpoint: front.endpoint, region: 'us-east-1', credentials });
 */
export async function startHttpFront(
  engine: ShadowEngineApi,
  options: HttpFrontOptions = {},
): Promise<HttpFront> {
  const resolved = resolveHttpFrontOptions(options);
  // Requests whose body was read and that are being answered: close() lets them finish, so a client never sees
  // a dropped connection for a request the engine applied (it would retry an update that already happened).
  const busy = new Set<ServerResponse>();
  let stopping = false;

  function settled(res: ServerResponse): void {
    if (busy.delete(res) && stopping && busy.size === 0) server.closeAllConnections();
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const method = req.method ?? 'GET';
    const sigV4 = resolved.requireSigV4;
    // Authentication before anything else (AWS answers 403 before 413): what needs no body is checked before
    // the body is read, and then the connection is closed instead of draining a body nobody will look at.
    const inspection = sigV4 === undefined ? undefined : inspectSigV4(req, sigV4, resolved.clock());
    if (inspection !== undefined && !inspection.ok)
      throw new HttpError(403, 'ForbiddenException', inspection.message, { connection: 'close' });
    const read = await readBody(req, resolved.maxPayloadBytes, inspection !== undefined);
    busy.add(res);
    res.once('close', () => settled(res));
    // While closing, answer and then close the connection instead of keeping it for further requests.
    if (stopping) res.shouldKeepAlive = false;
    if (inspection !== undefined) {
      const failure = checkSigV4Signature(req, inspection, read.sha256 as string);
      if (failure !== undefined) throw new HttpError(403, 'ForbiddenException', failure);
    }
    if (read.bytes === undefined) throw tooLarge();
    const body = read.bytes;

    writeAnswer(res, await routeDataPlaneRequest(engine, { method, path, query, body }, resolved.publish));
  }

  const server: Server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    // The service's time, not the host's: the AWS SDK sets its clock offset from it (see sigv4.ts).
    res.setHeader('date', new Date(resolved.clock()).toUTCString());
    if (resolved.console?.(req, res) === true) return;
    route(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof HttpError) {
        writeAnswer(res, errorAnswer(error.status, error.errorType, error.message, error.headers));
        if (error.headers.connection === 'close') res.on('finish', () => req.socket.destroy());
      } else writeAnswer(res, errorAnswer(500, 'InternalFailureException', 'Internal service failure'));
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  server.on('checkExpectation', answerUnsupportedExpectation);
  let unrefSockets = false;
  server.on('connection', (socket: Socket) => {
    socket.setNoDelay(true);
    if (unrefSockets) socket.unref();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(resolved.port, resolved.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = resolved.host.includes(':') ? `[${resolved.host}]` : resolved.host;
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://${hostForUrl}:${port}`,
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        stopping = true;
        server.close(() => resolve());
        // Idle and half-received requests go now; requests being answered close their connection when done.
        for (const res of busy) res.shouldKeepAlive = false;
        if (busy.size === 0) server.closeAllConnections();
        else server.closeIdleConnections();
      });
      return closed;
    },
    unref() {
      unrefSockets = true;
      server.unref();
    },
  };
}
