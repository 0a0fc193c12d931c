/**
 * Schemas of every message body the Device Shadow service sends and of an update request, so that
 * transports and the device agent can check untrusted bytes from the network before using them.
 *
 * They are plain hand-written checks exposed as Standard Schema objects (`~standard.validate`), not zod: the
 * main entry must stay small enough for an app Lambda bundle (zod classic with its locales was 90 % of it),
 * and these shapes are simple enough that a schema library buys nothing. {@link parseWithSchema} accepts
 * these and any other synchronous Standard Schema (zod 3.24+, zod 4, valibot, arktype).
 *
 * The schemas check shape, not service rules (use {@link validateUpdateRequest} for AWS's request rules).
 * Unknown keys are kept (AWS may add fields); optional keys are exact (absent, never `undefined`).
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import {
  describeTarget,
  ShadowOptionsError,
  ShadowValidationError,
  targetContext,
  type ValidationIssue,
} from '../errors.js';
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
import { isJsonObject } from './json-value.js';

/** A schema of this module: a Standard Schema whose input is any value and whose output is `T`. */
export type MessageSchema<T> = StandardSchemaV1<unknown, T>;

/** Appends the problems of `value` (found at `path`) to `issues`. */
type Check = (value: unknown, path: readonly (string | number)[], issues: ValidationIssue[]) => void;

// The builders below are marked free of side effects, so that a bundler drops every schema an app does not
// use (the app-Lambda bundle, issue #11, needs only the answers of get, update and delete).

/* @__NO_SIDE_EFFECTS__ */ function schemaOf<T>(check: Check): MessageSchema<T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'shadow-sync',
      validate(value) {
        const issues: ValidationIssue[] = [];
        check(value, [], issues);
        return issues.length === 0 ? { value: value as T } : { issues };
      },
    },
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'number' ? String(value) : typeof value;
}

const isPlainObject: (value: unknown) => value is Record<string, unknown> = isJsonObject;

const isNatural = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0;

/** A check of a single value: `test` says whether it is acceptable, `expected` what it should have been. */
/* @__NO_SIDE_EFFECTS__ */ function simple(expected: string, test: (value: unknown) => boolean): Check {
  return (value, path, issues) => {
    if (!test(value))
      issues.push({ path: [...path], message: `expected ${expected}, got ${describe(value)}` });
  };
}

const stringCheck = simple('a string', (value) => typeof value === 'string');
// An arrow, not `Number.isInteger` itself: reading a global's property could have side effects for a bundler,
// which would then keep this check in bundles that never use it.
const integerCheck = simple('an integer', (value) => Number.isInteger(value));
/** Versions and epoch seconds. */
const naturalCheck = simple('a non-negative integer', isNatural);
const objectCheck = simple('an object', isPlainObject);

/** Each value of an array or object, with `check`. */
function eachOf(value: object, check: Check, path: readonly (string | number)[], issues: ValidationIssue[]) {
  for (const [key, item] of Object.entries(value))
    check(item, [...path, Array.isArray(value) ? Number(key) : key], issues);
}

const jsonValueCheck: Check = (value, path, issues) => {
  if (typeof value === 'object' && value !== null) eachOf(value, jsonValueCheck, path, issues);
  else
    simple(
      'a JSON value',
      (item) => item === null || ['string', 'boolean'].includes(typeof item) || Number.isFinite(item),
    )(value, path, issues);
};

const jsonObjectCheck: Check = (value, path, issues) => {
  if (isPlainObject(value)) jsonValueCheck(value, path, issues);
  else objectCheck(value, path, issues);
};

const leafMetadataCheck: Check = (value, path, issues) => {
  if (isPlainObject(value)) naturalCheck(value.timestamp, [...path, 'timestamp'], issues);
  else objectCheck(value, path, issues);
};

/** A leaf's `{ timestamp }`, an array of nodes or an object of nodes. */
const metadataNodeCheck: Check = (value, path, issues) => {
  if (typeof value !== 'object' || value === null)
    simple('a metadata node', () => false)(value, path, issues);
  else if (Array.isArray(value) || !isNatural((value as { timestamp?: unknown }).timestamp))
    eachOf(value, metadataNodeCheck, path, issues);
};

const metadataObjectCheck: Check = (value, path, issues) => {
  if (isPlainObject(value)) eachOf(value, metadataNodeCheck, path, issues);
  else objectCheck(value, path, issues);
};

