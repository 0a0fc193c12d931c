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
  type ShadowError,
  ShadowOptionsError,
  ShadowRejectedError,
  ShadowThrottledError,
  ShadowTransportError,
  targetContext,
} from '../errors.js';
import { decodeResponseBody } from './response-decoder.js';
import type { ShadowDocument, ShadowTransport, TransportCallOptions } from './transport.js';

/** Options of {@link awsTransport}. */
export interface AwsTransportOptions {
  /**
   * Check every response body against the service's documented shapes (the core's message schemas)
   * and throw `ShadowValidationError` when it does not match.
   * @defaultValue true
   */
  validateResponses?: boolean;
}

/** Defaults of {@link AwsTransportOptions}. */
export const AWS_TRANSPORT_DEFAULTS: Readonly<Required<AwsTransportOptions>> = Object.freeze({
  validateResponses: true,
});

/**
 * Validates {@link AwsTransportOptions} and fills in defaults.
 *
 * @throws ShadowOptionsError naming an unknown key or a value of the wrong type
 */
export function resolveAwsTransportOptions(options: AwsTransportOptions = {}): Required<AwsTransportOptions> {
  for (const key of Object.keys(options)) {
    if (!(key in AWS_TRANSPORT_DEFAULTS)) {
      throw new ShadowOptionsError(`awsTransport: unknown option '${key}' (known: validateResponses)`);
    }
  }
  const validateResponses = options.validateResponses ?? AWS_TRANSPORT_DEFAULTS.validateResponses;
  if (typeof validateResponses !== 'boolean') {
    throw new ShadowOptionsError(
      `awsTransport: validateResponses must be a boolean, got ${String(validateResponses)}`,
    );
  }
  return { validateResponses };
}

interface SdkErrorLike {
  name?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  /** The raw HTTP response the SDK attaches (non-enumerable) to service errors. */
  $response?: { headers?: Record<string, unknown> };
}

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
  if (milliseconds !== undefined && /^\d+(\.\d+)?$/.test(milliseconds.trim())) return Number(milliseconds);
  if (seconds === undefined) return undefined;
  const trimmed = seconds.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
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
    const mapped = errorFromRejection({ code: STATUS_BY_ERROR_TYPE[errorType], message, errorType }, context);
    const wait = mapped.code === 'THROTTLED' ? retryAfterMs(sdk.$response?.headers) : undefined;
    if (wait === undefined) return mapped;
    return new ShadowThrottledError(`${mapped.message} (retry after ${wait} ms)`, {
      ...context,
      awsCode: errorType,
      awsMessage: message,
      statusCode: 429,
      retryAfterMs: wait,
    });
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
 * Creates a transport over an AWS SDK v3 `IoTDataPlaneClient` (HTTP data plane). It never retries (the
 * client's own retry strategy still applies; the update engine adds conflict-aware retries on top) and
 * never closes the client it wraps.
 *
 * @param client - a configured `IoTDataPlaneClient` (endpoint, region, credentials)
 * @param options - see {@link AwsTransportOptions}
 * @throws ShadowOptionsError for unknown or invalid options
 * @example
 * ```ts
 * const transport = awsTransport(new IoTDataPlaneClient({ endpoint, region: 'us-east-1' }));
 * const shadows = createShadowClient({ transport });
 * ```
 */
export function awsTransport(client: IoTDataPlaneClient, options: AwsTransportOptions = {}): ShadowTransport {
  const { validateResponses } = resolveAwsTransportOptions(options);
  const sendOptions = (call?: TransportCallOptions) =>
    call?.signal === undefined ? undefined : { abortSignal: call.signal };
  // The contract (and the MQTT transport) rejects an aborted call with the signal's reason; the SDK throws
  // its own AbortError, which carries no status and would otherwise read as a lost connection.
  const throwIfAborted = (call?: TransportCallOptions) => call?.signal?.throwIfAborted();
  const names = targetContext;

  return {
    async get(target, call) {
      let payload: Uint8Array | undefined;
      try {
        ({ payload } = await client.send(new GetThingShadowCommand(names(target)), sendOptions(call)));
      } catch (error) {
        throwIfAborted(call);
        const mapped = mapAwsError(error, target);
        if (mapped.code === 'NOT_FOUND') return undefined;
        throw mapped;
      }
      return decodeResponseBody('get', payload, target, validateResponses) as ShadowDocument;
    },

    async update(target, request: UpdateRequest, call) {
      let payload: Uint8Array | undefined;
      try {
        ({ payload } = await client.send(
          new UpdateThingShadowCommand({
            ...names(target),
            payload: encoder.encode(JSON.stringify(request)),
          }),
          sendOptions(call),
        ));
      } catch (error) {
        throwIfAborted(call);
        throw mapAwsError(error, target, request.version);
      }
      return decodeResponseBody('update', payload, target, validateResponses);
    },

    async delete(target, call) {
      let payload: Uint8Array | undefined;
      try {
        ({ payload } = await client.send(new DeleteThingShadowCommand(names(target)), sendOptions(call)));
      } catch (error) {
        throwIfAborted(call);
        throw mapAwsError(error, target);
      }
      return decodeResponseBody('delete', payload, target, validateResponses);
    },
  };
}
