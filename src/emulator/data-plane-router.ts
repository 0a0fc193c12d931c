/**
 * The AWS IoT data-plane REST API (spec 8.2) as a function of a request: which operation a method and path
 * name, what the engine answers, and the bytes AWS would send back (raw JSON documents for shadow operations;
 * errors as status + `x-amzn-errortype` + `{"__type","message"}`, the wire format the SDK v3 maps to its
 * modelled exceptions, spec 8.3).
 *
 * Shared by the HTTP front (over node:http) and the in-process SDK request handler (no sockets), so both give
 * the same answers and the same errors by construction. Transport concerns (body size, SigV4, connections)
 * stay with the HTTP front.
 */
import type { Rejection, ShadowErrorType, ShadowTarget } from '../core/document.js';
import { parseShadowTopic } from '../core/topics.js';
import type { ShadowEngineApi } from './engine-api.js';
import { clientPublishRefusal } from './publish-policy.js';

/** Publishes a message on the broker; provided by the MQTT front. */
export type BrokerPublish = (
  topic: string,
  payload: Uint8Array,
  options: { qos: 0 | 1; retain: boolean },
) => void | Promise<void>;

/** One data-plane request, already read. */
export interface DataPlaneRequest {
  method: string;
  /** The path without the query string, still percent-encoded. */
  path: string;
  query: URLSearchParams;
  body: Uint8Array;
}

/** What to send back: status, headers (lower-case names) and the body text. */
export interface DataPlaneAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A request refused by the API layer itself (unknown path, wrong method, bad parameter, size, signature). */
export class DataPlaneError extends Error {
  constructor(
    readonly status: number,
    readonly errorType: ShadowErrorType | 'UnknownOperationException',
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const SHADOW_PATH = /^\/things\/([^/]+)\/shadow$/;
const LIST_PATH = /^\/api\/things\/shadow\/ListNamedShadowsForThing\/([^/]+)$/;
const PUBLISH_PATH = /^\/topics\/([^/]+)$/;

/** Text of a 405. AWS documents the error type only (spec 5.1); this names what was wrong. */
const METHOD_NOT_ALLOWED = (method: string): string => `Method ${method} is not allowed on this resource`;

/** The answer AWS sends for an error: `x-amzn-errortype` and a `{"__type","message"}` body. */
export function errorAnswer(
  status: number,
  errorType: string,
  message: string,
  headers: Record<string, string> = {},
): DataPlaneAnswer {
  return {
    status,
    headers: { 'content-type': 'application/json', 'x-amzn-errortype': errorType, ...headers },
    body: JSON.stringify({ __type: errorType, message }),
  };
}

function rejectionAnswer(rejection: Rejection): DataPlaneAnswer {
  return errorAnswer(rejection.code, rejection.errorType, rejection.message);
}

function jsonAnswer(body: unknown): DataPlaneAnswer {
  return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

function decodeLabel(raw: string, label: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new DataPlaneError(400, 'InvalidRequestException', `Invalid percent-encoding in ${label}`);
  }
}

function parseQos(raw: string | null): 0 | 1 {
  if (raw === null || raw === '0') return 0;
  if (raw === '1') return 1;
  throw new DataPlaneError(
    400,
    'InvalidRequestException',
    `1 validation error detected: Value '${raw}' at 'qos' failed to satisfy constraint: Member must be 0 or 1`,
  );
}

/**
 * Answers one data-plane request with the engine.
 *
 * @param engine - the shared shadow engine
 * @param request - method, path, query and body
 * @param publish - where `POST /topics/{topic}` sends topics other than shadow request topics (dropped without)
 * @returns the answer for every outcome the engine decides (success or AWS rejection)
 * @throws {@link DataPlaneError} for requests the API layer refuses (unknown path 404, method 405, bad parameter)
 */
export async function routeDataPlaneRequest(
  engine: ShadowEngineApi,
  request: DataPlaneRequest,
  publish: BrokerPublish | undefined,
): Promise<DataPlaneAnswer> {
  const { method, path, query, body } = request;
  let match = SHADOW_PATH.exec(path);
  if (match !== null) {
    const operation =
      method === 'GET' ? 'get' : method === 'POST' ? 'update' : method === 'DELETE' ? 'delete' : undefined;
    if (operation === undefined)
      throw new DataPlaneError(405, 'MethodNotAllowedException', METHOD_NOT_ALLOWED(method), {
        allow: 'GET, POST, DELETE',
      });
    const thingName = decodeLabel(match[1] as string, 'thingName');
    const shadowName = query.get('name');
    const target: ShadowTarget = shadowName === null ? { thingName } : { thingName, shadowName };
    const result = await engine.handle({
      operation,
      target,
      payload: operation === 'update' ? body : new Uint8Array(0),
      origin: 'http',
    });
    return result.ok ? jsonAnswer(result.body) : rejectionAnswer(result.rejection);
  }

  match = LIST_PATH.exec(path);
  if (match !== null) {
    if (method !== 'GET')
      throw new DataPlaneError(405, 'MethodNotAllowedException', METHOD_NOT_ALLOWED(method), {
        allow: 'GET',
      });
    const thingName = decodeLabel(match[1] as string, 'thingName');
    const page: { pageSize?: number; nextToken?: string } = {};
    const pageSize = query.get('pageSize');
    if (pageSize !== null && !/^-?\d+$/.test(pageSize))
      throw new DataPlaneError(
        400,
        'InvalidRequestException',
        `1 validation error detected: Value '${pageSize}' at 'pageSize' failed to satisfy constraint: Member must be an integer`,
      );
    if (pageSize !== null) page.pageSize = Number(pageSize);
    const nextToken = query.get('nextToken');
    if (nextToken !== null) page.nextToken = nextToken;
    const result = engine.listNamedShadows(thingName, page);
    return result.ok ? jsonAnswer(result.body) : rejectionAnswer(result.rejection);
  }

  match = PUBLISH_PATH.exec(path);
  if (match !== null) {
    if (method !== 'POST')
      throw new DataPlaneError(405, 'MethodNotAllowedException', METHOD_NOT_ALLOWED(method), {
        allow: 'POST',
      });
    const topic = decodeLabel(match[1] as string, 'topic');
    // Response topics and $SYS/ are the service's own: a Publish there would impersonate it (publish-policy.ts).
    const refusal = clientPublishRefusal(topic);
    if (refusal !== undefined) throw new DataPlaneError(refusal.status, refusal.errorType, refusal.message);
    const qos = parseQos(query.get('qos'));
    const retain = query.get('retain') === 'true';
    const shadow = parseShadowTopic(topic);
    if (shadow !== undefined && shadow.response === undefined) {
      // A publish to a shadow request topic is processed like a device's publish: answers go to MQTT.
      await engine.handle({
        operation: shadow.operation,
        target: shadow.target,
        payload: body,
        origin: 'mqtt',
      });
    } else if (publish !== undefined) {
      await publish(topic, body, { qos, retain });
    }
    return { status: 200, headers: { 'content-type': 'application/json' }, body: '' };
  }

  throw new DataPlaneError(404, 'UnknownOperationException', `No operation matches ${method} ${path}`);
}
