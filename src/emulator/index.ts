/**
 * `shadow-sync/emulator`: the local AWS IoT Device Shadow service (HTTP data plane, MQTT reserved topics,
 * limits, persistence, fault injection).
 */

export type { BrokerAuthOptions, BrokerTlsOptions, ServiceCredentials } from './broker.js';
export type {
  OutgoingMessage,
  RequestOrigin,
  ShadowEngineApi,
  ShadowRequest,
  ShadowResult,
} from './engine-api.js';
export type { FaultOptions, FaultStats } from './fault-injector.js';
export {
  type BrokerPublish,
  HTTP_FRONT_DEFAULTS,
  type HttpFront,
  type HttpFrontOptions,
  resolveHttpFrontOptions,
  startHttpFront,
} from './http-front.js';
export { type Journal, type JournalOptions, type JournalStats, openJournal } from './journal.js';
export { type MqttFront, type MqttFrontOptions, type MqttFrontStats, startMqttFront } from './mqtt-front.js';
export {
  createShadowEngine,
  INTERNAL_FAILURE_MESSAGE,
  MAX_LIST_PAGE_SIZE,
  type ResolvedShadowEngineOptions,
  resolveShadowEngineOptions,
  SHADOW_ENGINE_DEFAULTS,
  type ShadowEngine,
  type ShadowEngineOptions,
  type ShadowEngineStats,
  THROTTLED_MESSAGE,
} from './shadow-engine.js';
export { createShadowStore, isTombstone, type ShadowStore, type StoredRecord } from './shadow-store.js';
export { SIGV4_MESSAGES, SIGV4_SERVICES, type SigV4Credentials, verifySigV4 } from './sigv4.js';
export {
  type ResolvedShadowServiceOptions,
  resolveShadowServiceOptions,
  SHADOW_SERVICE_DEFAULTS,
  type ShadowService,
  type ShadowServiceOptions,
  startShadowService,
} from './start-shadow-service.js';
