/**
 * Typed errors thrown by shadow-sync's adapters (transports, update engine, device agent).
 * The pure core never throws these for service rules: it returns a {@link Rejection} instead.
 */
import type { Rejection } from './core/document.js';

const BRAND = Symbol.for('shadow-sync.ShadowError');

/** Machine-readable code of every {@link ShadowError}. */
export type ShadowErrorCode =
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'REJECTED'
  | 'THROTTLED'
  | 'LIMIT'
  | 'VALIDATION'
  | 'TIMEOUT'
  | 'OPTIONS'
  | 'TRANSPORT'
  | 'JOURNAL_CORRUPT';

/** Context every shadow error may carry. */
export interface ShadowErrorContext {
  thingName?: string;
  shadowName?: string;
  /** The version the failed request expected, for versioned updates. */
  expectedVersion?: number;
  /** The AWS error type (for example `ConflictException`) when the service answered. */
  awsCode?: string;
  /** The AWS message when the service answered. */
  awsMessage?: string;
  /** The HTTP status (or MQTT `rejected` code) when the service answered. */
  statusCode?: number;
  cause?: unknown;
}

/** Base class of every error shadow-sync throws. Use {@link isShadowError} rather than `instanceof`. */
export abstract class ShadowError extends Error {
  abstract override readonly name: string;
  abstract readonly code: ShadowErrorCode;
  // Fields set by a constructor are `declare`d, here and in the subclasses: the constructor's assignments create
  // them (same own properties, same order), and a field declaration would repeat every name in the emitted code
  // of an app's bundle.
  declare readonly thingName: string | undefined;
  declare readonly shadowName: string | undefined;
  declare readonly expectedVersion: number | undefined;
  declare readonly awsCode: string | undefined;
  declare readonly awsMessage: string | undefined;
  declare readonly statusCode: number | undefined;

