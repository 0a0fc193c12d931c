/**
 * Typed shadows: schemas for `desired` and `reported` that validate documents read and patches written,
 * and give `update` / `merge` their types.
 *
 * Any synchronous Standard Schema works (zod 3.24+, zod 4, valibot, arktype ...): shadow-sync only calls
 * `schema['~standard'].validate` and reads the schema's type through `@standard-schema/spec` (types only), so
 * the user's own copy and version of their schema library is the one that runs.
 *
 * Validation never replaces data with the schema's output (no transforms or defaults are applied): the stored
 * JSON is what it is, and the schema only says whether it is acceptable. That is also why the inferred types
 * are the schemas' INPUT types.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { JsonObject, ShadowState, ShadowTarget, UpdateState } from '../core/document.js';
import { isJsonObject } from '../core/json-value.js';
import { checkWithSchema, type ParseContext, parseWithSchema, validationError } from '../core/schemas.js';
import { ShadowOptionsError, targetContext, type ValidationIssue } from '../errors.js';

/** Schemas of a typed shadow; each section is optional (an unchecked section is any JSON object). */
export interface ShadowSchema {
  desired?: StandardSchemaV1;
  reported?: StandardSchemaV1;
}

/** The JSON type of a section checked by schema `S` (or any object when unchecked). */
export type SectionOf<S> = [S] extends [StandardSchemaV1] ? StandardSchemaV1.InferInput<S> : JsonObject;

/**
 * A partial update of a section of type `T`: every key optional, `null` deletes an optional key, nested
 * objects are partial too, arrays and scalars are whole values.
 */
export type SectionPatch<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: SectionPatch<T[K]> | (undefined extends T[K] ? null : never) }
    : T;

/** The value an intent returns or `merge` takes: partial sections; `null` removes a section. */
export interface ShadowPatch<D = JsonObject, R = JsonObject> {
  desired?: SectionPatch<D> | null;
  reported?: SectionPatch<R> | null;
}

/** Checks sections against a {@link ShadowSchema}. */
export interface SectionValidator {
  /**
   * Validates a document's state: every present section in full (absent sections are not checked:
   * a shadow fills in over time and the service never stores an empty section).
   *
   * @throws ShadowValidationError listing every issue
   */
  state(state: ShadowState, what: string): void;
  /**
   * Validates a patch sent without knowing the document (a blind `merge`) as a deep-partial form of each
   * section's schema, where `null` may delete optional keys only.
   *
   * @throws ShadowValidationError listing every issue
   */
  patch(patch: UpdateState): void;
}

const SECTIONS = ['desired', 'reported'] as const;

const isPlainObject: (value: unknown) => value is Record<string, unknown> = isJsonObject;

/** The patch without its `null` (delete) values, and the paths of those deletes. */
function withoutDeletes(
  patch: Record<string, unknown>,
  path: string[],
  deletes: string[][],
): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) deletes.push([...path, key]);
    else kept[key] = isPlainObject(value) ? withoutDeletes(value, [...path, key], deletes) : value;
  }
  return kept;
}

/**
 * True when `path` names a key the patch leaves out: it walks objects only (arrays are whole values, so an
 * issue inside one is always real) and ends on a key missing from an object the patch has.
 */
function isLeftOut(patch: Record<string, unknown>, path: readonly (string | number)[]): boolean {
  if (path.length === 0) return false;
  let node: unknown = patch;
  for (const key of path) {
    if (!isPlainObject(node) || typeof key !== 'string') return false;
    if (!Object.hasOwn(node, key)) return true;
    node = node[key];
  }
  return false;
}

const samePath = (a: readonly (string | number)[], b: readonly (string | number)[]) =>
  a.length === b.length && a.every((key, index) => key === b[index]);

/**
 * Checks a partial section against a section schema. A schema library cannot be asked for a deep-partial
 * form of a schema in general, so the patch (with its deletes removed) is checked against the full schema
 * and every issue about a key the patch leaves out is dropped: what remains is wrong values and unknown keys.
 * A delete (`null`) whose key the schema then reports missing deletes a required key, which is refused.
 * (A whole-object refinement that needs keys the patch leaves out is reported too: such schemas can only be
 * checked on whole documents, with `update`.)
 */
function patchIssues(schema: StandardSchemaV1, patch: Record<string, unknown>, context: ParseContext) {
  const deletes: string[][] = [];
  const kept = withoutDeletes(patch, [], deletes);
  const result = checkWithSchema(schema, kept, context);
  if (result.issues === undefined) return [];
  const issues: ValidationIssue[] = [];
  for (const issue of result.issues) {
    if (deletes.some((path) => samePath(path, issue.path))) {
      issues.push({
        path: issue.path,
        message: `required by the schema: cannot be deleted (${issue.message})`,
      });
    } else if (!isLeftOut(kept, issue.path)) issues.push(issue);
  }
  return issues;
}

/**
 * Builds a {@link SectionValidator} for a shadow, or `undefined` when it has no schema.
 *
 * @param schema - the shadow's schemas
 * @param target - the shadow, named in error messages
 */
export function createSectionValidator(
  schema: ShadowSchema | undefined,
  target: ShadowTarget,
): SectionValidator | undefined {
  if (schema === undefined) return undefined;
  const problem = shadowSchemaProblem(schema);
  if (problem !== undefined) throw new ShadowOptionsError(`shadow('${target.thingName}'): ${problem}`);
  const context = targetContext(target);
  return {
    state(state, what) {
      for (const section of SECTIONS) {
        const sectionSchema = schema[section];
        const value = state[section];
        if (sectionSchema !== undefined && value !== undefined) {
          parseWithSchema(sectionSchema, value, { ...context, what: `${section} section of ${what}` });
        }
      }
    },
    patch(patch) {
      for (const section of SECTIONS) {
        const sectionSchema = schema[section];
        const value = patch[section];
        if (sectionSchema === undefined || !isPlainObject(value)) continue;
        const where = { ...context, what: `${section} patch` };
        const issues = patchIssues(sectionSchema, value, where);
        if (issues.length > 0) throw validationError(issues, where);
      }
    },
  };
}

/** What is wrong with a handle's `schema` option (first problem found), so it fails when the handle is made. */
function shadowSchemaProblem(schema: unknown): string | undefined {
  if (!isPlainObject(schema)) return 'schema must be an object { desired?, reported? }';
  for (const key of Object.keys(schema)) {
    if (key !== 'desired' && key !== 'reported')
      return `schema has an unknown key '${key}' (known: desired, reported)`;
    const section = schema[key] as { '~standard'?: { validate?: unknown } } | undefined;
    if (section !== undefined && typeof section?.['~standard']?.validate !== 'function') {
      return `schema.${key} is not a Standard Schema (zod 3.24+, zod 4, valibot, arktype ...)`;
    }
  }
  return undefined;
}
