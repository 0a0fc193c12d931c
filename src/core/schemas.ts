/**
 * zod schemas of every message body the Device Shadow service sends and of an update request, so that
 * transports and the device agent can check untrusted bytes from the network before using them.
 *
 * The schemas check shape, not service rules (use {@link validateUpdateRequest} for AWS's request rules).
 * Unknown keys are kept (AWS may add fields); optional keys are exact (absent, never `undefined`).
 */
import { z } from 'zod';
import { describeTarget, ShadowValidationError, type ValidationIssue } from '../errors.js';
import type {
  DeleteAcceptedBody,
  DeltaBody,
  DocumentsBody,
  GetAcceptedBody,
  JsonObject,
  JsonValue,
  LeafMetadata,
  MetadataNode,
  MetadataObject,
  NamedShadowListBody,
  RejectedBody,
  UpdateAcceptedBody,
  UpdateRequest,
} from './document.js';

/** Any JSON value (finite numbers only). */
export const jsonValueSchema: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValueSchema), jsonObjectSchema]),
);

/** A JSON object. */
export const jsonObjectSchema: z.ZodType<JsonObject> = z.lazy(() => z.record(z.string(), jsonValueSchema));

const epochSeconds = z.number().int().nonnegative();
const versionNumber = z.number().int().nonnegative();

/** Metadata of one leaf: `{ timestamp }`. */
export const leafMetadataSchema: z.ZodType<LeafMetadata> = z.looseObject({ timestamp: epochSeconds });

/** A metadata node: a leaf's `{ timestamp }`, an array of nodes or an object of nodes. */
export const metadataNodeSchema: z.ZodType<MetadataNode> = z.lazy(() =>
  z.union([leafMetadataSchema, z.array(metadataNodeSchema), metadataObjectSchema]),
);

/** The metadata of an object: an object of metadata nodes. */
export const metadataObjectSchema: z.ZodType<MetadataObject> = z.lazy(() =>
  z.record(z.string(), metadataNodeSchema),
);

const sections = {
  desired: jsonObjectSchema.exactOptional(),
  reported: jsonObjectSchema.exactOptional(),
};
const metadataSections = {
  desired: metadataObjectSchema.exactOptional(),
  reported: metadataObjectSchema.exactOptional(),
};
const clientToken = z.string().exactOptional();

/** Body of GET / `get/accepted`. */
export const getAcceptedBodySchema: z.ZodType<GetAcceptedBody> = z.looseObject({
  state: z.looseObject({ ...sections, delta: jsonObjectSchema.exactOptional() }),
  metadata: z.looseObject({ ...metadataSections, delta: metadataObjectSchema.exactOptional() }),
  version: versionNumber,
  timestamp: epochSeconds,
  clientToken,
});

/** The `state` of an update request or of its `update/accepted` echo: sections may be `null`. */
const updateStateSchema = z
  .looseObject({
    desired: jsonObjectSchema.nullable().exactOptional(),
    reported: jsonObjectSchema.nullable().exactOptional(),
  })
  .nullable();

const acceptedSectionMetadata = z.union([leafMetadataSchema, metadataObjectSchema]).exactOptional();

/** Body of `update/accepted` and of the UpdateThingShadow response. */
export const updateAcceptedBodySchema: z.ZodType<UpdateAcceptedBody> = z.looseObject({
  state: updateStateSchema,
  metadata: z.union([
    leafMetadataSchema,
    z.looseObject({ desired: acceptedSectionMetadata, reported: acceptedSectionMetadata }),
  ]),
  version: versionNumber,
  timestamp: epochSeconds,
  clientToken,
});

/** Body of `update/delta`. */
export const deltaBodySchema: z.ZodType<DeltaBody> = z.looseObject({
  version: versionNumber,
  timestamp: epochSeconds,
  state: jsonObjectSchema,
  metadata: metadataObjectSchema,
  clientToken,
});

const snapshotSchema = z.looseObject({
  state: z.looseObject(sections),
  metadata: z.looseObject(metadataSections),
  version: versionNumber,
});

/** Body of `update/documents`. */
export const documentsBodySchema: z.ZodType<DocumentsBody> = z.looseObject({
  previous: snapshotSchema.nullable(),
  current: snapshotSchema,
  timestamp: epochSeconds,
  clientToken,
});

/** Body of every `.../rejected` topic. */
export const rejectedBodySchema: z.ZodType<RejectedBody> = z.looseObject({
  code: z.number().int(),
  message: z.string(),
  timestamp: epochSeconds.exactOptional(),
  clientToken,
});

/** Body of `delete/accepted` and of the DeleteThingShadow response. */
export const deleteAcceptedBodySchema: z.ZodType<DeleteAcceptedBody> = z.looseObject({
  version: versionNumber,
  timestamp: epochSeconds,
  clientToken,
});

/** Body of ListNamedShadowsForThing. */
export const namedShadowListBodySchema: z.ZodType<NamedShadowListBody> = z.looseObject({
  results: z.array(z.string()),
  nextToken: z.string().exactOptional(),
  timestamp: epochSeconds,
});

/** An update request document (shape only: `state` required, object or null; optional version and clientToken). */
export const updateRequestSchema: z.ZodType<UpdateRequest> = z.looseObject({
  state: updateStateSchema,
  version: versionNumber.exactOptional(),
  clientToken,
});

/** Where a parsed value came from, for the error message. */
export interface ParseContext {
  /** The thing the value belongs to. */
  thingName?: string;
  /** The named shadow, absent for the classic shadow. */
  shadowName?: string;
  /** What the value is, for example `update/accepted body`. */
  what: string;
}

/**
 * Parses an untrusted value with a schema, turning zod's issues into a {@link ShadowValidationError} that
 * lists every issue's path and message and names the thing and shadow.
 *
 * @param schema - one of this module's schemas (or any zod schema)
 * @param value - the untrusted value, typically `JSON.parse` of a network payload
 * @param context - the thing/shadow it belongs to and what it is
 * @returns the parsed value (unknown keys kept)
 * @throws {@link ShadowValidationError} when the value does not match
 * @example const body = parseWithSchema(deltaBodySchema, JSON.parse(text), { thingName: 'lamp', what: 'update/delta body' });
 */
export function parseWithSchema<T>(schema: z.ZodType<T>, value: unknown, context: ParseContext): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues: ValidationIssue[] = result.error.issues.map((issue) => ({
    path: issue.path.map((segment) => (typeof segment === 'number' ? segment : String(segment))),
    message: issue.message,
  }));
  const listed = issues
    .map((issue) => `${issue.path.length === 0 ? '(root)' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
  const target: { thingName?: string; shadowName?: string } = {};
  if (context.thingName !== undefined) target.thingName = context.thingName;
  if (context.shadowName !== undefined) target.shadowName = context.shadowName;
  throw new ShadowValidationError(`Invalid ${context.what} for ${describeTarget(target)}: ${listed}`, {
    ...target,
    issues,
  });
}
