/**
 * The contract between the local service's shadow engine and its fronts (HTTP, MQTT, rules).
 * The engine owns the store, quotas and ordering; fronts only translate wire formats.
 */
import type {
  DeleteAcceptedBody,
  GetAcceptedBody,
  NamedShadowListBody,
  Rejection,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../core/document.js';
import type { ShadowOperation } from '../core/topics.js';

/** Where a request came from: HTTP requests get their answer in the response; MQTT ones on `accepted`/`rejected`. */
export type RequestOrigin = 'http' | 'mqtt';

/** One shadow request as a front received it. */
export interface ShadowRequest {
  operation: ShadowOperation;
  target: ShadowTarget;
  /** The raw request body (may be empty for get and delete). */
  payload: Uint8Array;
  origin: RequestOrigin;
  /** The MQTT client id of the publisher, when known. */
  clientId?: string;
}

/** The engine's answer: the success body, or AWS's rejection. */
export type ShadowResult =
  | { ok: true; body: GetAcceptedBody | UpdateAcceptedBody | DeleteAcceptedBody }
  | { ok: false; rejection: Rejection };

/** A message the service publishes on a reserved topic. */
export interface OutgoingMessage {
  topic: string;
  payload: Uint8Array;
}

/** What fronts need from the engine. */
export interface ShadowEngineApi {
  /** Applies one request; updates to one shadow are applied one at a time in call order. */
  handle(request: ShadowRequest): Promise<ShadowResult>;
  /** ListNamedShadowsForThing. */
  listNamedShadows(
    thingName: string,
    page: { pageSize?: number; nextToken?: string },
  ): { ok: true; body: NamedShadowListBody } | { ok: false; rejection: Rejection };
  /** Subscribes to every message the service publishes; returns the unsubscribe function. */
  onMessage(listener: (message: OutgoingMessage) => void): () => void;
}
