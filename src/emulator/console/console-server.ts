/**
 * The local service's web console, served by the HTTP front under `/console`:
 *
 * - `GET /console` — the page (HTML with its CSS and script inlined: one request, no extra files in `dist/`);
 * - `GET /console/events` — Server-Sent Events for the fleet: one `snapshot` (every shadow's summary and the
 *   fleet's chart series), then `shadows` (changed summaries) and `stats` as the service accepts or refuses writes;
 * - `GET /console/events?thing=T&shadow=S` — Server-Sent Events for one shadow (`S` empty for the classic shadow):
 *   `snapshot` (its document as GetThingShadow returns it, timeline, recent reserved-topic messages, the thing's
 *   series), then `doc`, `timeline`, `messages`, `stats` and `edit` (the engine's work on an edit from the page);
 * - `POST /console/api/update?thing=T&shadow=S` — an edit: an AWS update request naming the version the page
 *   showed, applied through `createShadowClient` (see `console-edit.ts`).
 *
 * Everything live comes from the engine's own events (no polling). Events are batched for `flushMs` so that a busy
 * fleet costs one write per stream per batch; a shadow's summary appears once per batch however often it changed.
 *
 * Access: the console is an unauthenticated read and write path into the service. The service turns it on by
 * default only when it listens on a loopback interface and does not require SigV4; when it is turned on
 * explicitly while SigV4 is required, `loopbackOnly` makes it answer loopback peers only (403 otherwise). Edits
 * must be `application/json` from the console's own origin, so another web page open in the same browser cannot
 * post one (a cross-origin JSON post needs a CORS preflight, which the console never grants).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ShadowTarget } from '../../core/document.js';
import { getDocument } from '../../core/get-document.js';
import { ShadowOptionsError } from '../../errors.js';
import type { ShadowTransport } from '../../transports/transport.js';
import { errorAnswer } from '../data-plane-router.js';
import { writeAnswer } from '../http-front.js';
import type { ShadowEngine } from '../shadow-engine.js';
import { CONSOLE_PAGE } from './console-assets.js';
import { applyConsoleEdit, type ConsoleEditEvent } from './console-edit.js';
import { inProcessTransport } from './in-process-transport.js';
import {
  CONSOLE_CLIENT_ID,
  createShadowTracker,
  type ShadowSummary,
  type ShadowTracker,
  type StoredMessage,
  shadowKey,
  type TimelineEntry,
  type TrackerChange,
} from './shadow-tracker.js';

/** Options of {@link createConsoleServer}. */
export interface ConsoleOptions {
  /**
   * Answer only requests from loopback addresses (127.0.0.0/8, ::1); others get 403.
   * @defaultValue false
   */
  loopbackOnly?: boolean;
  /**
   * Length of one chart bucket, in clock milliseconds.
   * @defaultValue 5000
   */
  bucketMs?: number;
  /**
   * Buckets per chart (the charts show `bucketMs * buckets`).
   * @defaultValue 36 (three minutes)
   */
  buckets?: number;
  /**
   * How long live events are gathered before they are written to the streams, in milliseconds.
   * @defaultValue 10
   */
  flushMs?: number;
  /**
   * Clock in epoch milliseconds (the service's clock: it dates the buckets and documents).
   * @defaultValue Date.now
   */
  clock?: () => number;
}

/** Defaults of {@link ConsoleOptions}. */
export const CONSOLE_DEFAULTS: Readonly<ResolvedConsoleOptions> = Object.freeze({
  loopbackOnly: false,
  bucketMs: 5000,
  buckets: 36,
  flushMs: 10,
  clock: Date.now,
});

/** {@link ConsoleOptions} with defaults applied. */
export interface ResolvedConsoleOptions {
  loopbackOnly: boolean;
  bucketMs: number;
  buckets: number;
  flushMs: number;
  clock: () => number;
}

/**
 * Validates console options and applies the defaults.
 *
 * @throws {@link ShadowOptionsError} for an unknown key or an invalid value
 */
