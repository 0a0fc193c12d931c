/**
 * The service's limits and quotas (spec section 6), with AWS's defaults. Every value is configurable
 * because AWS raises some on request (state size up to 30 KB) and sources disagree on others (depth).
 */

/** Limits the Device Shadow service enforces. */
export interface ShadowLimits {
  /**
   * Maximum bytes of the resulting `desired` + `reported` state, each section measured as compact UTF-8 JSON.
   * @defaultValue 8192
   */
  maxStateBytes: number;
  /**
   * Maximum nesting depth of `desired` / `reported`, counting the section object as level 1
   * (AWS's error text says "maximum is 6"; see spec 6 for the conflict between sources).
   * @defaultValue 6
   */
  maxDepth: number;
  /**
   * Maximum bytes of a `clientToken`.
   * @defaultValue 64
   */
  maxClientTokenBytes: number;
  /**
   * Maximum length of a thing name (pattern `[a-zA-Z0-9:_-]+`).
   * @defaultValue 128
   */
  maxThingNameLength: number;
  /**
   * Maximum length of a shadow name (pattern `[$a-zA-Z0-9:_-]+`).
   * @defaultValue 64
   */
  maxShadowNameLength: number;
  /**
   * How long a deleted shadow's version is remembered, in milliseconds; a shadow re-created within
   * this window continues the numbering (spec section 4).
   * @defaultValue 172800000 (48 hours)
   */
  deletedVersionRetentionMs: number;
  /**
   * Requests per second accepted per thing.
   * @defaultValue 20
   */
  requestsPerSecondPerThing: number;
  /**
   * Requests in flight (received, not yet answered) per thing.
   * @defaultValue 10
   */
  maxInFlightPerThing: number;
}

/** AWS's default limits. */
export const DEFAULT_LIMITS: Readonly<ShadowLimits> = Object.freeze({
  maxStateBytes: 8192,
  maxDepth: 6,
  maxClientTokenBytes: 64,
  maxThingNameLength: 128,
  maxShadowNameLength: 64,
  deletedVersionRetentionMs: 48 * 60 * 60 * 1000,
  requestsPerSecondPerThing: 20,
  maxInFlightPerThing: 10,
});
