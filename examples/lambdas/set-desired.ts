/**
 * `PUT /things/{thingName}/desired` behind an API Gateway HTTP API (payload v2) with a Cognito JWT
 * authorizer: the app changes an air conditioner's desired state through a versioned, conflict-resolving
 * `update`, so a device's concurrent reports never make the app's write fail or overwrite a newer value.
 *
 * Authorization (decided here; the seed did not say): the caller may write a thing when its JWT carries
 * - the Cognito group named by `adminGroup` (claim `cognito:groups`), or
 * - the thing's name in `custom:things`, a Cognito custom attribute holding a comma-separated list of thing
 *   names (custom attributes are strings; ID tokens carry them, so the authorizer must accept ID tokens).
 * API Gateway flattens array claims into strings such as `[admins operators]`; both forms are read.
 *
 * Existence (decided here): the shadow must exist (404 otherwise). A thing gets its shadow when its device
 * first reports, so an app cannot conjure shadows for things that were never provisioned or typo'd names.
 *
 * Answers: 200 `{ thingName, version, skipped }` (the new version; `skipped` when the values were already
 * desired), 400 with the body's issues, 403, 404, 409 only when the update engine's retries ran out,
 * 429 with `Retry-After`, 502 when the shadow service failed otherwise.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { isShadowError, type ShadowClient } from '../../src/index.js';
import { lazily } from './environment.js';
import { flushMetrics } from './flush-metrics.js';
import { shadowsFromEnvironment } from './shadows-from-environment.js';

/**
 * The desired values an app may set on an air conditioner. `null` removes a desired value (the device then
 * keeps its own). Unknown keys are refused so a typo never reaches the device.
 */
