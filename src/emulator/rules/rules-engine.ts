/**
 * The local service's rules engine: AWS IoT rules on every message that passes through the service (client
 * publishes, HTTP Publish, the shadow service's own `accepted` / `documents` / `delta` messages), with two actions:
 * invoke a local function the way the Lambda action invokes a Lambda, and republish.
 *
 * Faithful where it matters to code that runs on AWS:
 * - the FROM filter matches like an MQTT subscription (`+`, `#`; a filter starting with a wildcard does not match
 *   a `$` topic, MQTT 4.7.2);
 * - the WHERE clause and the SELECT result follow AWS IoT SQL's Undefined semantics ({@link ruleMatches});
 * - the Lambda event is the SELECT result; a payload that is not JSON fails the Lambda action, as AWS documents
 *   ("Some rule actions don't support binary payload input, such as a Lambda action");
 * - republish topics take `${expr}` substitution templates evaluated on the incoming message, and a leading `$$`
 *   stands for `$` (how AWS rules republish to reserved topics such as `$$aws/things/t/shadow/update`);
 * - a failed action is logged and counted and never disturbs other actions or rules; an `errorAction` receives
 *   AWS's error message (`ruleName`, `topic`, `clientId`, `base64OriginalPayload`, `failures[]`).
 *
 * Not emulated: Lambda's asynchronous-invocation retries (a failing handler runs once), SQL versions, actions other
 * than Lambda and republish. A guard that AWS does not have stops republish loops after `maxRepublishDepth` hops so a
 * rule that republishes onto its own FROM topic cannot spin the process forever.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { JsonValue } from '../../core/document.js';
import { ShadowOptionsError } from '../../errors.js';
import { filterWithin } from '../topic-filter.js';
import type { LambdaCallback, LambdaContext } from './lambda-context.js';
import {
  decodeRulePayload,
  evaluateRuleExpression,
  type RuleMessageContext,
  type RuleSelectResult,
  renderRuleValue,
  ruleMatches,
  selectRuleResult,
} from './rule-evaluator.js';
import {
  parseRuleExpression,
  parseRuleSql,
  type RuleExpression,
  type RuleSqlAst,
  RuleSqlError,
} from './rule-sql.js';

/**
 * Invokes a local function with the event AWS IoT's Lambda action would deliver.
 *
 * The handler is called like the Lambda Node.js runtime calls one: `(event, context, callback)`. A returned promise
 * settles the invocation; a handler declared with three parameters may answer through `callback` instead.
 */
export interface RuleLambdaAction {
  type: 'lambda';
  /**
   * The function. `event` is the rule's SELECT result (a fresh copy for every invocation); `context` is a minimal
   * Lambda context whose `functionName` is the rule's name. Declared as a method so that handlers typed with their
   * own event type (or as `Handler<E, R>` from `aws-lambda`) can be passed directly.
   */
  handler(event: unknown, context: LambdaContext, callback: LambdaCallback<unknown>): unknown;
  /**
   * How long an invocation may run before it counts as failed (Lambda's timeout).
   * @defaultValue 3000 (Lambda's default timeout)
   */
  timeoutMs?: number;
}

/** Republishes the SELECT result, like AWS IoT's republish action. */
export interface RuleRepublishAction {
  type: 'republish';
  /**
   * Topic, with `${expr}` substitution templates (`alerts/${topic(3)}`); a leading `$$` publishes to a `$` topic.
   * A republish to a shadow request topic (`$$aws/things/<t>/shadow/update`) is applied by the shadow service like a
   * device's publish.
   */
  topic: string;
  /**
   * QoS of the republished message.
   * @defaultValue 0
   */
  qos?: 0 | 1;
}

/** An action of a rule. */
export type RuleAction = RuleLambdaAction | RuleRepublishAction;

/** One IoT rule of the local service. */
export interface ShadowRule {
  /** The rule's name: letters, digits and `_`, unique within the service (AWS's rule-name pattern). */
  name: string;
  /** The statement, in the supported subset of AWS IoT SQL (see {@link parseRuleSql}). */
  sql: string;
  /** Up to 10 actions, run concurrently for every matching message (AWS's limit). */
  actions: readonly RuleAction[];
  /** Runs once per message when any action failed, with AWS's error message as its input. */
  errorAction?: RuleAction;
  /**
   * `false` disables the rule (AWS's `ruleDisabled`).
   * @defaultValue true
   */
  enabled?: boolean;
}

