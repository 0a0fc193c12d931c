/**
 * An edit made on the console page, applied as a versioned update through the same conflict-resolving engine
 * users get (`createShadowClient`), so a stale edit is resolved (409, re-read, re-applied) and never silently
 * overwrites a newer document.
 *
 * The page sends an AWS update request: the change it wants (the difference between the document it showed and the
 * edited one) and the `version` it showed. The request is checked with the service's own rules first, so bad input
 * gets the same status, error type and text as the HTTP API. The first attempt names the page's version; if the
 * shadow moved on since, the service answers 409 and the engine re-reads and re-applies the change.
 */
import { decodeRequestPayload } from '../../core/decode-payload.js';
import type { Rejection, ShadowTarget, UpdateState } from '../../core/document.js';
import { validateUpdateRequest } from '../../core/validate-request.js';
import { isShadowError } from '../../errors.js';
import type { KnownState, ShadowTransport } from '../../transports/transport.js';
import { createShadowClient } from '../../update/shadow-client.js';
import type { ShadowEvent } from '../../update/shadow-events.js';
import type { ShadowEngine } from '../shadow-engine.js';

/** What the console tells the page about the engine's work on an edit (a subset of {@link ShadowEvent}). */
export interface ConsoleEditEvent {
  type: 'attempt' | 'conflict' | 'retry' | 'skipped' | 'throttled';
  attempt?: number;
  expectedVersion?: number;
  delayMs?: number;
  reason?: string;
  operation?: string;
}

/** The answer to the page: HTTP status and JSON body. */
export interface ConsoleEditOutcome {
  status: number;
  /**
   * On success `{ version, attempts, skipped, events }`; on failure AWS's error body `{ __type, message }` plus
   * `events`.
   */
  body: Record<string, unknown>;
}

function failure(rejection: Pick<Rejection, 'code' | 'errorType' | 'message'>, events: ConsoleEditEvent[]) {
  return {
    status: rejection.code,
    body: { __type: rejection.errorType, message: rejection.message, events },
  };
}

function toEditEvent(event: ShadowEvent): ConsoleEditEvent | undefined {
  switch (event.type) {
    case 'attempt':
      return {
        type: 'attempt',
        attempt: event.attempt,
        operation: event.operation,
        ...(event.expectedVersion === undefined ? {} : { expectedVersion: event.expectedVersion }),
      };
    case 'conflict':
      return { type: 'conflict', attempt: event.attempt, expectedVersion: event.expectedVersion };
    case 'retry':
      return {
        type: 'retry',
        attempt: event.attempt,
        delayMs: Math.round(event.delayMs),
        reason: event.reason,
      };
    case 'skipped':
      return { type: 'skipped' };
    case 'throttled':
      return { type: 'throttled', reason: event.source };
    default:
      return undefined;
  }
}

/**
 * Applies one edit from the page.
 *
 * @param engine - the service's engine (read access for the document the page showed, limits)
 * @param transport - the in-process transport into the service
 * @param target - the shadow edited
 * @param payload - the raw update request the page sent
 * @param onEvent - receives the engine's attempts, conflicts and retries as they happen
 */
export async function applyConsoleEdit(
  engine: ShadowEngine,
  transport: ShadowTransport,
  target: ShadowTarget,
  payload: Uint8Array,
  onEvent: (event: ConsoleEditEvent) => void,
): Promise<ConsoleEditOutcome> {
  const events: ConsoleEditEvent[] = [];
  const decoded = decodeRequestPayload(payload);
  if (!decoded.ok) return failure(decoded.rejection, events);
  const validated = validateUpdateRequest(decoded.value, engine.limits);
  if (!validated.ok) return failure(validated.rejection, events);
  const { state, version } = validated.request;
  const change: UpdateState = state === null ? { desired: null, reported: null } : state;

  let offered = false;
  const edited: ShadowTransport = {
    get: (t, o) => transport.get(t, o),
    update: (t, r, o) => transport.update(t, r, o),
    delete: (t, o) => transport.delete(t, o),
    // The first round is planned on the document the page showed, named by its version: if the shadow has moved
    // on, that write gets 409 and the engine resolves the conflict. The stored content stands in for the page's
    // (only the version decides whether the write is accepted).
    known(t): KnownState | undefined {
      if (offered || version === undefined) return undefined;
      offered = true;
      const record = engine.read(t);
      if (record === undefined || 'deleted' in record) return undefined;
      return {
        exists: true,
        document: structuredClone({ state: record.state, metadata: record.metadata, version }),
      };
    },
  };
  const client = createShadowClient({
    transport: edited,
    limits: engine.limits,
    onEvent(event) {
      const edit = toEditEvent(event);
      if (edit === undefined) return;
      events.push(edit);
      onEvent(edit);
    },
  });
  try {
    const handle =
      target.shadowName === undefined
        ? client.shadow(target.thingName)
        : client.shadow(target.thingName, target.shadowName);
    const result =
      version === undefined
        ? await handle.merge(structuredClone(change))
        : await handle.update(() => structuredClone(change));
    return {
      status: 200,
      body: { version: result.version, attempts: result.attempts, skipped: result.skipped, events },
    };
  } catch (error) {
    if (isShadowError(error) && error.statusCode !== undefined && error.awsCode !== undefined)
      return failure(
        {
          code: error.statusCode,
          errorType: error.awsCode as Rejection['errorType'],
          message: error.awsMessage ?? '',
        },
        events,
      );
    return failure(
      { code: 500, errorType: 'InternalFailureException', message: 'Internal service failure' },
      events,
    );
  }
}