export const airconDesiredSchema = z
  .strictObject({
    power: z.enum(['on', 'off']).nullable().optional(),
    mode: z.enum(['cool', 'heat', 'dry', 'fan', 'auto']).nullable().optional(),
    targetTemp: z.number().min(16).max(30).nullable().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { message: 'the body must set at least one value' });

/** A validated request body. */
export type AirconDesiredPatch = z.infer<typeof airconDesiredSchema>;

/** What {@link createSetDesiredHandler} needs. */
export interface SetDesiredDependencies {
  /** Writes the shadows (AWS transport in AWS, the local service's HTTP endpoint locally). */
  shadows: ShadowClient;
  /** Structured logs. @defaultValue a Powertools logger for service `set-desired` */
  logger?: Logger;
  /** Metrics (EMF); the handler publishes them after each request. @defaultValue none */
  metrics?: Metrics;
  /** Cognito group whose members may write every thing. @defaultValue 'admins' */
  adminGroup?: string;
  /** Seconds sent in `Retry-After` with a 429. @defaultValue 1 (the service's per-thing quota is per second) */
  retryAfterSeconds?: number;
}

/** The API Gateway HTTP API handler. */
export type SetDesiredHandler = (
  event: APIGatewayProxyEventV2WithJWTAuthorizer,
) => Promise<APIGatewayProxyStructuredResultV2>;

type Claims = Record<string, string | number | boolean | string[]>;

/** Reads a claim that may be a list, a `[a b]` string (API Gateway's flattening) or a comma-separated string. */
function claimList(value: Claims[string] | undefined): string[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.map(String);
  const text = String(value).trim();
  const inner = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  return inner
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/**
 * True when the claims allow writing `thingName` (see the module comment for the rule).
 *
 * @param claims - the JWT claims API Gateway verified
 * @param thingName - the thing the request addresses
 * @param adminGroup - the Cognito group allowed to write every thing
 */
export function claimsAllowThing(
  claims: Claims | undefined,
  thingName: string,
  adminGroup = 'admins',
): boolean {
  if (claims === undefined) return false;
  if (claimList(claims['cognito:groups']).includes(adminGroup)) return true;
  return claimList(claims['custom:things']).includes(thingName);
}

function json(statusCode: number, body: unknown, headers: Record<string, string> = {}) {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  } satisfies APIGatewayProxyStructuredResultV2;
}

function decodeBody(
  event: APIGatewayProxyEventV2WithJWTAuthorizer,
): { ok: true; value: unknown } | { ok: false } {
  if (event.body === undefined || event.body === '') return { ok: false };
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/**
 * Creates the handler on its dependencies.
 *
 * @param dependencies - see {@link SetDesiredDependencies}
 * @example
 * ```ts
 * const handler = createSetDesiredHandler({ shadows: lambdaShadowClient(new IoTDataPlaneClient({ endpoint, maxAttempts: 1 })) });
 * const response = await handler(event); // { statusCode: 200, body: '{"thingName":"aircon-1","version":7,...}' }
 * ```
 */
export function createSetDesiredHandler(dependencies: SetDesiredDependencies): SetDesiredHandler {
  const { shadows, metrics } = dependencies;
  const logger = dependencies.logger ?? new Logger({ serviceName: 'set-desired' });
  const adminGroup = dependencies.adminGroup ?? 'admins';
  const retryAfter = String(dependencies.retryAfterSeconds ?? 1);
  const count = (name: string) => metrics?.addMetric(name, MetricUnit.Count, 1);

  async function answer(event: APIGatewayProxyEventV2WithJWTAuthorizer) {
    const thingName = event.pathParameters?.thingName;
    if (thingName === undefined || thingName === '') {
      return json(400, { message: 'the path must name a thing: PUT /things/{thingName}/desired' });
    }
    if (!claimsAllowThing(event.requestContext.authorizer?.jwt?.claims, thingName, adminGroup)) {
      count('Forbidden');
      logger.warn('caller may not write this thing', { thingName });
      return json(403, { message: `you may not change thing '${thingName}'` });
    }
    const body = decodeBody(event);
    if (!body.ok) return json(400, { message: 'the body must be a JSON object', issues: [] });
    const parsed = airconDesiredSchema.safeParse(body.value);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => ({
        path: issue.path.map(String),
        message: issue.message,
      }));
      return json(400, { message: 'invalid desired state', issues });
    }
    const patch = parsed.data as Record<string, string | number | null>;
    try {
      const handle = shadows.shadow(thingName);
      // No document: return nothing, the round is skipped and `version` stays undefined (404 below).
      const result = await handle.update((current) =>
        current === undefined ? undefined : { desired: patch },
      );
      if (result.version === undefined) {
        return json(404, { message: `thing '${thingName}' has no shadow yet` });
      }
      count(result.skipped ? 'DesiredUnchanged' : 'DesiredCommitted');
      if (result.attempts > 1) metrics?.addMetric('DesiredRetries', MetricUnit.Count, result.attempts - 1);
      logger.info('desired state written', { thingName, version: result.version, attempts: result.attempts });
      return json(200, { thingName, version: result.version, skipped: result.skipped });
    } catch (error) {
      if (!isShadowError(error)) throw error;
      switch (error.code) {
        case 'CONFLICT':
          count('DesiredConflictExhausted');
          logger.warn('gave up after version conflicts', { thingName, error: error.message });
          return json(409, { message: `thing '${thingName}' kept changing; try again` });
        case 'THROTTLED':
          count('Throttled');
          return json(429, { message: 'too many requests for this thing' }, { 'retry-after': retryAfter });
        case 'NOT_FOUND':
          return json(404, { message: `thing '${thingName}' has no shadow yet` });
        case 'LIMIT':
        case 'VALIDATION':
          return json(400, { message: error.message, issues: [] });
        default:
          logger.error('shadow service failed', { thingName, error: error.message, code: error.code });
          return json(502, { message: 'the shadow service failed; try again' });
      }
    }
  }

  return async (event) => {
    try {
      return await answer(event);
    } finally {
      flushMetrics(metrics);
    }
  };
}

const defaultDependencies = lazily(
  (): SetDesiredDependencies => ({
    shadows: shadowsFromEnvironment(),
    logger: new Logger({ serviceName: 'set-desired' }),
    metrics: new Metrics({ namespace: 'ShadowSync', serviceName: 'set-desired' }),
    ...(process.env.ADMIN_GROUP === undefined ? {} : { adminGroup: process.env.ADMIN_GROUP }),
  }),
);
const lazyHandler = lazily(() => createSetDesiredHandler(defaultDependencies()));

/** The Lambda entry point (reads `IOT_DATA_ENDPOINT` and optional `ADMIN_GROUP` on first use). */
export const handler: SetDesiredHandler = async (event) => lazyHandler()(event);
