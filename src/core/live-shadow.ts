/**
 * Finding the live shadow a get or delete addresses: the checks both operations make before answering.
 */
import { ShadowOptionsError } from '../errors.js';
import type { Rejection, ShadowRecord, ShadowTarget, StoredShadow } from './document.js';
import { checkTarget, resolveLimits, type ShadowLimits } from './limits.js';

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
 * The live shadow `prior` holds for a get or delete, or the service's rejection: 400 for a bad thing or
 * shadow name, 404 when there is no shadow (a tombstone counts as none). Rejections echo the clientToken.
 *
 * @param prior - what is stored for the target
 * @param options - target, clock (epoch milliseconds), clientToken and limits of the request
 * @param operation - the caller's name, for the error message
 * @throws {@link ShadowOptionsError} when `options.limits` is invalid or `options.now` is not a finite number
 */
export function findLiveShadow(
  prior: ShadowRecord | undefined,
  options: { target: ShadowTarget; now: number; clientToken?: string; limits?: Partial<ShadowLimits> },
  operation: string,
): { ok: true; shadow: StoredShadow } | { ok: false; rejection: Rejection } {
  const { target, now, clientToken } = options;
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new ShadowOptionsError(
      `${operation}: 'now' must be epoch milliseconds, got ${String(now)}`,
      target,
    );
  }
  const badName = checkTarget(target, resolveLimits(options.limits));
  if (badName !== undefined) {
    return { ok: false, rejection: clientToken === undefined ? badName : { ...badName, clientToken } };
  }
  if (prior === undefined || 'deleted' in prior) {
    return { ok: false, rejection: notFoundRejection(target, clientToken) };
  }
  return { ok: true, shadow: prior };
}