/** `check`, or `null`. */
/* @__NO_SIDE_EFFECTS__ */ function nullable(check: Check): Check {
  return (value, path, issues) => {
    if (value !== null) check(value, path, issues);
  };
}

/** Either check, reporting the first's issues when both fail. */
/* @__NO_SIDE_EFFECTS__ */ function either(first: Check, second: Check): Check {
  return (value, path, issues) => {
    const firstIssues: ValidationIssue[] = [];
    first(value, path, firstIssues);
    if (firstIssues.length === 0) return;
    const secondIssues: ValidationIssue[] = [];
    second(value, path, secondIssues);
    if (secondIssues.length !== 0) issues.push(...firstIssues);
  };
}

const OPTIONAL = Symbol('optional');
type Field = Check | { [OPTIONAL]: Check };
/** A key that may be absent; when present it must pass `check` (`undefined` is not JSON: refused). */
/* @__NO_SIDE_EFFECTS__ */ function optional(check: Check): Field {
  return { [OPTIONAL]: check };
}

/** An object with these keys; other keys are kept unchecked. */
/* @__NO_SIDE_EFFECTS__ */ function looseObject(shape: Record<string, Field>): Check {
  const fields = Object.entries(shape);
  return (value, path, issues) => {
    if (!isPlainObject(value)) return objectCheck(value, path, issues);
    for (const [key, field] of fields) {
      const isOptional = typeof field !== 'function';
      if (!Object.hasOwn(value, key)) {
        if (!isOptional) issues.push({ path: [...path, key], message: 'required' });
        continue;
      }
      (isOptional ? field[OPTIONAL] : field)(value[key], [...path, key], issues);
    }
  };
}

const clientToken = optional(stringCheck);
const sections = { desired: optional(jsonObjectCheck), reported: optional(jsonObjectCheck) };
const metadataSections = { desired: optional(metadataObjectCheck), reported: optional(metadataObjectCheck) };

/** Any JSON value (finite numbers only). */
export const jsonValueSchema: MessageSchema<JsonValue> = schemaOf(jsonValueCheck);

/** A JSON object. */
export const jsonObjectSchema: MessageSchema<JsonObject> = schemaOf(jsonObjectCheck);

/** Metadata of one leaf: `{ timestamp }`. */
export const leafMetadataSchema: MessageSchema<LeafMetadata> = schemaOf(leafMetadataCheck);

/** A metadata node: a leaf's `{ timestamp }`, an array of nodes or an object of nodes. */
export const metadataNodeSchema: MessageSchema<MetadataNode> = schemaOf(metadataNodeCheck);

/** The metadata of an object: an object of metadata nodes. */
export const metadataObjectSchema: MessageSchema<MetadataObject> = schemaOf(metadataObjectCheck);

/** Body of GET / `get/accepted`. */
export const getAcceptedBodySchema: MessageSchema<GetAcceptedBody> = schemaOf(
  looseObject({
    state: looseObject({ ...sections, delta: optional(jsonObjectCheck) }),
    metadata: looseObject({ ...metadataSections, delta: optional(metadataObjectCheck) }),
    version: naturalCheck,
    timestamp: naturalCheck,
    clientToken,
  }),
);

/** The `state` of an update request or of its `update/accepted` echo: sections may be `null`. */
const updateStateCheck = nullable(
  looseObject({
    desired: optional(nullable(jsonObjectCheck)),
    reported: optional(nullable(jsonObjectCheck)),
  }),
);

const acceptedSectionMetadata = optional(either(leafMetadataCheck, metadataObjectCheck));

/** Body of `update/accepted` and of the UpdateThingShadow response. */
export const updateAcceptedBodySchema: MessageSchema<UpdateAcceptedBody> = schemaOf(
  looseObject({
    state: updateStateCheck,
    metadata: either(
      leafMetadataCheck,
      looseObject({ desired: acceptedSectionMetadata, reported: acceptedSectionMetadata }),
    ),
    version: naturalCheck,
    timestamp: naturalCheck,
    clientToken,
  }),
);

/** Body of `update/delta`. */
export const deltaBodySchema: MessageSchema<DeltaBody> = schemaOf(
  looseObject({
    version: naturalCheck,
    timestamp: naturalCheck,
    state: jsonObjectCheck,
    metadata: metadataObjectCheck,
    clientToken,
  }),
);

const snapshotCheck = looseObject({
  state: looseObject(sections),
  metadata: looseObject(metadataSections),
  version: naturalCheck,
});

