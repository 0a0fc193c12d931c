/**
 * Moto-style unit tests for code that uses the AWS SDK: an SDK v3 `requestHandler` that answers
 * IoTDataPlaneClient requests in the same process from a shadow engine, without sockets or ports:
 *
 * ```ts
 * const engine = createShadowEngine();
 * const client = new IoTDataPlaneClient({ region: 'us-east-1', credentials, requestHandler: inProcessRequestHandler(engine) });
 * ```
 *
 * The SDK still builds, signs and parses everything as it does over the network; only the transfer is
 * skipped. Requests go through the same router as the HTTP front (`data-plane-router.ts`), so answers and
 * errors (`ConflictException`, `ResourceNotFoundException`, ... with AWS's messages) are the ones the local
 * service gives over HTTP. It is typed structurally (no `@smithy/*` import), so it adds no dependency.
 */
import { Readable } from 'node:stream';
import { ShadowOptionsError } from '../errors.js';
import {
  type BrokerPublish,
  type DataPlaneAnswer,
  DataPlaneError,
  errorAnswer,
  routeDataPlaneRequest,
} from './data-plane-router.js';
import type { ShadowEngineApi } from './engine-api.js';

/** The parts of an SDK v3 `HttpRequest` the handler reads. */
export interface InProcessHttpRequest {
  method: string;
  path: string;
  query?: Record<string, string | (string | null)[] | null | undefined>;
  headers?: Record<string, string>;
  body?: unknown;
}

/** The SDK v3 `HttpResponse` shape the handler produces (the body is a Node.js stream, as the SDK expects). */
export interface InProcessHttpResponse {
  statusCode: number;
  reason?: string;
  headers: Record<string, string>;
  body: Readable;
}

/** An SDK v3 request handler (`requestHandler` option of every client) answering from a shadow engine. */
export interface InProcessRequestHandler {
  readonly metadata: { handlerProtocol: string };
  handle(
    request: InProcessHttpRequest,
    options?: { abortSignal?: { aborted: boolean } | undefined },
  ): Promise<{ response: InProcessHttpResponse }>;
  updateHttpClientConfig(key: never, value: never): void;
  httpHandlerConfigs(): Record<string, never>;
  destroy(): void;
}

/** Options of {@link inProcessRequestHandler}. */
export interface InProcessRequestHandlerOptions {
  /**
   * Where `Publish` sends topics other than shadow request topics (as the HTTP front's `publish`).
   * @defaultValue undefined (such messages are accepted and dropped)
   */
  publish?: BrokerPublish;
}

/** Defaults of {@link InProcessRequestHandlerOptions}. */
export const IN_PROCESS_REQUEST_HANDLER_DEFAULTS: Readonly<{ publish: BrokerPublish | undefined }> =
  Object.freeze({
    publish: undefined,
  });

/**
 * Validates {@link InProcessRequestHandlerOptions}.
 *
 * @throws ShadowOptionsError naming an unknown key or a value of the wrong type
 */
export function resolveInProcessRequestHandlerOptions(
  options: InProcessRequestHandlerOptions = {},
): InProcessRequestHandlerOptions {
  for (const key of Object.keys(options))
    if (!(key in IN_PROCESS_REQUEST_HANDLER_DEFAULTS))
      throw new ShadowOptionsError(`inProcessRequestHandler: unknown option '${key}' (known: publish)`);
  if (options.publish !== undefined && typeof options.publish !== 'function')
    throw new ShadowOptionsError('inProcessRequestHandler: publish must be a function');
  return options.publish === undefined ? {} : { publish: options.publish };
}

async function bodyBytes(body: unknown): Promise<Uint8Array> {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return body;
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    const chunks: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Uint8Array | string>)
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
    return Buffer.concat(chunks);
  }
  throw new DataPlaneError(400, 'InvalidRequestException', 'The request body is not bytes, text or a stream');
}

function queryOf(query: InProcessHttpRequest['query']): URLSearchParams {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) if (item != null) params.append(key, item);
  }
  return params;
}

/**
 * Creates an SDK v3 request handler answering from `engine` in the same process.
 *
 * @param engine - the engine to answer from: `createShadowEngine()`, or a running service's `service.engine`
 *   (then its MQTT subscribers see the updates too)
 * @param options - see {@link InProcessRequestHandlerOptions}
 * @throws ShadowOptionsError for unknown or invalid options
 * @example
 * ```ts
 * const engine = createShadowEngine();
 * const client = new IoTDataPlaneClient({
 *   region: 'us-east-1',
 *   credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
 *   requestHandler: inProcessRequestHandler(engine),
 * });
 * ```
 */
export function inProcessRequestHandler(
  engine: ShadowEngineApi,
  options: InProcessRequestHandlerOptions = {},
): InProcessRequestHandler {
  const { publish } = resolveInProcessRequestHandlerOptions(options);
  return {
    metadata: { handlerProtocol: 'http/1.1' },
    async handle(request, handlerOptions) {
      if (handlerOptions?.abortSignal?.aborted === true) {
        const aborted = new Error('Request aborted');
        aborted.name = 'AbortError';
        throw aborted;
      }
      let answer: DataPlaneAnswer;
      try {
        const body = await bodyBytes(request.body);
        answer = await routeDataPlaneRequest(
          engine,
          { method: request.method.toUpperCase(), path: request.path, query: queryOf(request.query), body },
          publish,
        );
      } catch (error) {
        // As the HTTP front: the API layer's refusals as themselves, anything else as AWS's 500.
        answer =
          error instanceof DataPlaneError
            ? errorAnswer(error.status, error.errorType, error.message, error.headers)
            : errorAnswer(500, 'InternalFailureException', 'Internal service failure');
      }
      const bytes = Buffer.from(answer.body, 'utf8');
      return {
        response: {
          statusCode: answer.status,
          headers: { ...answer.headers, 'content-length': String(bytes.length) },
          body: Readable.from(bytes.length === 0 ? [] : [bytes]),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
    destroy() {},
  };
}
