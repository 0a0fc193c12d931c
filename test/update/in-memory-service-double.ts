/**
 * TEST DOUBLE of the Device Shadow service for the update engine's unit and race tests: an in-memory
 * store driven by the real pure core (`applyUpdate`, `applyDelete`, `getDocument`), so every service rule
 * is the production rule. It records every request and every committed write, can inject rejections, and
 * can hand control to `fc.scheduler` at request arrival and at response delivery so that races between
 * clients are explored by fast-check instead of by timing.
 */
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate } from '../../src/core/apply-update.js';
import type {
  DeleteAcceptedBody,
  Rejection,
  ShadowRecord,
  ShadowTarget,
  UpdateAcceptedBody,
  UpdateRequest,
} from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import type { ShadowLimits } from '../../src/core/limits.js';
import { errorFromRejection } from '../../src/errors.js';
import type { KnownState, ShadowDocument, ShadowTransport } from '../../src/transports/transport.js';

/** One request the double received. */
export interface RecordedRequest {
  client: string;
  operation: 'get' | 'update' | 'delete';
  target: ShadowTarget;
  request?: UpdateRequest;
  outcome: 'ok' | number;
}

/** One write the double committed. */
export interface CommittedWrite {
  client: string;
  target: ShadowTarget;
  request: UpdateRequest;
  version: number;
}

/** Hands control to a scheduler at a labelled point (see `fc.scheduler().schedule`). */
export type Yield = (label: string) => Promise<void>;

function keyOf(target: ShadowTarget): string {
  return target.shadowName === undefined ? target.thingName : `${target.thingName}/${target.shadowName}`;
}

/** The in-memory service double. */
export class InMemoryShadowServiceDouble {
  readonly records = new Map<string, ShadowRecord>();
  readonly requests: RecordedRequest[] = [];
  readonly committed: CommittedWrite[] = [];
  /** Rejections returned, in order, by the next requests (before the request is applied). */
  readonly injected: Rejection[] = [];
  /** Runs before each update is applied, e.g. to commit a competing write. */
  beforeUpdate: ((target: ShadowTarget, request: UpdateRequest) => void) | undefined;
  now = 1_700_000_000_000;

  constructor(readonly limits: Partial<ShadowLimits> = {}) {}

  /** Applies an update directly (a competing writer outside any client). */
  write(target: ShadowTarget, request: UpdateRequest, client = 'outside'): UpdateAcceptedBody {
    const result = applyUpdate(this.records.get(keyOf(target)), request, {
      target,
      now: this.now,
      limits: this.limits,
    });
    if (!result.ok) throw errorFromRejection(result.rejection, target);
    this.records.set(keyOf(target), result.shadow);
    this.committed.push({ client, target, request, version: result.shadow.version });
    return result.accepted;
  }

  /** The stored document, for assertions. */
  read(target: ShadowTarget): ShadowDocument | undefined {
    const result = getDocument(this.records.get(keyOf(target)), { target, now: this.now });
    return result.ok ? result.body : undefined;
  }

  count(operation: RecordedRequest['operation'], client?: string): number {
    return this.requests.filter(
      (r) => r.operation === operation && (client === undefined || r.client === client),
    ).length;
  }

  /**
   * A transport of one client.
   *
   * @param client - a name recorded with its requests
   * @param options.yieldTo - called at request arrival and at response delivery (for `fc.scheduler`)
   * @param options.broadcast - when set, `known()` returns the document as it was when this transport
   *   last delivered an answer, like a client that also receives `update/documents`
   */
  transport(client = 'client', options: { yieldTo?: Yield; broadcast?: boolean } = {}): ShadowTransport {
    const yieldTo = options.yieldTo ?? (async () => {});
    const heard = new Map<string, KnownState>();
    const observe = (target: ShadowTarget) => {
      if (!options.broadcast) return;
      const record = this.records.get(keyOf(target));
      if (record === undefined) return;
      if ('deleted' in record) heard.set(keyOf(target), { exists: false, version: record.version });
      else {
        const body = this.read(target);
        if (body !== undefined) heard.set(keyOf(target), { exists: true, document: body });
      }
    };
    const reject = (
      operation: RecordedRequest['operation'],
      target: ShadowTarget,
      rejection: Rejection,
      request?: UpdateRequest,
    ) => {
      this.requests.push({
        client,
        operation,
        target,
        ...(request ? { request } : {}),
        outcome: rejection.code,
      });
      return errorFromRejection(rejection, {
        thingName: target.thingName,
        ...(target.shadowName === undefined ? {} : { shadowName: target.shadowName }),
        ...(request?.version === undefined ? {} : { expectedVersion: request.version }),
      });
    };
    const transport: ShadowTransport = {
      get: async (target) => {
        await yieldTo(`${client} get arrives`);
        const injected = this.injected.shift();
        if (injected) throw reject('get', target, injected);
        const result = getDocument(this.records.get(keyOf(target)), { target, now: this.now });
        this.requests.push({
          client,
          operation: 'get',
          target,
          outcome: result.ok ? 'ok' : result.rejection.code,
        });
        await yieldTo(`${client} get answers`);
        observe(target);
        if (!result.ok) {
          if (result.rejection.code === 404) return undefined;
          throw errorFromRejection(result.rejection, target);
        }
        return structuredClone(result.body);
      },
      update: async (target, request) => {
        await yieldTo(`${client} update arrives`);
        const injected = this.injected.shift();
        if (injected) throw reject('update', target, injected, request);
        this.beforeUpdate?.(target, request);
        const copy = structuredClone(request);
        const result = applyUpdate(this.records.get(keyOf(target)), copy, {
          target,
          now: this.now,
          limits: this.limits,
        });
        if (!result.ok) {
          const error = reject('update', target, result.rejection, request);
          await yieldTo(`${client} update answers`);
          observe(target);
          throw error;
        }
        this.records.set(keyOf(target), result.shadow);
        this.committed.push({ client, target, request: copy, version: result.shadow.version });
        this.requests.push({ client, operation: 'update', target, request: copy, outcome: 'ok' });
        await yieldTo(`${client} update answers`);
        observe(target);
        return structuredClone(result.accepted);
      },
      delete: async (target): Promise<DeleteAcceptedBody> => {
        await yieldTo(`${client} delete arrives`);
        const injected = this.injected.shift();
        if (injected) throw reject('delete', target, injected);
        const result = applyDelete(this.records.get(keyOf(target)), {
          target,
          now: this.now,
          limits: this.limits,
        });
        if (!result.ok) throw reject('delete', target, result.rejection);
        this.records.set(keyOf(target), result.tombstone);
        this.requests.push({ client, operation: 'delete', target, outcome: 'ok' });
        await yieldTo(`${client} delete answers`);
        observe(target);
        return result.accepted;
      },
    };
    if (options.broadcast) transport.known = (target) => heard.get(keyOf(target));
    return transport;
  }
}

/** A clock whose `sleep` resolves at once and only moves time forward: retries cost no real time. */
export function instantClock(start = 0) {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms: number) => {
      slept.push(ms);
      now += ms;
    },
  };
}
