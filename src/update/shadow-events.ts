/**
 * What the update engine reports while it works: one event stream for metrics and tracing, and a
 * pluggable logger. Both are silent by default; a throwing listener or logger never breaks an update.
 */
import type { ShadowTarget } from '../core/document.js';
import type { BaseReason, BaseSource } from './base-chooser.js';

/** The operation a request performed. */
export type ShadowRequestOperation = 'get' | 'update' | 'delete';

/** Why the engine waits before another attempt. */
export type RetryReason = 'conflict' | 'throttled' | 'server-error';

/** Every event the engine emits; `target` names the shadow. */
export type ShadowEvent =
  | {
      /** A request is about to be sent (after the limiter let it through). */
      type: 'attempt';
      target: ShadowTarget;
      operation: ShadowRequestOperation;
      /** The round's attempt this request belongs to (1 for the first; a read and the write it led to share it). */
      attempt: number;
      /** The version a versioned update expects. */
      expectedVersion?: number;
    }
  | {
      /**
       * The base document an attempt of a versioned round writes on: a `remembered` one (this client's own
       * last answer), one the transport `heard` (e.g. `update/documents`), or a fresh `read`; `reason` says why
       * (see `useKnownDocuments`).
       */
      type: 'base';
      target: ShadowTarget;
      attempt: number;
      source: BaseSource;
      reason: BaseReason;
    }
  | {
      /** A versioned update lost (409); the engine will re-read and re-run the intents. */
      type: 'conflict';
      target: ShadowTarget;
      attempt: number;
      expectedVersion: number;
    }
  | {
      /** The engine waits `delayMs` (full jitter) before the next attempt. */
      type: 'retry';
      target: ShadowTarget;
      attempt: number;
      delayMs: number;
      reason: RetryReason;
    }
  | {
      /** The intents changed nothing, so no write was sent. */
      type: 'skipped';
      target: ShadowTarget;
      /** The version the intents ran against (undefined when the shadow does not exist). */
      version: number | undefined;
      /** How many calls the skipped round held. */
      calls: number;
    }
  | {
      /**
       * A request was delayed: `source: 'service'` when the service answered 429 (then `ratePerSecond` is the
       * thing's rate after the answer, cut unless an earlier 429 already cut it, and `retryAfterMs` what the
       * service asked for, if anything), `'limiter'` when the client's own per-thing limiter held it back
       * for `waitMs`.
       */
      type: 'throttled';
      target: ShadowTarget;
      source: 'service' | 'limiter';
      waitMs?: number;
      ratePerSecond?: number;
      retryAfterMs?: number;
    }
  | {
      /** Several `update`/`merge` calls were combined into one round. */
      type: 'coalesced';
      target: ShadowTarget;
      calls: number;
    }
  | {
      /** One request finished (successfully or not) after `ms` milliseconds. */
      type: 'latency';
      target: ShadowTarget;
      operation: ShadowRequestOperation;
      ms: number;
      ok: boolean;
    };

/** A logger the engine writes to; any method may be omitted. Compatible with `console` and pino-like loggers. */
export interface ShadowLogger {
  debug?(message: string, data?: Record<string, unknown>): void;
  info?(message: string, data?: Record<string, unknown>): void;
  warn?(message: string, data?: Record<string, unknown>): void;
  error?(message: string, data?: Record<string, unknown>): void;
}

/** The logger used when none is given: writes nothing. */
export const SILENT_LOGGER: ShadowLogger = Object.freeze({});

/** Delivers events and log lines, shielding the engine from listeners that throw. */
export interface EventSink {
  emit(event: ShadowEvent): void;
  log(level: keyof ShadowLogger, message: string, data?: Record<string, unknown>): void;
}

/**
 * Creates an {@link EventSink} over an optional listener and logger.
 *
 * @param onEvent - receives every {@link ShadowEvent}
 * @param logger - receives log lines
 */
export function createEventSink(
  onEvent: ((event: ShadowEvent) => void) | undefined,
  logger: ShadowLogger,
): EventSink {
  return {
    emit(event) {
      if (onEvent === undefined) return;
      try {
        onEvent(event);
      } catch {
        // A metrics hook must never turn a successful update into a failure.
      }
    },
    log(level, message, data) {
      const write = logger[level];
      if (write === undefined) return;
      try {
        write.call(logger, message, data);
      } catch {
        // Same reasoning as above: logging is best effort.
      }
    },
  };
}
