/**
 * The HTTP transport: GetThingShadow / UpdateThingShadow / DeleteThingShadow through an AWS SDK v3
 * `IoTDataPlaneClient`, against AWS IoT Core or the local shadow service.
 */
import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  type IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import type { ShadowErrorType, ShadowTarget, UpdateRequest } from '../core/document.js';
import { STATUS_BY_ERROR_TYPE } from '../core/error-types.js';
import {
  describeTarget,
  errorFromRejection,
  isShadowError,
  type ShadowError,
  ShadowOptionsError,
  ShadowRejectedError,
  ShadowTransportError,
  targetContext,
} from '../errors.js';
import { decodeResponseBody, type ResponseBodies } from './response-decoder.js';
import type { ShadowDocument, ShadowTransport, TransportCallOptions } from './transport.js';

/** Options of {@link awsTransport}. */
export interface AwsTransportOptions {
  /**
   * Check every response body against the service's documented shapes (the core's message schemas)
   * and throw `ShadowValidationError` when it does not match.
   * @defaultValue true
   */
  validateResponses?: boolean;
  /**
   * Accept an `IoTDataPlaneClient` that retries on its own (`maxAttempts` above 1, the SDK's default is 3). Off by
   * default: the update engine already retries conflicts, throttling and 5xx with full jitter under its own
   * per-thing limiter, and the SDK's retries underneath would multiply its attempts, retry with the SDK's
   * backoff and get past the limiter. Such a client is refused at the first request with a
   * `ShadowOptionsError` telling how to create it (`maxAttempts: 1`).
   * @defaultValue false
   */
  allowSdkRetries?: boolean;
}

/** Defaults of {@link AwsTransportOptions}. */
export const AWS_TRANSPORT_DEFAULTS: Readonly<Required<AwsTransportOptions>> = Object.freeze({
  validateResponses: true,
  allowSdkRetries: false,
});

/**
 * Validates {@link AwsTransportOptions} and fills in defaults.
 *
 * @throws ShadowOptionsError naming an unknown key or a value of the wrong type
 */
export function resolveAwsTransportOptions(options: AwsTransportOptions = {}): Required<AwsTransportOptions> {
  const known = Object.keys(AWS_TRANSPORT_DEFAULTS) as (keyof AwsTransportOptions)[];
  for (const key of Object.keys(options)) {
    if (!(known as string[]).includes(key)) {
      throw new ShadowOptionsError(`awsTransport: unknown option '${key}' (known: ${known.join(', ')})`);
    }
  }
  // Every option is a boolean.
  const resolved = { ...AWS_TRANSPORT_DEFAULTS };
  for (const key of known) {
    const value = options[key] ?? AWS_TRANSPORT_DEFAULTS[key];
    if (typeof value !== 'boolean') {
      throw new ShadowOptionsError(`awsTransport: ${key} must be a boolean, got ${String(value)}`);
    }
    resolved[key] = value;
  }
  return resolved;
}

/**
 * How many attempts the client's own retry strategy makes per request, or `undefined` when it cannot tell
 * (a client that is not an SDK v3 client, such as a test double). The strategy's provider wins over
 * `maxAttempts`: a custom `retryStrategy` carries its own.
 */
export async function sdkMaxAttempts(client: unknown): Promise<number | undefined> {
  type Provider = (() => unknown) | undefined;
  const config = (client as { config?: { maxAttempts?: Provider; retryStrategy?: Provider } } | undefined)
    ?.config;
  try {
    const strategy = (await config?.retryStrategy?.()) as { maxAttemptsProvider?: Provider } | undefined;
    const attempts = await (strategy?.maxAttemptsProvider ?? config?.maxAttempts)?.();
    return typeof attempts === 'number' ? attempts : undefined;
  } catch {
    // Not shaped like an SDK v3 client's configuration.
    return undefined;
  }
}

interface SdkErrorLike {
  name?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  /** The raw HTTP response the SDK attaches (non-enumerable) to service errors. */
  $response?: { headers?: Record<string, unknown> };
}

const DECIMAL = /^\d+(\.\d+)?$/;

/**
 * The wait a throttled answer asks for, in milliseconds: `x-amz-retry-after` (milliseconds) or `Retry-After`
 * (seconds, or an HTTP date), as the AWS SDKs read them. AWS IoT does not document either header for the
 * shadow data plane; when one is present the update engine pauses the thing until then.
 *
 * @param headers - the response headers (any case)
 * @param now - the current epoch millisecond, for an HTTP date
 * @returns the wait, or `undefined` when there is no (valid) header
 */
