import type { ShadowTarget } from './document.js';

/** The operations a client requests on a shadow's reserved topics. */
export type ShadowOperation = 'get' | 'update' | 'delete';

/** Every reserved-topic suffix below a shadow's prefix (spec section 7). */
export type ShadowTopicSuffix =
  | 'get'
  | 'get/accepted'
  | 'get/rejected'
  | 'update'
  | 'update/accepted'
  | 'update/rejected'
  | 'update/delta'
  | 'update/documents'
  | 'delete'
  | 'delete/accepted'
  | 'delete/rejected';

/**
 * The reserved-topic prefix of a shadow: `$aws/things/<thing>/shadow` for the classic shadow,
 * `$aws/things/<thing>/shadow/name/<name>` for a named one.
 */
export function shadowTopicPrefix(target: ShadowTarget): string {
  const classic = `$aws/things/${target.thingName}/shadow`;
  return target.shadowName === undefined ? classic : `${classic}/name/${target.shadowName}`;
}

/** The full reserved topic of a shadow for one suffix, for example `$aws/things/t/shadow/update/delta`. */
export function shadowTopic(target: ShadowTarget, suffix: ShadowTopicSuffix): string {
  return `${shadowTopicPrefix(target)}/${suffix}`;
}

/** A reserved shadow topic taken apart. */
export interface ParsedShadowTopic {
  target: ShadowTarget;
  operation: ShadowOperation;
  /** `undefined` for a request topic (`.../update`), otherwise the response kind. */
  response: 'accepted' | 'rejected' | 'delta' | 'documents' | undefined;
}

const RESPONSES: Record<ShadowOperation, readonly string[]> = {
  get: ['accepted', 'rejected'],
  update: ['accepted', 'rejected', 'delta', 'documents'],
  delete: ['accepted', 'rejected'],
};

/**
 * Parses a reserved shadow topic, or returns `undefined` when the topic is not one (topics are case-sensitive).
 *
 * @example parseShadowTopic('$aws/things/lamp/shadow/name/cfg/update') // { target: { thingName: 'lamp', shadowName: 'cfg' }, operation: 'update', response: undefined }
 */
export function parseShadowTopic(topic: string): ParsedShadowTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] !== '$aws' || parts[1] !== 'things' || parts[3] !== 'shadow') return undefined;
  const thingName = parts[2];
  if (!thingName) return undefined;
  let rest = parts.slice(4);
  let target: ShadowTarget = { thingName };
  if (rest[0] === 'name') {
    const shadowName = rest[1];
    if (!shadowName) return undefined;
    target = { thingName, shadowName };
    rest = rest.slice(2);
  }
  const operation = rest[0];
  if (operation !== 'get' && operation !== 'update' && operation !== 'delete') return undefined;
  if (rest.length === 1) return { target, operation, response: undefined };
  const response = rest[1];
  if (rest.length !== 2 || response === undefined || !RESPONSES[operation].includes(response))
    return undefined;
  return { target, operation, response: response as ParsedShadowTopic['response'] };
}