export function resolveConsoleOptions(options: ConsoleOptions = {}): ResolvedConsoleOptions {
  if (typeof options !== 'object' || options === null)
    throw new ShadowOptionsError('Console options must be an object');
  const known = Object.keys(CONSOLE_DEFAULTS);
  for (const key of Object.keys(options))
    if (!known.includes(key))
      throw new ShadowOptionsError(`Unknown console option '${key}'; known options: ${known.join(', ')}`);
  const positive = (name: 'bucketMs' | 'buckets' | 'flushMs', min: number, max: number): number => {
    const value = options[name] ?? CONSOLE_DEFAULTS[name];
    if (!Number.isSafeInteger(value) || value < min || value > max)
      throw new ShadowOptionsError(
        `Console option ${name} must be an integer ${min}-${max}, got ${String(value)}`,
      );
    return value;
  };
  const loopbackOnly = options.loopbackOnly ?? CONSOLE_DEFAULTS.loopbackOnly;
  if (typeof loopbackOnly !== 'boolean')
    throw new ShadowOptionsError('Console option loopbackOnly must be a boolean');
  const clock = options.clock ?? CONSOLE_DEFAULTS.clock;
  if (typeof clock !== 'function') throw new ShadowOptionsError('Console option clock must be a function');
  return {
    loopbackOnly,
    bucketMs: positive('bucketMs', 100, 3_600_000),
    buckets: positive('buckets', 2, 1000),
    flushMs: positive('flushMs', 0, 1000),
    clock,
  };
}

/** The console, as the HTTP front uses it. */
export interface ConsoleServer {
  /** Serves the request when its path is `/console` or below it; returns false (and does nothing) otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Live streams open now. */
  streams(): number;
  /** Ends every live stream and stops following the engine. */
  close(): void;
}

/** True for a loopback peer address (IPv4 127/8, IPv6 ::1, and IPv4-mapped 127/8). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

const MAX_EDIT_BYTES = 128 * 1024;
/** Bytes a stream may have waiting for a slow reader before it is dropped. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** Stats are written to a stream at most this often (the charts need no more). */
const STATS_INTERVAL_MS = 250;

interface Stream {
  res: ServerResponse;
  /** The shadow a detail stream follows; undefined for the fleet stream. */
  key: string | undefined;
  target: ShadowTarget | undefined;
  /** Shadows whose summary changed since the last write. */
  changed: Set<string>;
  timeline: TimelineEntry[];
  messages: StoredMessage[];
  edits: ConsoleEditEvent[];
  doc: boolean;
  stats: boolean;
  statsWrittenAt: number;
  timer: NodeJS.Timeout | undefined;
}

/** The console's pages and answers are live data: never cached. */
const NO_STORE = { 'cache-control': 'no-store' };

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  writeAnswer(res, {
    status,
    headers: { 'content-type': 'application/json', ...NO_STORE, ...headers },
    body: JSON.stringify(body),
  });
}

/** Errors in the data plane's shape, so the page shows what the HTTP API would answer. */
function sendError(res: ServerResponse, status: number, errorType: string, message: string): void {
  writeAnswer(res, errorAnswer(status, errorType, message, NO_STORE));
}

/**
 * Creates the console over an engine. It starts following the engine's events at once (the charts count from
 * then on); serve it by passing {@link ConsoleServer.handle} to the HTTP front.
 *
 * @param engine - the service's engine
 * @param options - see {@link ConsoleOptions}
 * @throws {@link ShadowOptionsError} for invalid options
 */
