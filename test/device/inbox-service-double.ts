/**
 * TEST DOUBLE for the device agent's model-based and fake-time tests: an mqtt.js-like client whose "service"
 * applies the pure core's rules and holds every message for the device in an inbox the test delivers from
 * (in any order, twice, or never). The same agent runs against the real service and broker in
 * convergence.test.ts; this double exists so that properties can run thousands of steps on fake time.
 *
 * Faults it can inject on the device's requests (never on the app's writes, which go to `update` directly):
 * the next updates or reads answered with a given error code, and AWS's 413 for an update whose `reported`
 * carries more than `maxReportedLeaves` leaves (a stand-in for the 128 KB message limit) or a poison leaf.
 */
import { EventEmitter } from 'node:events';
import { applyUpdate } from '../../src/core/apply-update.js';
import type { JsonObject, ShadowRecord, ShadowTarget } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import { isJsonObject } from '../../src/core/json-value.js';
import { parseShadowTopic, shadowTopic } from '../../src/core/topics.js';
import type { FakeClock } from '../support/fake-clock.js';

/** Leaves of an update section (scalars, arrays, nulls, empty objects). */
export function leafCount(section: unknown): number {
  if (!isJsonObject(section) || Object.keys(section).length === 0) return 1;
  let count = 0;
  for (const value of Object.values(section)) count += leafCount(value);
  return count;
}

/** The double's settings. */
export interface InboxServiceDoubleSettings {
  /** 413 for a device update whose `reported` has more leaves than this. */
  maxReportedLeaves?: number;
  /** 413 for a device update that sets this key of `reported` to this value, whatever else it carries. */
  poison?: { key: string; value: number | string };
}

/** TEST DOUBLE: a client whose service answers into an inbox that the test delivers from. */
export class InboxServiceDouble extends EventEmitter {
  record: ShadowRecord | undefined;
  connected = true;
  readonly stream = undefined;
  inbox: { topic: string; payload: Buffer }[] = [];
  /** Error codes the next device updates are answered with (one each, in order). */
  readonly updateFaults: number[] = [];
  /** Error codes the next device reads are answered with (one each, in order). */
  readonly getFaults: number[] = [];
  /** Device updates answered 413. */
  refusedTooLarge = 0;
  constructor(
    private readonly clock: FakeClock,
    private readonly target: ShadowTarget,
    private readonly settings: InboxServiceDoubleSettings = {},
  ) {
    super();
  }

  private send(suffix: Parameters<typeof shadowTopic>[1], body: unknown): void {
    if (!this.connected) return;
    this.inbox.push({ topic: shadowTopic(this.target, suffix), payload: Buffer.from(JSON.stringify(body)) });
  }

  private reject(operation: 'update' | 'get', code: number, message: string, clientToken?: string): void {
    this.send(`${operation}/rejected`, {
      code,
      message,
      timestamp: 1,
      ...(clientToken ? { clientToken } : {}),
    });
  }

  /** An update as the service applies it (the app's writes come here directly: no link needed). */
  update(request: unknown): void {
    const result = applyUpdate(this.record, request, { target: this.target, now: this.clock.now() });
    if (!result.ok) {
      const { code, message, clientToken } = result.rejection;
      this.reject('update', code, message, clientToken);
      return;
    }
    this.record = result.shadow;
    this.send('update/accepted', result.accepted);
    if (result.delta !== undefined) this.send('update/delta', result.delta);
  }

  private deviceUpdate(body: { clientToken?: string; state?: { reported?: JsonObject } }): void {
    const fault = this.updateFaults.shift();
    if (fault !== undefined) {
      this.reject('update', fault, `injected ${fault}`, body.clientToken);
      return;
    }
    const reported = body.state?.reported;
    const { maxReportedLeaves, poison } = this.settings;
    const tooMany = maxReportedLeaves !== undefined && leafCount(reported) > maxReportedLeaves;
    const poisoned = poison !== undefined && reported?.[poison.key] === poison.value;
    if (tooMany || poisoned) {
      this.refusedTooLarge++;
      this.reject('update', 413, 'The payload exceeds the maximum size allowed', body.clientToken);
      return;
    }
    this.update(body);
  }

  private deviceGet(body: { clientToken?: string }): void {
    const fault = this.getFaults.shift();
    if (fault !== undefined) {
      this.reject('get', fault, `injected ${fault}`, body.clientToken);
      return;
    }
    const result = getDocument(this.record, {
      target: this.target,
      now: this.clock.now(),
      ...(body.clientToken === undefined ? {} : { clientToken: body.clientToken }),
    });
    if (result.ok) this.send('get/accepted', result.body);
    else this.reject('get', 404, result.rejection.message, body.clientToken);
  }

  publish(topic: string, payload: string, _options: unknown, callback?: (error?: Error) => void): this {
    if (!this.connected) {
      callback?.(new Error('client disconnecting'));
      return this;
    }
    callback?.();
    const parsed = parseShadowTopic(topic);
    if (parsed === undefined || parsed.response !== undefined) return this;
    const body = payload.length === 0 ? {} : (JSON.parse(payload) as { clientToken?: string });
    if (parsed.operation === 'update') this.deviceUpdate(body);
    if (parsed.operation === 'get') this.deviceGet(body);
    return this;
  }

  async subscribeAsync(topics: string[], options: { qos: number }) {
    if (!this.connected) throw new Error('client disconnecting');
    return topics.map((topic) => ({ topic, qos: options.qos }));
  }

  async unsubscribeAsync() {
    return undefined;
  }

  /** Delivers the message at `index` (modulo the inbox's length); `keep`: leave it there to deliver again. */
  take(index: number, keep: boolean): void {
    if (this.inbox.length === 0) return;
    const at = index % this.inbox.length;
    const message = this.inbox[at] as { topic: string; payload: Buffer };
    if (!keep) this.inbox.splice(at, 1);
    this.emit('message', message.topic, message.payload);
  }

  drop(index: number): void {
    if (this.inbox.length > 0) this.inbox.splice(index % this.inbox.length, 1);
  }

  disconnect(): void {
    if (!this.connected) return;
    this.connected = false;
    this.inbox = []; // in flight on a broken link
    this.emit('close');
  }

  reconnect(): void {
    if (this.connected) return;
    this.connected = true;
    this.emit('connect');
  }
}
