export { computeDelta, type Delta } from './core/delta.js';
export type * from './core/document.js';
export { jsonEqual } from './core/json-equal.js';
export { DEFAULT_LIMITS, type ShadowLimits } from './core/limits.js';
export * from './errors.js';
