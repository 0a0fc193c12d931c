/**
 * The contract between the update engine and the wire. A transport performs one request per call and
 * never retries: retrying, backoff and conflict resolution belong to the engine, so that one policy
 * governs every transport.
 */
import type {
  DeleteAcceptedBody,
  JsonObject,
  MetadataObject,
  ShadowMetadata,
  ShadowState,
  ShadowTarget,
  UpdateAcceptedBody,
  UpdateRequest,
} from '../core/document.js';

/**
 * A shadow document as a client sees it: the stored `state` (plus the computed `delta` when a GET
 * returned it), its `metadata` and its `version`. `timestamp` is present on documents read with GET.
 */
export interface ShadowDocument {
  state: ShadowState & { delta?: JsonObject };
  metadata: ShadowMetadata & { delta?: MetadataObject };
  version: number;
  timestamp?: number;
}

/**
 * What a transport knows, without a request, about a shadow's current state: a document, or that the
 * shadow does not exist and which `version` a create must name (0, or the deleted version + 1 after a
 * delete). The engine may skip its read and write against this; a stale answer only costs a 409 and a
 * re-read, never correctness.
 */
export type KnownState =
  | { exists: true; document: ShadowDocument }
  | {
      exists: false;
      /** The version a versioned create must name. */
      version: number;
    };

/** A request-level option every transport call accepts. */
export interface TransportCallOptions {
  /** Aborts the request; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * One request per call against the Device Shadow service (HTTP data plane, MQTT reserved topics or a
 * test double). Every failure is thrown as a typed error from `src/errors.ts`:
 * {@link ShadowNotFoundError} (404), `ShadowConflictError` (409), `ShadowThrottledError` (429),
 * `ShadowRejectedError` (other statuses, `statusCode` set), `ShadowTimeoutError`, `ShadowTransportError`
 * (no answer), `ShadowValidationError` (the answer did not have the documented shape).
 */
export interface ShadowTransport {
  /**
   * Reads a shadow.
   *
   * @returns the document, or `undefined` when the shadow does not exist (404)
   */
  get(target: ShadowTarget, options?: TransportCallOptions): Promise<ShadowDocument | undefined>;
  /**
   * Sends one update request as is (the engine sets `version` and `clientToken` when it wants them).
   *
   * @returns the `update/accepted` body; its `version` is the new version
   * @throws ShadowConflictError when `request.version` did not match (409)
   */
  update(
    target: ShadowTarget,
    request: UpdateRequest,
    options?: TransportCallOptions,
  ): Promise<UpdateAcceptedBody>;
  /**
   * Deletes a shadow.
   *
   * @returns the `delete/accepted` body; its `version` is the deleted document's version
   * @throws ShadowNotFoundError when there is no shadow (404)
   */
  delete(target: ShadowTarget, options?: TransportCallOptions): Promise<DeleteAcceptedBody>;
  /**
   * The newest state the transport has seen for `target` (for example from `update/documents` and
   * `delete/accepted` on MQTT), or `undefined` when it knows nothing. Optional: transports that learn nothing on their own omit it.
   */
  known?(target: ShadowTarget): KnownState | undefined;
  /** Releases what the transport owns (subscriptions, timers); never the client it wraps. */
  close?(): Promise<void>;
}
