/**
 * The service's handling of a delete request (spec 1.7, 4), as a pure function.
 */
import type {
  DeleteAcceptedBody,
  Rejection,
  ShadowRecord,
  ShadowTarget,
  ShadowTombstone,
} from './document.js';
import type { ShadowLimits } from './limits.js';
import { findLiveShadow } from './live-shadow.js';

/** What {@link applyDelete} needs besides the stored record. */
export interface DeleteOptions {
  /** The shadow addressed. */
  target: ShadowTarget;
  /** The time the service received the request, epoch milliseconds. */
  now: number;
  /** The request's clientToken (read with {@link readClientToken}), echoed in the answer. */
  clientToken?: string;
  /**
   * Limits to enforce (names); missing ones take {@link DEFAULT_LIMITS}.
   * @defaultValue DEFAULT_LIMITS
   */
  limits?: Partial<ShadowLimits>;
}

/** The outcome of {@link applyDelete}. */
export type ApplyDeleteResult =
  | {
      ok: true;
      /** What to store instead of the shadow: remembers the version numbering for the retention window. */
      tombstone: ShadowTombstone;
      /** Body of `delete/accepted` and of the HTTP 200 response. */
      accepted: DeleteAcceptedBody;
    }
  | { ok: false; rejection: Rejection };

/**
 * Deletes a shadow: the accepted body reports the deleted document's version V (spec 1.7; moto reports
 * V + 1, AWS's own Greengrass sync code says V), and the tombstone carries V + 1 so that a shadow re-created
 * within `deletedVersionRetentionMs` gets version V + 2.
 *
 * @param prior - what is stored for the target
 * @param options - target, clock, clientToken and limits
 * @returns the tombstone and the accepted body, or 400 for a bad name, or 404
 *   `No shadow exists with name: '<shadowName or thingName>'` when there is no live shadow
 * @throws {@link ShadowOptionsError} when `options.limits` is invalid or `options.now` is not a finite number
 * @example applyDelete(shadowAtVersion4, { target: { thingName: 'lamp' }, now: 1591057529000 }) // accepted { version: 4, timestamp: 1591057529 }
 */
export function applyDelete(prior: ShadowRecord | undefined, options: DeleteOptions): ApplyDeleteResult {
  const found = findLiveShadow(prior, options, 'applyDelete');
  if (!found.ok) return found;
  const { now, clientToken } = options;
  const { version } = found.shadow;
  const accepted: DeleteAcceptedBody = { version, timestamp: Math.floor(now / 1000) };
  if (clientToken !== undefined) accepted.clientToken = clientToken;
  return { ok: true, tombstone: { deleted: true, version: version + 1, deletedAt: now }, accepted };
}
