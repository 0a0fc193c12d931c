/**
 * Turns the bytes of a service answer into a typed body, validated with the core's message schemas: bytes
 * arriving from the network are untrusted, and a malformed answer must fail loudly with the shadow named
 * instead of surfacing later as a confusing `undefined`.
 */

import type {
  DeleteAcceptedBody,
  GetAcceptedBody,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../core/document.js';
import {
  deleteAcceptedBodySchema,
  getAcceptedBodySchema,
  type MessageSchema,
  parseWithSchema,
  updateAcceptedBodySchema,
} from '../core/schemas.js';
import { describeTarget, ShadowTransportError, targetContext } from '../errors.js';

/**
 * The kinds of answer a transport decodes, with their body types. Only the answers the AWS transport reads:
 * every schema listed here is kept in an app's bundle (issue #11 budget), used or not.
 */
export interface ResponseBodies {
  get: GetAcceptedBody;
  update: UpdateAcceptedBody;
  delete: DeleteAcceptedBody;
}

const SCHEMAS = {
  get: getAcceptedBodySchema,
  update: updateAcceptedBodySchema,
  delete: deleteAcceptedBodySchema,
} as const;

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes (UTF-8, JSON) and optionally validates one answer.
 *
 * @param kind - which answer this is
 * @param payload - the raw bytes (or text) of the answer
 * @param target - the shadow it is about, for error messages
 * @param validate - check the body against the documented shape
 * @throws ShadowTransportError when the bytes are missing, not UTF-8 or not JSON
 * @throws ShadowValidationError when `validate` is set and the body does not have the documented shape
 */
export function decodeResponseBody<K extends keyof ResponseBodies>(
  kind: K,
  payload: Uint8Array | string | undefined,
  target: ShadowTarget,
  validate: boolean,
): ResponseBodies[K] {
  const context = targetContext(target);
  if (payload === undefined) {
    throw new ShadowTransportError(`${describeTarget(context)}: the ${kind} answer had no body`, context);
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : decoder.decode(payload));
  } catch (cause) {
    throw new ShadowTransportError(`${describeTarget(context)}: the ${kind} answer is not UTF-8 JSON`, {
      ...context,
      cause,
    });
  }
  if (!validate) return value as ResponseBodies[K];
  return parseWithSchema(SCHEMAS[kind] as MessageSchema<unknown>, value, {
    ...context,
    what: `${kind} answer`,
  }) as ResponseBodies[K];
}