/** Counters of one rule. */
export interface RuleStats {
  name: string;
  /** Messages whose topic matched the FROM filter. */
  messages: number;
  /** Messages for which the WHERE clause held (the rule fired). */
  matched: number;
  actionsSucceeded: number;
  actionsFailed: number;
  /** Messages whose SELECT could not be computed (see {@link selectRuleResult}); no action ran. */
  evaluationErrors: number;
  errorActionsSucceeded: number;
  errorActionsFailed: number;
  /** Republished messages not evaluated because the republish chain exceeded `maxRepublishDepth`. */
  loopsStopped: number;
  /** The most recent failure (action, error action or evaluation), as `'<what>: <message>'`. */
  lastError: string | undefined;
}

/** Where the rules engine reports failures; silent by default. */
export interface RulesLogger {
  warn(message: string, details?: Record<string, unknown>): void;
}

/** Settings of the rules engine besides the rules themselves. */
export interface RulesEngineSettings {
  /**
   * Receives every failed action and evaluation error.
   * @defaultValue a silent logger
   */
  logger?: RulesLogger;
  /**
   * The longest chain of republishes the engine follows: a message republished `maxRepublishDepth` hops away from
   * the original is still delivered to subscribers but no longer evaluated by rules (a guard AWS does not have, so a
   * rule republishing onto its own FROM topic cannot spin forever). 0 means rules never see republished messages.
   * @defaultValue 8
   */
  maxRepublishDepth?: number;
}

/** Options of {@link createRulesEngine}. */
export interface RulesEngineOptions extends RulesEngineSettings {
  /**
   * The rules.
   * @defaultValue []
   */
  rules?: readonly ShadowRule[];
  /** Publishes a republish action's message as the service. */
  publish(topic: string, payload: Uint8Array, qos: 0 | 1): void | Promise<void>;
  /**
   * Clock in epoch milliseconds, for `timestamp()`.
   * @defaultValue Date.now
   */
  clock?: () => number;
}

/** A message the rules engine evaluates. */
export interface RuleInput {
  topic: string;
  payload: Uint8Array;
  /** The MQTT client that published it; undefined for HTTP Publish, the service's own messages and republishes. */
  clientId?: string | undefined;
}

/** A running rules engine. */
export interface RulesEngine {
  /** Evaluates every rule on a message; actions run asynchronously. Never throws. */
  ingest(message: RuleInput): void;
  /** Counters of each rule, keyed by rule name. */
  stats(): Record<string, RuleStats>;
  /** Resolves when every action started so far has finished (tests and tools wait on it). */
  idle(): Promise<void>;
  /** Stops evaluating new messages and waits for the actions in progress. */
  close(): Promise<void>;
}

/** Defaults of {@link RulesEngineOptions} and of the actions. */
export const RULES_ENGINE_DEFAULTS = Object.freeze({
  maxRepublishDepth: 8,
  lambdaTimeoutMs: 3000,
  republishQos: 0 as const,
});

/** AWS IoT's limit on actions per rule. */
const MAX_ACTIONS = 10;
const RULE_NAME = /^[a-zA-Z0-9_]{1,128}$/;
const RULE_KEYS = new Set(['name', 'sql', 'actions', 'errorAction', 'enabled']);
const LAMBDA_KEYS = new Set(['type', 'handler', 'timeoutMs']);
const REPUBLISH_KEYS = new Set(['type', 'topic', 'qos']);
const SETTINGS_KEYS = new Set(['logger', 'maxRepublishDepth']);

/** A topic template: literal parts and the expressions between them. */
type TopicTemplate = readonly (string | RuleExpression)[];

type CompiledAction =
  | { type: 'lambda'; handler: RuleLambdaAction['handler']; timeoutMs: number }
  | { type: 'republish'; topic: TopicTemplate; source: string; qos: 0 | 1 };

/** A rule checked and parsed. */
export interface CompiledShadowRule {
  readonly name: string;
  readonly ast: RuleSqlAst;
  readonly enabled: boolean;
  /** @internal */
  readonly actions: readonly CompiledAction[];
  /** @internal */
  readonly errorAction: CompiledAction | undefined;
}