  constructor(message: string, context: ShadowErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.thingName = context.thingName;
    this.shadowName = context.shadowName;
    this.expectedVersion = context.expectedVersion;
    this.awsCode = context.awsCode;
    this.awsMessage = context.awsMessage;
    this.statusCode = context.statusCode;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** The shadow does not exist (404 `No shadow exists with name: ...`). */
export class ShadowNotFoundError extends ShadowError {
  override readonly name = 'ShadowNotFoundError' as const;
  readonly code = 'NOT_FOUND' as const;
}

/**
 * What a round of the update engine went through before it gave up: carried by the give-up errors
 * (`ShadowConflictError`, `ShadowThrottledError`) so that a caller can tell a lost race from a quota.
 */
export interface RetryTally {
  /** Attempts made (each ran the intents once and sent at most one write, or one read / delete). */
  attempts: number;
  /** Attempts whose versioned write lost to another writer (409). */
  conflicts: number;
  /** Attempts the service throttled (429). */
  throttles: number;
  /** Milliseconds from the round's start to giving up, waits included. */
  elapsedMs: number;
}

/**
 * A versioned update kept losing to other writers until the retry budget ran out (or, thrown by a transport,
 * one 409). `conflicts`, `throttles` and `elapsedMs` say what the round went through.
 */
export class ShadowConflictError extends ShadowError {
  override readonly name = 'ShadowConflictError' as const;
  readonly code = 'CONFLICT' as const;
  /** Attempts made before giving up. */
  declare readonly attempts: number;
  /** Attempts that lost to another writer (409). */
  declare readonly conflicts: number;
  /** Attempts the service throttled (429). */
  declare readonly throttles: number;
  /** Milliseconds spent before giving up (0 for a single rejection). */
  declare readonly elapsedMs: number;
  /** The newest document seen, if any. */
  declare readonly lastDocument: unknown;
  constructor(
    message: string,
    context: ShadowErrorContext & { attempts: number; lastDocument?: unknown } & Partial<
        Omit<RetryTally, 'attempts'>
      >,
  ) {
    super(message, context);
    this.attempts = context.attempts;
    this.conflicts = context.conflicts ?? context.attempts;
    this.throttles = context.throttles ?? 0;
    this.elapsedMs = context.elapsedMs ?? 0;
    this.lastDocument = context.lastDocument;
  }
}

/** The service refused a request for a reason other than not-found, conflict or throttling. */
export class ShadowRejectedError extends ShadowError {
  override readonly name = 'ShadowRejectedError' as const;
  readonly code = 'REJECTED' as const;
}

/**
 * The service throttled the request (429): thrown by a transport for one 429 (with `retryAfterMs` when the
 * service sent `Retry-After`), and by the update engine when a round's time ran out while the service kept
 * throttling it (with what the round went through).
 */
export class ShadowThrottledError extends ShadowError {
  override readonly name = 'ShadowThrottledError' as const;
  readonly code = 'THROTTLED' as const;
  /** Milliseconds the service asked to wait (`Retry-After`), when it said. */
  declare readonly retryAfterMs: number | undefined;
  /** Attempts made before giving up (1 for a single rejection). */
  declare readonly attempts: number;
  /** Attempts that lost to another writer (409). */
  declare readonly conflicts: number;
  /** Attempts the service throttled (429). */
  declare readonly throttles: number;
  /** Milliseconds spent before giving up (0 for a single rejection). */
  declare readonly elapsedMs: number;
  constructor(
    message: string,
    context: ShadowErrorContext & Partial<RetryTally> & { retryAfterMs?: number } = {},
  ) {
    super(message, context);
    this.retryAfterMs = context.retryAfterMs;
    this.attempts = context.attempts ?? 1;
    this.conflicts = context.conflicts ?? 0;
    this.throttles = context.throttles ?? 1;
    this.elapsedMs = context.elapsedMs ?? 0;
  }
}

/** A request would break a service limit (size, depth, name, clientToken); refused before sending. */
export class ShadowLimitError extends ShadowError {
  override readonly name = 'ShadowLimitError' as const;
  readonly code = 'LIMIT' as const;
  /** Which limit: for example `maxStateBytes`, `maxDepth`, `thingName`. */
  declare readonly limit: string;
  constructor(message: string, context: ShadowErrorContext & { limit: string }) {
    super(message, context);
    this.limit = context.limit;
  }
}

/** One problem found while validating a document against a schema. */
export interface ValidationIssue {
  /** Path of the offending value, from the document root. */
  path: (string | number)[];
  message: string;
}

/** A document read or a patch written does not satisfy the shadow's schema. */
export class ShadowValidationError extends ShadowError {
  override readonly name = 'ShadowValidationError' as const;
  readonly code = 'VALIDATION' as const;
  declare readonly issues: readonly ValidationIssue[];
  constructor(message: string, context: ShadowErrorContext & { issues: readonly ValidationIssue[] }) {
    super(message, context);
    this.issues = context.issues;
  }
}

/** No response arrived within the request timeout. */
export class ShadowTimeoutError extends ShadowError {
  override readonly name = 'ShadowTimeoutError' as const;
  readonly code = 'TIMEOUT' as const;
  declare readonly timeoutMs: number;
  constructor(message: string, context: ShadowErrorContext & { timeoutMs: number }) {
    super(message, context);
    this.timeoutMs = context.timeoutMs;
  }
}

/** Options passed to a shadow-sync factory are invalid. */
export class ShadowOptionsError extends ShadowError {
  override readonly name = 'ShadowOptionsError' as const;
  readonly code = 'OPTIONS' as const;
}

/** The transport failed (connection closed, network error) without a service answer. */
export class ShadowTransportError extends ShadowError {
  override readonly name = 'ShadowTransportError' as const;
  readonly code = 'TRANSPORT' as const;
}

/**
 * A file of the local service's durable store (journal or snapshot) is damaged where a crash cannot have torn
 * it: opening it would silently lose acknowledged updates, so the service refuses to start. `file` and `offset`
 * say where; `shadow-sync journal repair <dir>` keeps a copy and drops the damaged bytes.
 */
export class ShadowJournalCorruptionError extends ShadowError {
  override readonly name = 'ShadowJournalCorruptionError' as const;
  readonly code = 'JOURNAL_CORRUPT' as const;
  /** The damaged file. */
  declare readonly file: string;
  /** Byte offset in `file` of the first byte that does not belong to a valid record. */
  declare readonly offset: number;

  constructor(message: string, file: string, offset: number, context: ShadowErrorContext = {}) {
    super(message, context);
    this.file = file;
    this.offset = offset;
  }
}

/** True for any {@link ShadowError}, even one created by another copy of this package. */
export function isShadowError(value: unknown): value is ShadowError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

// Marked free of side effects so that a bundler drops the guards an app does not call.
/* @__NO_SIDE_EFFECTS__ */ function hasCode<C extends ShadowErrorCode>(code: C) {
  return (value: unknown): boolean => isShadowError(value) && value.code === code;
}

/** True for a {@link ShadowNotFoundError} from any copy of this package. */
export const isShadowNotFoundError = hasCode('NOT_FOUND') as (value: unknown) => value is ShadowNotFoundError;
/** True for a {@link ShadowConflictError} from any copy of this package. */
export const isShadowConflictError = hasCode('CONFLICT') as (value: unknown) => value is ShadowConflictError;
/** True for a {@link ShadowThrottledError} from any copy of this package. */
export const isShadowThrottledError = hasCode('THROTTLED') as (
  value: unknown,
) => value is ShadowThrottledError;
/** True for a {@link ShadowJournalCorruptionError}, even one created by another copy of this package. */
export const isShadowJournalCorruptionError = hasCode('JOURNAL_CORRUPT') as (
  value: unknown,
) => value is ShadowJournalCorruptionError;
/** True for a {@link ShadowValidationError} from any copy of this package. */
export const isShadowValidationError = hasCode('VALIDATION') as (
  value: unknown,
) => value is ShadowValidationError;

/**
 * Turns a service rejection into the matching typed error, naming the shadow.
 *
 * @param rejection - the status, message and AWS error type the service answered with
 * @param context - which shadow, and the version the request expected; for a 429, the wait the service asked
 *   for (`retryAfterMs`, also added to the message)
 */
export function errorFromRejection(
  rejection: Rejection,
  context: ShadowErrorContext & { retryAfterMs?: number } = {},
): ShadowError {
  const target = describeTarget(context);
  const full = {
    ...context,
    awsCode: rejection.errorType,
    awsMessage: rejection.message,
    statusCode: rejection.code,
  };
  const text = `${target}: ${rejection.errorType} (${rejection.code}) ${rejection.message}`;
  switch (rejection.code) {
    case 404:
      return new ShadowNotFoundError(text, full);
    case 409:
      return new ShadowConflictError(text, { ...full, attempts: 1 });
    case 429: {
      const wait = context.retryAfterMs;
      return new ShadowThrottledError(wait === undefined ? text : `${text} (retry after ${wait} ms)`, full);
    }
    default:
      return new ShadowRejectedError(text, full);
  }
}

/**
 * The error context naming a shadow: `thingName`, and `shadowName` for a named shadow (no key for a name that is
 * `undefined`). One function for every module that builds errors, so that an app's bundle carries it once.
 *
 * @param target - the shadow
 */
export function targetContext(target: { thingName: string; shadowName?: string | undefined }): {
  thingName: string;
  shadowName?: string;
};
export function targetContext(target: { thingName?: string | undefined; shadowName?: string | undefined }): {
  thingName?: string;
  shadowName?: string;
};
export function targetContext(target: { thingName?: string | undefined; shadowName?: string | undefined }): {
  thingName?: string;
  shadowName?: string;
} {
  const context: { thingName?: string; shadowName?: string } = {};
  if (target.thingName !== undefined) context.thingName = target.thingName;
  if (target.shadowName !== undefined) context.shadowName = target.shadowName;
  return context;
}

/** `shadow 'name' of thing 'thing'` or `classic shadow of thing 'thing'`, for messages. */
export function describeTarget(context: { thingName?: string; shadowName?: string }): string {
  const thing = context.thingName === undefined ? 'unknown thing' : `thing '${context.thingName}'`;
  return context.shadowName === undefined
    ? `classic shadow of ${thing}`
    : `shadow '${context.shadowName}' of ${thing}`;
}
