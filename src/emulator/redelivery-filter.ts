/**
 * Recognises a broker's redelivery of a QoS 1 message the service already handed to the engine.
 *
 * With a persistent session, a broker resends every QoS 1 message whose PUBACK it did not receive when the
 * service reconnects, with the DUP flag set and the same packet identifier (MQTT 3.1.1 section 4.4, MQTT 5
 * section 4.4). If the service had processed the message but its PUBACK was lost with the connection, applying
 * the resent copy would apply an unversioned update twice. The filter remembers, per packet identifier, the
 * last message it let through; a DUP copy of exactly that message (same identifier, topic and payload) is a
 * redelivery and is skipped. A message without DUP always passes (a broker may reuse an identifier once it got
 * the PUBACK).
 *
 * This covers the service's own link to the broker only. A device that resends its request because *its*
 * PUBACK was lost makes the broker forward a second, new message (no DUP towards the service), and AWS IoT
 * itself says "the message broker might resend the same logical PUBLISH message with a different packet ID"
 * (developer guide, "AWS IoT differences from MQTT specifications"): QoS 1 is at least once end to end, and a
 * device that must not apply a change twice sends versioned updates (a duplicate then gets 409).
 */

import { createHash } from 'node:crypto';

/**
 * Remembers the last message let through per packet identifier: at most 65,535 entries of a topic and a
 * payload digest (not the payload: up to 128 KB each).
 */
export interface RedeliveryFilter {
  /**
   * Decides whether a received QoS 1 message is a redelivery of one already let through.
   *
   * @returns true when the message must be skipped
   */
  isRedelivery(message: {
    messageId: number | undefined;
    dup: boolean;
    topic: string;
    payload: Buffer;
  }): boolean;
  /** Forgets everything: the broker started a new session, so nothing old can be redelivered. */
  reset(): void;
  /** Redeliveries skipped so far. */
  readonly skipped: number;
}

/** Creates an empty {@link RedeliveryFilter}. */
export function createRedeliveryFilter(): RedeliveryFilter {
  const last = new Map<number, string>();
  let skipped = 0;
  return {
    isRedelivery({ messageId, dup, topic, payload }) {
      if (messageId === undefined) return false;
      const key = `${topic}\n${createHash('sha1').update(payload).digest('base64')}`;
      if (dup && last.get(messageId) === key) {
        skipped++;
        return true;
      }
      last.set(messageId, key);
      return false;
    },
    reset() {
      last.clear();
    },
    get skipped() {
      return skipped;
    },
  };
}
