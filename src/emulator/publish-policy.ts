/**
 * Which topics a publisher other than the shadow service itself may never publish to, shared by the HTTP
 * Publish API and the embedded broker so that neither path can impersonate the service.
 *
 * - Shadow response topics (`…/get|update|delete/accepted|rejected`, `…/update/delta|documents`, classic and
 *   named): AWS's reserved-topic table allows clients only `Subscribe` on them; only the Device Shadow service
 *   publishes there. Devices trust these messages (a forged `update/delta` would switch device B), so no client
 *   may publish them: not a device, not a client with the service credentials, not a client of an open broker,
 *   not the data-plane Publish API.
 * - `$SYS/`: broker-internal topics; AWS IoT has none, and topics beginning with `$` are reserved for the
 *   broker/service.
 *
 * AWS's answer to a Publish call the caller is not authorized for is 403 `ForbiddenException` (the data plane's
 * modelled 403, spec 5.1); the HTTP front uses it for both kinds. A topic name that is not valid (NUL, wildcards,
 * empty) is a malformed request: 400 `InvalidRequestException`. The MQTT 3.1.1 spec (1.5.3) forbids U+0000 in
 * topic names too.
 */
import { parseShadowTopic } from '../core/topics.js';

/** Why a topic may not be published to by a client, or `undefined` when it may. */
export interface PublishRefusal {
  /** 403 for a reserved topic, 400 for a topic name that is not valid. */
  readonly status: 400 | 403;
  readonly errorType: 'ForbiddenException' | 'InvalidRequestException';
  readonly message: string;
}

/**
 * Tells whether `topic` is one only the service itself publishes to: a shadow response topic or `$SYS/…`.
 *
 * @example isServiceOnlyTopic('$aws/things/lamp/shadow/update/delta') // true
 */
export function isServiceOnlyTopic(topic: string): boolean {
  if (topic === '$SYS' || topic.startsWith('$SYS/')) return true;
  const shadow = parseShadowTopic(topic);
  return shadow !== undefined && shadow.response !== undefined;
}

/**
 * Checks a topic a client (MQTT or the HTTP Publish API) wants to publish to.
 *
 * @param topic - the decoded topic name
 * @returns the refusal, or `undefined` when the publish may go ahead
 */
export function clientPublishRefusal(topic: string): PublishRefusal | undefined {
  if (topic === '')
    return {
      status: 400,
      errorType: 'InvalidRequestException',
      message: 'Invalid topic: the topic is empty',
    };
  if (topic.includes('\u0000'))
    return {
      status: 400,
      errorType: 'InvalidRequestException',
      message: `Invalid topic ${JSON.stringify(topic)}: a topic must not contain the NUL character`,
    };
  if (topic.includes('+') || topic.includes('#'))
    return {
      status: 400,
      errorType: 'InvalidRequestException',
      message: `Invalid topic '${topic}': a publish topic must not contain wildcards`,
    };
  if (isServiceOnlyTopic(topic))
    return {
      status: 403,
      errorType: 'ForbiddenException',
      message: `Forbidden: '${topic}' is reserved; only the AWS IoT service publishes to it`,
    };
  return undefined;
}