function compileTopicTemplate(template: string, where: string): TopicTemplate {
  const parts: (string | RuleExpression)[] = [];
  let literal = '';
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('${', i)) {
      // Find the closing brace outside single-quoted strings.
      let j = i + 2;
      let quoted = false;
      while (j < template.length && (quoted || template[j] !== '}')) {
        if (template[j] === "'") quoted = !quoted;
        j++;
      }
      if (j >= template.length)
        throw new ShadowOptionsError(
          `${where}: unterminated substitution template in ${JSON.stringify(template)}`,
        );
      const source = template.slice(i + 2, j);
      let expression: RuleExpression;
      try {
        expression = parseRuleExpression(source);
      } catch (error) {
        if (error instanceof RuleSqlError)
          throw new RuleSqlError(`${where}: substitution template \${${source}}: ${error.message}`, {
            sql: template,
            position: i + 2 + error.position,
            unsupported: error.unsupported,
          });
        throw error;
      }
      if (literal !== '') parts.push(literal);
      literal = '';
      parts.push(expression);
      i = j + 1;
    } else {
      literal += template[i];
      i++;
    }
  }
  if (literal !== '') parts.push(literal);
  return parts;
}

function compileAction(action: unknown, where: string): CompiledAction {
  if (typeof action !== 'object' || action === null)
    throw new ShadowOptionsError(`${where} must be an object like { type: 'lambda', handler }`);
  const record = action as Record<string, unknown>;
  const keys =
    record.type === 'lambda' ? LAMBDA_KEYS : record.type === 'republish' ? REPUBLISH_KEYS : undefined;
  if (keys === undefined)
    throw new ShadowOptionsError(
      `${where} has unsupported type ${JSON.stringify(record.type)} (supported: 'lambda', 'republish')`,
    );
  for (const key of Object.keys(record))
    if (!keys.has(key))
      throw new ShadowOptionsError(
        `${where}: unknown ${record.type} action option '${key}' (known: ${[...keys].join(', ')})`,
      );
  if (record.type === 'lambda') {
    if (typeof record.handler !== 'function')
      throw new ShadowOptionsError(`${where}: handler must be a function`);
    const timeoutMs = record.timeoutMs ?? RULES_ENGINE_DEFAULTS.lambdaTimeoutMs;
    if (!Number.isSafeInteger(timeoutMs) || (timeoutMs as number) < 1)
      throw new ShadowOptionsError(
        `${where}: timeoutMs must be a positive integer, got ${String(timeoutMs)}`,
      );
    return {
      type: 'lambda',
      handler: record.handler as RuleLambdaAction['handler'],
      timeoutMs: timeoutMs as number,
    };
  }
  if (typeof record.topic !== 'string' || record.topic === '')
    throw new ShadowOptionsError(`${where}: topic must be a non-empty string`);
  const qos = record.qos ?? RULES_ENGINE_DEFAULTS.republishQos;
  if (qos !== 0 && qos !== 1)
    throw new ShadowOptionsError(`${where}: qos must be 0 or 1 (AWS IoT has no QoS 2), got ${String(qos)}`);
  return { type: 'republish', topic: compileTopicTemplate(record.topic, where), source: record.topic, qos };
}

/**
 * Checks rules and parses their SQL and substitution templates, so that a bad rule fails when the service starts.
 *
 * @param rules - the rules as configured
 * @returns the compiled rules
 * @throws {@link RuleSqlError} for SQL (or a substitution template) outside the supported subset, naming the rule,
 *   the unsupported part and its offset; {@link ShadowOptionsError} for any other invalid rule
 */
