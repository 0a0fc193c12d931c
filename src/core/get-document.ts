/**
 * The service's answer to a get request (spec 1.1, 3.2), as a pure function.
 */
import { ShadowOptionsError } from '../errors.js';
import { computeDelta } from './delta.js';
import type { GetAcceptedBody, Rejection, ShadowRecord, ShadowTarget } from './document.js';
import { checkTarget, resolveLimits, type ShadowLimits } from './limits.js';

/** What {@link getDocument} needs besides the stored record. */
export interface GetOptions {
  /** The shadow addressed. */
  target: ShadowTarget;
  /** The time the answer is generated, epoch milliseconds (the body's `timestamp` is the response time). */
  now: number;
  /** The request's clientToken, echoed in the answer. */
  clientToken?: string;
  /**
   * Add `metadata.delta` (the desired-side metadata of the delta's leaves). Old guide examples show it;
   * no captured real response has it (spec 1.1), so it is off by default.
   * @defaultValue false
   */
  includeDeltaMetadata?: boolean;
  /**
   * Limits to enforce (names); missing ones take {@link DEFAULT_LIMITS}.
   * @defaultValue DEFAULT_LIMITS
   */
  limits?: Partial<ShadowLimits>;
}

/** The outcome of {@link getDocument}. */
export type GetDocumentResult = { ok: true; body: GetAcceptedBody } | { ok: false; rejection: Rejection };

/**
 * The 404 the service sends for a shadow that does not exist: `No shadow exists with name: '<name>'`, where
 * the name is the shadow name of a named shadow and the thing name for the classic shadow (spec 5.1).
 *
 * @param target - the shadow addressed
 * @param clientToken - echoed when given
 */
export function notFoundRejection(target: ShadowTarget, clientToken?: string): Rejection {
  const rejection: Rejection = {
    code: 404,
    message: `No shadow exists with name: '${target.shadowName ?? target.thingName}'`,
    errorType: 'ResourceNotFoundException',
  };
  if (clientToken !== undefined) rejection.clientToken = clientToken;
  return rejection;
}

/**
 * The full document as GET / `get/accepted` returns it: `state` with `desired`, `reported` and the
 * computed `delta` (each only when non-empty), `metadata` for the stored sections, `version`, the response
 * `timestamp` (epoch seconds) and the clientToken when the request had one. An empty shadow answers
 * `"state": {}, "metadata": {}`.
 *
 * The body shares objects with `prior`; treat it as immutable (serialize it, do not edit it).
 *
 * @param prior - what is stored for the target
 * @param options - target, clock, clientToken, limits and whether to add `metadata.delta`
 * @returns the body, or 400 for a bad name, or 404 `No shadow exists with name: '<name>'` when there is no
 *   live shadow (a tombstone counts as none)
 * @throws {@link ShadowOptionsError} when `options.limits` is invalid or `options.now` is not a finite number
 * @example getDocument(stored, { target: { thingName: 'lamp' }, now: Date.now() }) // { ok: true, body: { state: { desired, reported, delta }, ... } }
 */
export function getDocument(prior: ShadowRecord | undefined, options: GetOptions): GetDocumentResult {
  const { target, now, clientToken } = options;
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new ShadowOptionsError(`getDocument: 'now' must be epoch milliseconds, got ${String(now)}`, target);
  }
  const limits = resolveLimits(options.limits);
  const badName = checkTarget(target, limits);
  if (badName !== undefined) {
    return { ok: false, rejection: clientToken === undefined ? badName : { ...badName, clientToken } };
  }
  if (prior === undefined || 'deleted' in prior) {
    return { ok: false, rejection: notFoundRejection(target, clientToken) };
  }
  const body: GetAcceptedBody = {
    state: { ...prior.state },
    metadata: { ...prior.metadata },
    version: prior.version,
    timestamp: Math.floor(now / 1000),
  };
  const delta = computeDelta(prior.state.desired, prior.state.reported, prior.metadata.desired);
  if (delta !== undefined) {
    body.state.delta = delta.state;
    if (options.includeDeltaMetadata === true) body.metadata.delta = delta.metadata;
  }
  if (clientToken !== undefined) body.clientToken = clientToken;
  return { ok: true, body };
}
