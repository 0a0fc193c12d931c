/**
 * Types of shadow documents, requests and every message body the Device Shadow service emits.
 * Field names and shapes follow `shared/spec/shadow-service.md` section 1.
 */

/** A JSON scalar. */
export type JsonPrimitive = string | number | boolean | null;
/** Any JSON value. */
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
/** A JSON object. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Metadata of one leaf: the epoch second it was last written. */
export interface LeafMetadata {
  timestamp: number;
}
/** Metadata mirrors the state tree: objects stay objects, arrays get one entry per element, leaves become {@link LeafMetadata}. */
export type MetadataNode = LeafMetadata | MetadataNode[] | MetadataObject;
/** Metadata of an object. */
export interface MetadataObject {
  [key: string]: MetadataNode;
}

/** The two writable sections of a stored shadow; a section is present only when non-empty. */
export interface ShadowState {
  desired?: JsonObject;
  reported?: JsonObject;
}

/** The stored metadata of a shadow, one tree per present section. */
export interface ShadowMetadata {
  desired?: MetadataObject;
  reported?: MetadataObject;
}

/** A shadow as the service stores it (no delta: the delta is computed on read). */
export interface StoredShadow {
  state: ShadowState;
  metadata: ShadowMetadata;
  version: number;
}

/**
 * What is left of a deleted shadow: the version the next created document continues from.
 * `version` is the deleted document's version + 1 (spec section 4), `deletedAt` is epoch milliseconds.
 */
export interface ShadowTombstone {
  deleted: true;
  version: number;
  deletedAt: number;
}

/** What a store holds for one (thing, shadow name): a live shadow, a tombstone, or nothing. */
export type ShadowRecord = StoredShadow | ShadowTombstone;

/** Identifies one shadow; `shadowName` is absent for the classic (unnamed) shadow. */
export interface ShadowTarget {
  thingName: string;
  shadowName?: string;
}

/** The `state` section of an update request: `null` values delete, `null` sections remove. */
export interface UpdateState {
  desired?: JsonObject | null;
  reported?: JsonObject | null;
}

/** An update request document (spec 1.2). */
export interface UpdateRequest {
  state: UpdateState | null;
  version?: number;
  clientToken?: string;
}

/** Body of GET / `get/accepted` (spec 1.1). */
export interface GetAcceptedBody {
  state: ShadowState & { delta?: JsonObject };
  metadata: ShadowMetadata & { delta?: MetadataObject };
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** Body of `update/accepted` and of the UpdateThingShadow HTTP response (spec 1.3): the request echoed. */
export interface UpdateAcceptedBody {
  state: UpdateState | null;
  metadata:
    | { desired?: MetadataObject | LeafMetadata; reported?: MetadataObject | LeafMetadata }
    | LeafMetadata;
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** Body of `update/delta` (spec 1.4): the full current delta. */
export interface DeltaBody {
  version: number;
  timestamp: number;
  state: JsonObject;
  metadata: MetadataObject;
  clientToken?: string;
}

/** One side of an `update/documents` message. */
export interface DocumentSnapshot {
  state: ShadowState;
  metadata: ShadowMetadata;
  version: number;
}

/** Body of `update/documents` (spec 1.5); `previous` is null when the update created the shadow. */
export interface DocumentsBody {
  previous: DocumentSnapshot | null;
  current: DocumentSnapshot;
  timestamp: number;
  clientToken?: string;
}

/** Body of `delete/accepted` and of the DeleteThingShadow HTTP response (spec 1.7). */
export interface DeleteAcceptedBody {
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** Body of every `.../rejected` topic (spec 1.6, 5.2). */
export interface RejectedBody {
  code: number;
  message: string;
  timestamp?: number;
  clientToken?: string;
}

/** Body of ListNamedShadowsForThing (spec 1.8). */
export interface NamedShadowListBody {
  results: string[];
  nextToken?: string;
  timestamp: number;
}

/** The REST error type the AWS SDK maps a status to (spec 8.3). */
export type ShadowErrorType =
  | 'InvalidRequestException'
  | 'UnauthorizedException'
  | 'ForbiddenException'
  | 'ResourceNotFoundException'
  | 'MethodNotAllowedException'
  | 'ConflictException'
  | 'RequestEntityTooLargeException'
  | 'UnsupportedDocumentEncodingException'
  | 'ThrottlingException'
  | 'InternalFailureException'
  | 'ServiceUnavailableException';

/** Why the service refused a request: the HTTP status, AWS's exact message and the REST error type. */
export interface Rejection {
  code: number;
  message: string;
  errorType: ShadowErrorType;
  /** The request's clientToken when it could be read, for the MQTT `rejected` echo. */
  clientToken?: string;
}