export function compileShadowRules(rules: unknown): CompiledShadowRule[] {
  if (rules === undefined) return [];
  if (!Array.isArray(rules))
    throw new ShadowOptionsError('Shadow service option rules must be an array of rules');
  const names = new Set<string>();
  return rules.map((rule: unknown, index) => {
    if (typeof rule !== 'object' || rule === null)
      throw new ShadowOptionsError(`rules[${index}] must be an object { name, sql, actions }`);
    const record = rule as Record<string, unknown>;
    const name = record.name;
    if (typeof name !== 'string' || !RULE_NAME.test(name))
      throw new ShadowOptionsError(
        `rules[${index}].name must be 1-128 letters, digits or '_' (AWS's rule-name pattern), got ${JSON.stringify(name)}`,
      );
    const where = `rule '${name}'`;
    if (names.has(name)) throw new ShadowOptionsError(`${where} is defined twice; rule names must be unique`);
    names.add(name);
    for (const key of Object.keys(record))
      if (!RULE_KEYS.has(key))
        throw new ShadowOptionsError(
          `${where}: unknown rule option '${key}' (known: ${[...RULE_KEYS].join(', ')})`,
        );
    if (typeof record.sql !== 'string') throw new ShadowOptionsError(`${where}: sql must be a string`);
    let ast: RuleSqlAst;
    try {
      ast = parseRuleSql(record.sql);
    } catch (error) {
      if (error instanceof RuleSqlError)
        throw new RuleSqlError(`${where}: ${error.message}`, {
          sql: error.sql,
          position: error.position,
          unsupported: error.unsupported,
        });
      throw error;
    }
    if (!Array.isArray(record.actions) || record.actions.length > MAX_ACTIONS)
      throw new ShadowOptionsError(`${where}: actions must be an array of at most ${MAX_ACTIONS} actions`);
    const actions = record.actions.map((action: unknown, i) =>
      compileAction(action, `${where} actions[${i}]`),
    );
    const errorAction =
      record.errorAction === undefined
        ? undefined
        : compileAction(record.errorAction, `${where} errorAction`);
    if (record.enabled !== undefined && typeof record.enabled !== 'boolean')
      throw new ShadowOptionsError(`${where}: enabled must be a boolean`);
    return { name, ast, enabled: record.enabled !== false, actions, errorAction };
  });
}

/**
 * Validates the engine settings and applies the defaults.
 *
 * @param settings - logger and loop guard; see {@link RulesEngineSettings}
 * @throws {@link ShadowOptionsError} for an unknown key or an invalid value
 */
export function resolveRulesEngineSettings(
  settings: RulesEngineSettings = {},
): Required<RulesEngineSettings> {
  if (typeof settings !== 'object' || settings === null)
    throw new ShadowOptionsError('Rules engine settings must be an object');
  for (const key of Object.keys(settings))
    if (!SETTINGS_KEYS.has(key))
      throw new ShadowOptionsError(
        `Unknown rules engine option '${key}' (known: ${[...SETTINGS_KEYS].join(', ')})`,
      );
  const maxRepublishDepth = settings.maxRepublishDepth ?? RULES_ENGINE_DEFAULTS.maxRepublishDepth;
  if (!Number.isSafeInteger(maxRepublishDepth) || maxRepublishDepth < 0)
    throw new ShadowOptionsError(
      `Rules engine option maxRepublishDepth must be a non-negative integer, got ${String(maxRepublishDepth)}`,
    );
  const logger = settings.logger ?? SILENT;
  if (typeof logger.warn !== 'function')
    throw new ShadowOptionsError('Rules engine option logger must have a warn(message, details) method');
  return { logger, maxRepublishDepth };
}

const SILENT: RulesLogger = Object.freeze({ warn() {} });