export function createConsoleServer(engine: ShadowEngine, options: ConsoleOptions = {}): ConsoleServer {
  const resolved = resolveConsoleOptions(options);
  const { clock, flushMs } = resolved;
  const tracker: ShadowTracker = createShadowTracker(engine, resolved.bucketMs, resolved.buckets);
  const transport: ShadowTransport = inProcessTransport(engine, CONSOLE_CLIENT_ID);
  const streams = new Set<Stream>();
  let closed = false;

  function write(stream: Stream, event: string, data: unknown): void {
    // A page that stops reading (a stalled tab) must not make the service buffer without bound: drop its stream;
    // the browser reconnects and starts again from a fresh snapshot.
    if (stream.res.writableLength > MAX_BUFFERED_BYTES) {
      stream.res.destroy();
      return;
    }
    stream.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  function documentOf(target: ShadowTarget): unknown {
    const result = getDocument(engine.read(target), { target, now: clock(), limits: engine.limits });
    return result.ok ? result.body : null;
  }

  function seriesOf(stream: Stream) {
    const now = clock();
    return stream.target === undefined
      ? tracker.stats.fleet(now)
      : tracker.stats.thing(stream.target.thingName, now);
  }

  function flush(stream: Stream): void {
    stream.timer = undefined;
    if (stream.changed.size > 0) {
      const summaries: ShadowSummary[] = [];
      for (const key of stream.changed) {
        const summary = tracker.summary(key);
        if (summary !== undefined) summaries.push(summary);
      }
      stream.changed.clear();
      write(stream, 'shadows', summaries);
    }
    if (stream.target !== undefined) {
      if (stream.doc) {
        stream.doc = false;
        write(stream, 'doc', documentOf(stream.target));
      }
      if (stream.timeline.length > 0) {
        write(stream, 'timeline', stream.timeline);
        stream.timeline = [];
      }
      if (stream.messages.length > 0) {
        write(stream, 'messages', stream.messages.map(tracker.entryOf));
        stream.messages = [];
      }
      if (stream.edits.length > 0) {
        write(stream, 'edit', stream.edits);
        stream.edits = [];
      }
    }
    const now = Date.now();
    if (stream.stats) {
      if (now - stream.statsWrittenAt >= STATS_INTERVAL_MS) {
        stream.stats = false;
        stream.statsWrittenAt = now;
        write(stream, 'stats', seriesOf(stream));
      } else schedule(stream, STATS_INTERVAL_MS - (now - stream.statsWrittenAt));
    }
  }

  function schedule(stream: Stream, delay: number = flushMs): void {
    if (stream.timer === undefined) stream.timer = setTimeout(() => flush(stream), delay);
  }

  function onChange(stream: Stream, change: TrackerChange): void {
    if (stream.key === undefined) {
      if (change.type === 'shadow') stream.changed.add(change.key);
      else if (change.type === 'count') stream.stats = true;
      else return;
    } else if (change.type === 'count') {
      if (change.thing !== stream.target?.thingName) return;
      stream.stats = true;
    } else if (change.key !== stream.key) return;
    else if (change.type === 'shadow') {
      stream.changed.add(change.key);
      stream.timeline.push(change.entry);
      stream.doc = true;
    } else stream.messages.push(change.entry);
    schedule(stream);
  }

  const unsubscribe = tracker.subscribe((change) => {
    for (const stream of streams) onChange(stream, change);
  });

  // The charts move on with time even when nothing happens; this also keeps idle connections alive.
  const tick = setInterval(() => {
    for (const stream of streams) {
      stream.stats = true;
      schedule(stream);
    }
  }, resolved.bucketMs);
  tick.unref();

  function openStream(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    const thing = query.get('thing');
    let target: ShadowTarget | undefined;
    if (thing !== null) {
      const shadow = query.get('shadow') ?? '';
      target = shadow === '' ? { thingName: thing } : { thingName: thing, shadowName: shadow };
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      ...NO_STORE,
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const stream: Stream = {
      res,
      key: target === undefined ? undefined : shadowKey(target),
      target,
      changed: new Set(),
      timeline: [],
      messages: [],
      edits: [],
      doc: false,
      stats: false,
      statsWrittenAt: Date.now(),
      timer: undefined,
    };
    res.write('retry: 1000\n\n');
    if (target === undefined || stream.key === undefined)
      write(stream, 'snapshot', { now: clock(), shadows: tracker.summaries(), stats: seriesOf(stream) });
    else
      write(stream, 'snapshot', {
        now: clock(),
        target: { thing: target.thingName, shadow: target.shadowName ?? '' },
        document: documentOf(target),
        timeline: tracker.timeline(stream.key),
        messages: tracker.messages(stream.key),
        stats: seriesOf(stream),
      });
    streams.add(stream);
    const end = () => {
      streams.delete(stream);
      if (stream.timer !== undefined) clearTimeout(stream.timer);
    };
    req.once('close', end);
    res.once('close', end);
  }

  async function edit(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_EDIT_BYTES) {
        sendError(res, 413, 'RequestEntityTooLargeException', 'The payload exceeds the maximum size allowed');
        return;
      }
      chunks.push(chunk);
    }
    const thing = query.get('thing') ?? '';
    const shadow = query.get('shadow') ?? '';
    const target: ShadowTarget =
      shadow === '' ? { thingName: thing } : { thingName: thing, shadowName: shadow };
    const key = shadowKey(target);
    const outcome = await applyConsoleEdit(engine, transport, target, Buffer.concat(chunks), (event) => {
      for (const stream of streams)
        if (stream.key === key) {
          stream.edits.push(event);
          schedule(stream);
        }
    });
    const headers: Record<string, string> =
      outcome.status === 200 ? {} : { 'x-amzn-errortype': String(outcome.body.__type) };
    sendJson(res, outcome.status, outcome.body, headers);
  }

  function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void {
    const method = req.method ?? 'GET';
    if (resolved.loopbackOnly && !isLoopbackAddress(req.socket.remoteAddress)) {
      sendError(res, 403, 'ForbiddenException', 'The console answers loopback clients only');
      return;
    }
    if (path === '/console' || path === '/console/') {
      if (method !== 'GET' && method !== 'HEAD') {
        sendError(res, 405, 'MethodNotAllowedException', `Method ${method} is not allowed on this resource`);
        return;
      }
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(CONSOLE_PAGE),
        ...NO_STORE,
        'x-content-type-options': 'nosniff',
        'content-security-policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
      });
      res.end(method === 'HEAD' ? undefined : CONSOLE_PAGE);
      return;
    }
    if (path === '/console/events') {
      if (method !== 'GET') {
        sendError(res, 405, 'MethodNotAllowedException', `Method ${method} is not allowed on this resource`);
        return;
      }
      openStream(req, res, query);
      return;
    }
    if (path === '/console/api/update') {
      if (method !== 'POST') {
        sendError(res, 405, 'MethodNotAllowedException', `Method ${method} is not allowed on this resource`);
        return;
      }
      const type = req.headers['content-type'] ?? '';
      const origin = req.headers.origin;
      if (
        !type.startsWith('application/json') ||
        (origin !== undefined && origin !== `http://${req.headers.host}`)
      ) {
        sendError(res, 403, 'ForbiddenException', 'Console edits must be JSON posted from the console page');
        return;
      }
      edit(req, res, query).catch(() => {
        if (!res.headersSent) sendError(res, 500, 'InternalFailureException', 'Internal service failure');
        else res.destroy();
      });
      return;
    }
    sendError(res, 404, 'UnknownOperationException', `No console resource at ${method} ${path}`);
  }

  return {
    handle(req, res) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      if (path !== '/console' && !path.startsWith('/console/')) return false;
      if (closed) {
        sendError(res, 503, 'ServiceUnavailableException', 'Service closing');
        return true;
      }
      route(req, res, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
      return true;
    },
    streams: () => streams.size,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(tick);
      unsubscribe();
      tracker.close();
      for (const stream of streams) {
        if (stream.timer !== undefined) clearTimeout(stream.timer);
        stream.res.end();
      }
      streams.clear();
    },
  };
}
