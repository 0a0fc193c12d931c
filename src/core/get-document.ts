/**
 * The service's answer to a get request (spec 1.1, 3.2), as a pure function.
 */
import { computeDelta } from './delta.js';
import type { GetAcceptedBody, Rejection, ShadowRecord, ShadowTarget } from './document.js';
import type { ShadowLimits } from './limits.js';
import { findLiveShadow } from './live-shadow.js';

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
  const found = findLiveShadow(prior, options, 'getDocument');
  if (!found.ok) return found;
  const { now, clientToken } = options;
  const body: GetAcceptedBody = {
    state: { ...found.shadow.state },
    metadata: { ...found.shadow.metadata },
    version: found.shadow.version,
    timestamp: Math.floor(now / 1000),
  };
  const delta = computeDelta(
    found.shadow.state.desired,
    found.shadow.state.reported,
    found.shadow.metadata.desired,
  );
  if (delta !== undefined) {
    body.state.delta = delta.state;
    if (options.includeDeltaMetadata === true) body.metadata.delta = delta.metadata;
  }
  if (clientToken !== undefined) body.clientToken = clientToken;
  return { ok: true, body };
}