/** A failure of one action, as AWS's error-action message lists it. */
interface ActionFailure {
  failedAction: 'LambdaAction' | 'RepublishAction';
  failedResource: string;
  errorMessage: string;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function fixedTopic(template: TopicTemplate, context: RuleMessageContext): string {
  let topic = '';
  for (const part of template)
    topic += typeof part === 'string' ? part : renderRuleValue(evaluateRuleExpression(part, context));
  // AWS: a republish to a topic beginning with `$` is written with `$$`.
  return topic.startsWith('$$') ? topic.slice(1) : topic;
}

function payloadBytes(result: RuleSelectResult): Uint8Array {
  return result.kind === 'binary' ? result.bytes : Buffer.from(JSON.stringify(result.value), 'utf8');
}

/** Remembers the messages this engine republished, to know how deep a republish chain is when they come back. */
const MAX_PENDING_REPUBLISHES = 10_000;

/**
 * Creates a rules engine; the service wires its message sources to `ingest` and republish to `publish`.
 *
 * @param options - rules, publish sink, clock, logger; see {@link RulesEngineOptions}
 * @throws {@link RuleSqlError} or {@link ShadowOptionsError} for invalid rules or settings
 * @example
 * const rules = createRulesEngine({
 *   rules: [{ name: 'hot', sql: "SELECT * FROM 'sensors/+' WHERE t > 30", actions: [{ type: 'republish', topic: 'alerts/${topic(2)}' }] }],
 *   publish: (topic, payload, qos) => front.publish(topic, payload, { qos }),
 * });
 * front.onClientPublish((message) => rules.ingest(message));
 */
export function createRulesEngine(options: RulesEngineOptions): RulesEngine {
  const { rules: ruleList, publish, clock = Date.now, ...settings } = options;
  const { logger, maxRepublishDepth } = resolveRulesEngineSettings(settings);
  if (typeof publish !== 'function')
    throw new ShadowOptionsError('Rules engine option publish must be a function');
  const rules = compileShadowRules(ruleList);
  const counters = new Map<string, RuleStats>(
    rules.map((rule) => [
      rule.name,
      {
        name: rule.name,
        messages: 0,
        matched: 0,
        actionsSucceeded: 0,
        actionsFailed: 0,
        evaluationErrors: 0,
        errorActionsSucceeded: 0,
        errorActionsFailed: 0,
        loopsStopped: 0,
        lastError: undefined,
      },
    ]),
  );
  const inFlight = new Set<Promise<void>>();
  const pendingRepublishes = new Map<string, number>();
  let closed = false;

  const republishKey = (topic: string, payload: Uint8Array) =>
    `${topic}\u0000${Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1')}`;

  function failed(stats: RuleStats, what: string, error: unknown, details: Record<string, unknown>): string {
    const message = describe(error);
    stats.lastError = `${what}: ${message}`;
    logger.warn(`rule '${stats.name}' ${what} failed: ${message}`, { rule: stats.name, ...details });
    return message;
  }

  function invokeLambda(
    action: Extract<CompiledAction, { type: 'lambda' }>,
    rule: CompiledShadowRule,
    event: JsonValue,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const deadline = performance.now() + action.timeoutMs;
      const timer = setTimeout(
        () => finish(new Error(`Task timed out after ${(action.timeoutMs / 1000).toFixed(2)} seconds`)),
        action.timeoutMs,
      );
      function finish(error?: unknown) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error === undefined || error === null) resolve();
        else reject(error instanceof Error ? error : new Error(String(error)));
      }
      const requestId = randomUUID();
      const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
      const context: LambdaContext = {
        callbackWaitsForEmptyEventLoop: true,
        functionName: rule.name,
        functionVersion: '$LATEST',
        invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${rule.name}`,
        memoryLimitInMB: '128',
        awsRequestId: requestId,
        logGroupName: `/aws/lambda/${rule.name}`,
        logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
        getRemainingTimeInMillis: () => Math.max(0, Math.round(deadline - performance.now())),
        done: (error?: Error) => finish(error),
        fail: (error: Error | string) => finish(typeof error === 'string' ? new Error(error) : error),
        succeed: () => finish(),
      };
      const callback: LambdaCallback<unknown> = (error) => finish(error ?? undefined);
      try {
        const returned = action.handler(event, context, callback);
        if (typeof (returned as PromiseLike<unknown> | undefined)?.then === 'function')
          (returned as PromiseLike<unknown>).then(
            () => finish(),
            (error: unknown) => finish(error ?? new Error('Lambda handler rejected without a reason')),
          );
        else if (action.handler.length < 3) finish();
        // A callback-style handler answers through callback / context.succeed, or times out.
      } catch (error) {
        finish(error);
      }
    });
  }

  async function runAction(
    action: CompiledAction,
    rule: CompiledShadowRule,
    result: RuleSelectResult,
    context: RuleMessageContext,
    depth: number,
  ): Promise<void> {
    if (action.type === 'lambda') {
      if (result.kind !== 'json')
        throw new Error(
          `the Lambda action needs a JSON payload; the message on ${context.topic} is not JSON (AWS: encode binary payloads, e.g. base64, into JSON first)`,
        );
      // A fresh copy per invocation: a handler that mutates its event cannot affect other actions.
      await invokeLambda(action, rule, structuredClone(result.value));
      return;
    }
    const topic = fixedTopic(action.topic, context);
    if (topic === '' || topic.includes('+') || topic.includes('#') || topic.includes('\u0000'))
      throw new Error(
        `republish topic ${JSON.stringify(topic)} (from ${action.source}) is not a valid topic name`,
      );
    const payload = payloadBytes(result);
    const key = republishKey(topic, payload);
    pendingRepublishes.delete(key);
    pendingRepublishes.set(key, depth + 1);
    if (pendingRepublishes.size > MAX_PENDING_REPUBLISHES) {
      const oldest = pendingRepublishes.keys().next().value;
      if (oldest !== undefined) pendingRepublishes.delete(oldest);
    }
    await publish(topic, payload, action.qos);
  }

  function resourceOf(action: CompiledAction, rule: CompiledShadowRule, context: RuleMessageContext): string {
    return action.type === 'lambda' ? rule.name : fixedTopic(action.topic, context);
  }

  async function fire(
    rule: CompiledShadowRule,
    stats: RuleStats,
    result: RuleSelectResult,
    context: RuleMessageContext,
    original: Uint8Array,
    depth: number,
  ): Promise<void> {
    const failures: ActionFailure[] = [];
    await Promise.all(
      rule.actions.map(async (action) => {
        try {
          await runAction(action, rule, result, context, depth);
          stats.actionsSucceeded++;
        } catch (error) {
          stats.actionsFailed++;
          const errorMessage = failed(stats, `${action.type} action`, error, { topic: context.topic });
          failures.push({
            failedAction: action.type === 'lambda' ? 'LambdaAction' : 'RepublishAction',
            failedResource: safeResource(action, rule, context),
            errorMessage,
          });
        }
      }),
    );
    const errorAction = rule.errorAction;
    if (failures.length === 0 || errorAction === undefined) return;
    const report: JsonValue = {
      ruleName: rule.name,
      topic: context.topic,
      cloudwatchTraceId: randomUUID(),
      clientId: context.clientId ?? 'n/a',
      base64OriginalPayload: Buffer.from(original.buffer, original.byteOffset, original.byteLength).toString(
        'base64',
      ),
      failures: failures.map((failure) => ({ ...failure })),
    };
    try {
      await runAction(errorAction, rule, { kind: 'json', value: report }, context, depth);
      stats.errorActionsSucceeded++;
    } catch (error) {
      stats.errorActionsFailed++;
      failed(stats, `error action (${errorAction.type})`, error, { topic: context.topic });
    }
  }

  function safeResource(
    action: CompiledAction,
    rule: CompiledShadowRule,
    context: RuleMessageContext,
  ): string {
    try {
      return resourceOf(action, rule, context);
    } catch {
      return action.type === 'republish' ? action.source : rule.name;
    }
  }

  function track(promise: Promise<void>): void {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise));
  }

  function ingest(message: RuleInput): void {
    if (closed || rules.length === 0) return;
    const { topic, payload } = message;
    const clientId = message.clientId ?? undefined;
    let depth = 0;
    if (clientId === undefined && pendingRepublishes.size > 0) {
      const key = republishKey(topic, payload);
      const known = pendingRepublishes.get(key);
      if (known !== undefined) {
        pendingRepublishes.delete(key);
        depth = known;
      }
    }
    let context: RuleMessageContext | undefined;
    for (const rule of rules) {
      if (!rule.enabled || !topicMatches(topic, rule.ast.from)) continue;
      const stats = counters.get(rule.name) as RuleStats;
      stats.messages++;
      if (depth > 0 && depth >= maxRepublishDepth) {
        stats.loopsStopped++;
        failed(stats, 'republish loop guard', `message on ${topic} is ${depth} republishes deep`, { topic });
        continue;
      }
      context ??= { topic, payload: decodeRulePayload(payload), clientId, timestamp: clock() };
      let result: RuleSelectResult;
      try {
        if (!ruleMatches(rule.ast, context)) continue;
        stats.matched++;
        result = selectRuleResult(rule.ast, context);
      } catch (error) {
        stats.evaluationErrors++;
        failed(stats, 'evaluation', error, { topic });
        continue;
      }
      const messageContext = context;
      track(
        // Actions start on a later tick: the broker thread that called ingest is never blocked by a handler.
        Promise.resolve()
          .then(() => fire(rule, stats, result, messageContext, payload, depth))
          .catch((error: unknown) => {
            failed(stats, 'rule', error, { topic });
          }),
      );
    }
  }

  return {
    ingest(message) {
      try {
        ingest(message);
      } catch (error) {
        logger.warn(`rules engine failed on a message: ${describe(error)}`, { topic: message.topic });
      }
    },
    stats() {
      const out: Record<string, RuleStats> = {};
      for (const [name, stats] of counters) out[name] = { ...stats };
      return out;
    },
    async idle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    async close() {
      closed = true;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}

/** The FROM filter matches like a subscription: a leading wildcard does not match a `$` topic (MQTT 4.7.2). */
function topicMatches(topic: string, filter: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  return filterWithin(topic, filter);
}
