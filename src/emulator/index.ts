/**
 * `shadow-sync/emulator`: the local AWS IoT Device Shadow service (HTTP data plane, MQTT reserved topics,
 * limits, persistence, fault injection, IoT rules with Lambda and republish actions).
 */

export type { BrokerAuthOptions, BrokerTlsOptions, ServiceCredentials } from './broker.js';
export type { ConnectionQuotaStats } from './connection-quota-guard.js';
export {
  type ConnectionQuotas,
  DEFAULT_CONNECTION_QUOTAS,
  resolveConnectionQuotas,
} from './connection-quotas.js';
export {
  CONSOLE_DEFAULTS,
  type ConsoleOptions,
  type ConsoleServer,
  createConsoleServer,
  type ResolvedConsoleOptions,
  resolveConsoleOptions,
} from './console/console-server.js';
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
export {
  IN_PROCESS_REQUEST_HANDLER_DEFAULTS,
  type InProcessHttpRequest,
  type InProcessHttpResponse,
  type InProcessRequestHandler,
  type InProcessRequestHandlerOptions,
  inProcessRequestHandler,
  resolveInProcessRequestHandlerOptions,
} from './in-process-request-handler.js';
export {
  type Journal,
  type JournalFileOps,
  type JournalOptions,
  type JournalStats,
  NODE_JOURNAL_FILE_OPS,
  openJournal,
} from './journal.js';
export {
  DEFAULT_MANAGED_MOSQUITTO_OPTIONS,
  findDynamicSecurityPlugin,
  findMosquitto,
  type ManagedMosquitto,
  type ManagedMosquittoHealth,
  type ManagedMosquittoOptions,
  resolveManagedMosquittoOptions,
  startManagedMosquitto,
} from './managed-mosquitto.js';
export {
  type MqttBrokerInfo,
  type MqttFront,
  type MqttFrontOptions,
  type MqttFrontStats,
  startMqttFront,
} from './mqtt-front.js';
export type { LambdaCallback, LambdaContext } from './rules/lambda-context.js';
export {
  type DecodedPayload,
  decodeRulePayload,
  evaluateRuleExpression,
  RuleEvaluationError,
  type RuleMessageContext,
  type RuleSelectResult,
  type RuleValue,
  renderRuleValue,
  ruleMatches,
  selectRuleResult,
} from './rules/rule-evaluator.js';
export {
  parseRuleExpression,
  parseRuleSql,
  type RuleComparisonOperator,
  type RuleExpression,
  type RuleSelectItem,
  type RuleSqlAst,
  RuleSqlError,
} from './rules/rule-sql.js';
export {
  type CompiledShadowRule,
  compileShadowRules,
  createRulesEngine,
  RULES_ENGINE_DEFAULTS,
  type RuleAction,
  type RuleInput,
  type RuleLambdaAction,
  type RuleRepublishAction,
  type RuleStats,
  type RulesEngine,
  type RulesEngineOptions,
  type RulesEngineSettings,
  type RulesLogger,
  resolveRulesEngineSettings,
  type ShadowRule,
} from './rules/rules-engine.js';
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
  type ShadowResultEvent,
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
  type ShadowServiceRules,
  startShadowService,
} from './start-shadow-service.js';