export function retryAfterMs(
  headers: Record<string, unknown> | undefined,
  now: number = Date.now(),
): number | undefined {
  if (headers === undefined) return undefined;
  let seconds: string | undefined;
  let milliseconds: string | undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') continue;
    const lower = name.toLowerCase();
    if (lower === 'x-amz-retry-after') milliseconds = value;
    else if (lower === 'retry-after') seconds = value;
  }
  if (milliseconds !== undefined && DECIMAL.test(milliseconds.trim())) return Number(milliseconds);
  if (seconds === undefined) return undefined;
  const trimmed = seconds.trim();
  if (DECIMAL.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Maps an error thrown by the AWS SDK to a typed shadow error. Modelled exceptions are recognised by
 * `name` (the SDK sets it from `x-amzn-errortype`); any other error that carries an HTTP status becomes a
 * `ShadowRejectedError` with that status (so 5xx stay retryable); an error without a status (DNS, reset
 * connection, abort) becomes a `ShadowTransportError`.
 *
 * @param error - what `client.send` rejected with
 * @param target - the shadow the request was for
 * @param expectedVersion - the version a versioned update expected
 */
export function mapAwsError(error: unknown, target: ShadowTarget, expectedVersion?: number): ShadowError {
  const sdk = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorLike;
  const name = typeof sdk.name === 'string' ? sdk.name : 'Error';
  const message = typeof sdk.message === 'string' ? sdk.message : String(error);
  const context = {
    ...targetContext(target),
    ...(expectedVersion === undefined ? {} : { expectedVersion }),
    cause: error,
  };
  const httpStatus = sdk.$metadata?.httpStatusCode;
  if (Object.hasOwn(STATUS_BY_ERROR_TYPE, name)) {
    const errorType = name as ShadowErrorType;
    const code = STATUS_BY_ERROR_TYPE[errorType];
    const wait = code === 429 ? retryAfterMs(sdk.$response?.headers) : undefined;
    return errorFromRejection(
      { code, message, errorType },
      wait === undefined ? context : { ...context, retryAfterMs: wait },
    );
  }
  if (typeof httpStatus === 'number') {
    return new ShadowRejectedError(`${describeTarget(context)}: ${name} (${httpStatus}) ${message}`, {
      ...context,
      awsCode: name,
      awsMessage: message,
      statusCode: httpStatus,
    });
  }
  return new ShadowTransportError(
    `${describeTarget(context)}: request failed without an answer: ${message}`,
    context,
  );
}

const encoder = new TextEncoder();

/**
 * Creates a transport over an AWS SDK v3 `IoTDataPlaneClient` (HTTP data plane). It never retries (the update
 * engine does, conflict-aware) and refuses a client that retries on its own unless `allowSdkRetries` is set;
 * it never closes the client it wraps.
 *
 * @param client - a configured `IoTDataPlaneClient` (endpoint, region, credentials, `maxAttempts: 1`)
 * @param options - see {@link AwsTransportOptions}
 * @throws ShadowOptionsError for unknown or invalid options; from the first request, for a client that retries
 *   on its own
 * @example
 * ```ts
 * const transport = awsTransport(new IoTDataPlaneClient({ endpoint, region: 'us-east-1', maxAttempts: 1 }));
 * const shadows = createShadowClient({ transport });
 * ```
 */
export function awsTransport(client: IoTDataPlaneClient, options: AwsTransportOptions = {}): ShadowTransport {
  const { validateResponses, allowSdkRetries } = resolveAwsTransportOptions(options);
  // Asked once, before the first request: the SDK resolves its configuration asynchronously.
  let checked: Promise<void> | undefined;
  const checkClient = () =>
    (checked ??= sdkMaxAttempts(client).then((attempts) => {
      if (allowSdkRetries || attempts === undefined || attempts <= 1) return;
      throw new ShadowOptionsError(
        `awsTransport: the IoTDataPlaneClient retries on its own (${attempts} attempts per request) under shadow-sync's retries: create it with maxAttempts: 1, or pass { allowSdkRetries: true }`,
      );
    }));
  const names = targetContext;
  /** Sends one command (made once the client is checked) and decodes its answer; SDK errors become typed shadow errors. */
  const send = async <K extends keyof ResponseBodies>(
    kind: K,
    command: () => GetThingShadowCommand | UpdateThingShadowCommand | DeleteThingShadowCommand,
    target: ShadowTarget,
    call: TransportCallOptions | undefined,
    expectedVersion?: number,
  ): Promise<ResponseBodies[K]> => {
    await checkClient();
    let payload: Uint8Array | undefined;
    try {
      ({ payload } = await client.send(
        command() as UpdateThingShadowCommand,
        call?.signal === undefined ? undefined : { abortSignal: call.signal },
      ));
    } catch (error) {
      // The contract (and the MQTT transport) rejects an aborted call with the signal's reason; the SDK throws
      // its own AbortError, which carries no status and would otherwise read as a lost connection.
      call?.signal?.throwIfAborted();
      throw mapAwsError(error, target, expectedVersion);
    }
    return decodeResponseBody(kind, payload, target, validateResponses);
  };

  return {
    async get(target, call) {
      try {
        return (await send(
          'get',
          () => new GetThingShadowCommand(names(target)),
          target,
          call,
        )) as ShadowDocument;
      } catch (error) {
        // Only a mapped SDK error can be a NOT_FOUND: a body that fails to decode is a transport or
        // validation error.
        if (isShadowError(error) && error.code === 'NOT_FOUND') return undefined;
        throw error;
      }
    },

    async update(target, request: UpdateRequest, call) {
      const command = () =>
        new UpdateThingShadowCommand({ ...names(target), payload: encoder.encode(JSON.stringify(request)) });
      return send('update', command, target, call, request.version);
    },

    async delete(target, call) {
      return send('delete', () => new DeleteThingShadowCommand(names(target)), target, call);
    },
  };
}