/** Body of `update/documents`. */
export const documentsBodySchema: MessageSchema<DocumentsBody> = schemaOf(
  looseObject({
    previous: nullable(snapshotCheck),
    current: snapshotCheck,
    timestamp: naturalCheck,
    clientToken,
  }),
);

/** Body of every `.../rejected` topic. */
export const rejectedBodySchema: MessageSchema<RejectedBody> = schemaOf(
  looseObject({ code: integerCheck, message: stringCheck, timestamp: optional(naturalCheck), clientToken }),
);

/** Body of `delete/accepted` and of the DeleteThingShadow response. */
export const deleteAcceptedBodySchema: MessageSchema<DeleteAcceptedBody> = schemaOf(
  looseObject({ version: naturalCheck, timestamp: naturalCheck, clientToken }),
);

/** Body of ListNamedShadowsForThing. */
export const namedShadowListBodySchema: MessageSchema<NamedShadowListBody> = schemaOf(
  looseObject({
    results: (value, path, issues) => {
      if (Array.isArray(value)) eachOf(value, stringCheck, path, issues);
      else simple('an array', () => false)(value, path, issues);
    },
    nextToken: optional(stringCheck),
    timestamp: naturalCheck,
  }),
);

/** An update request document (shape only: `state` required, object or null; optional version and clientToken). */
export const updateRequestSchema: MessageSchema<UpdateRequest> = schemaOf(
  looseObject({ state: updateStateCheck, version: optional(naturalCheck), clientToken }),
);

/** Where a parsed value came from, for the error message. */
export interface ParseContext {
  /** The thing the value belongs to. */
  thingName?: string;
  /** The named shadow, absent for the classic shadow. */
  shadowName?: string;
  /** What the value is, for example `update/accepted body`. */
  what: string;
}

/** A Standard Schema issue path as plain keys (symbols become their description). */
function issuePath(path: StandardSchemaV1.Issue['path']): (string | number)[] {
  return (path ?? []).map((segment) => {
    const key = typeof segment === 'object' ? segment.key : segment;
    return typeof key === 'number' ? key : String(key);
  });
}

/**
 * Runs a synchronous Standard Schema and returns its output or its issues with plain paths.
 *
 * @throws {@link ShadowOptionsError} when the schema validates asynchronously (shadow-sync validates inside
 *   its update rounds, which must not wait on a schema)
 */
export function checkWithSchema<T>(
  schema: StandardSchemaV1<unknown, T>,
  value: unknown,
  context: ParseContext,
): { value: T; issues?: undefined } | { issues: ValidationIssue[] } {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) {
    const target = targetContext(context);
    throw new ShadowOptionsError(
      `The schema of the ${context.what} for ${describeTarget(target)} validates asynchronously; shadow-sync needs a synchronous schema`,
      target,
    );
  }
  if (result.issues === undefined) return { value: result.value };
  return { issues: result.issues.map((issue) => ({ path: issuePath(issue.path), message: issue.message })) };
}

/** The {@link ShadowValidationError} listing `issues` for a value described by `context`. */
export function validationError(issues: ValidationIssue[], context: ParseContext): ShadowValidationError {
  const target = targetContext(context);
  const listed = issues
    .map((issue) => `${issue.path.length === 0 ? '(root)' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
  return new ShadowValidationError(`Invalid ${context.what} for ${describeTarget(target)}: ${listed}`, {
    ...target,
    issues,
  });
}

/**
 * Validates an untrusted value with any synchronous Standard Schema (this module's schemas, zod 3.24+, zod 4,
 * valibot, arktype ...), turning its issues into a {@link ShadowValidationError} that lists every issue's path
 * and message and names the thing and shadow.
 *
 * @param schema - one of this module's schemas, or any synchronous Standard Schema
 * @param value - the untrusted value, typically `JSON.parse` of a network payload
 * @param context - the thing/shadow it belongs to and what it is
 * @returns the schema's output (this module's schemas return the value itself, unknown keys kept)
 * @throws {@link ShadowValidationError} when the value does not match
 * @throws {@link ShadowOptionsError} when the schema validates asynchronously
 * @example const body = parseWithSchema(deltaBodySchema, JSON.parse(text), { thingName: 'lamp', what: 'update/delta body' });
 */
export function parseWithSchema<T>(
  schema: StandardSchemaV1<unknown, T>,
  value: unknown,
  context: ParseContext,
): T {
  const result = checkWithSchema(schema, value, context);
  if (result.issues !== undefined) throw validationError(result.issues, context);
  return result.value;
}
