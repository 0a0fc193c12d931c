// The public API of `shadow-sync`: the pure core, the update engine, split policies and typed errors.
// Transports, the device agent and the local service have their own entry points.

export { type ApplyDeleteResult, applyDelete, type DeleteOptions } from './core/apply-delete.js';
export { type ApplyOptions, type ApplyUpdateResult, applyUpdate } from './core/apply-update.js';
export { type DecodeResult, decodeRequestPayload } from './core/decode-payload.js';
export { computeDelta, type Delta } from './core/delta.js';
export { diffSection, diffState } from './core/diff.js';
export type * from './core/document.js';
export { type GetDocumentResult, type GetOptions, getDocument } from './core/get-document.js';
export { jsonEqual } from './core/json-equal.js';
export { applyJsonPatch, type JsonPatchOperation, toJsonPatch } from './core/json-patch.js';
export {
  checkShadowName,
  checkThingName,
  DEFAULT_LIMITS,
  nestingDepth,
  resolveLimits,
  type ShadowLimits,
  stateBytes,
} from './core/limits.js';
export { mergeSection } from './core/merge.js';
export {
  deleteAcceptedBodySchema,
  deltaBodySchema,
  documentsBodySchema,
  getAcceptedBodySchema,
  type MessageSchema,
  namedShadowListBodySchema,
  type ParseContext,
  parseWithSchema,
  rejectedBodySchema,
  updateAcceptedBodySchema,
  updateRequestSchema,
} from './core/schemas.js';
export {
  type ParsedShadowTopic,
  parseShadowTopic,
  type ShadowOperation,
  type ShadowTopicSuffix,
  shadowTopic,
  shadowTopicPrefix,
} from './core/topics.js';
export { readClientToken, type ValidateResult, validateUpdateRequest } from './core/validate-request.js';
export * from './errors.js';
export * from './split/index.js';
export type {
  KnownState,
  ShadowDocument,
  ShadowTransport,
  TransportCallOptions,
} from './transports/transport.js';
export type { BaseReason, BaseSource } from './update/base-chooser.js';
export {
  resolveShadowClientOptions,
  SHADOW_CLIENT_DEFAULTS,
  type ShadowClientOptions,
  type ShadowClock,
} from './update/client-options.js';
export { fullJitterDelay } from './update/retry-policy.js';
export {
  createShadowClient,
  type ShadowClient,
  type ShadowHandle,
  type ShadowHandleOptions,
  type ShadowWriteResult,
  type TypedIntent,
  type TypedShadowDocument,
  type UncheckedSchema,
} from './update/shadow-client.js';
export type { RetryReason, ShadowEvent, ShadowLogger } from './update/shadow-events.js';
export type { SectionOf, SectionPatch, ShadowPatch, ShadowSchema } from './update/typed-schema.js';
