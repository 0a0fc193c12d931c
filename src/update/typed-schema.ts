/**
 * Typed shadows: zod schemas for `desired` and `reported` that validate documents read and patches
 * written, and give `update` / `merge` their types.
 *
 * Validation never replaces data with zod's output (no transforms or defaults are applied): the stored
 * JSON is what it is, and the schema only says whether it is acceptable. That is also why the inferred
 * types are zod's INPUT types.
 */
import { z } from 'zod';
import type { JsonObject, ShadowState, ShadowTarget, UpdateState } from '../core/document.js';
import { parseWithSchema } from '../core/schemas.js';

/** Schemas of a typed shadow; each section is optional (an unchecked section is any JSON object). */
export interface ShadowSchema {
  desired?: z.ZodType;
  reported?: z.ZodType;
}

/** The JSON type of a section checked by schema `S` (or any object when unchecked). */
export type SectionOf<S> = [S] extends [z.ZodType] ? z.input<S> : JsonObject;

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
   * Validates a patch sent without knowing the document (a blind `merge`): each section against a
   * deep-partial form of its schema, where `null` may delete optional keys only.
   *
   * @throws ShadowValidationError listing every issue
   */
  patch(patch: UpdateState): void;
}

const SECTIONS = ['desired', 'reported'] as const;

/** A deep-partial form of an object schema, for patches; other schemas are kept as they are. */
function partialOf(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodObject) {
    const shape: Record<string, z.ZodType> = {};
    for (const [key, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      if (field instanceof z.ZodOptional) {
        shape[key] = partialOf(field.unwrap() as z.ZodType)
          .nullable()
          .optional();
      } else {
        shape[key] = partialOf(field).optional();
      }
    }
    // Keep the original's policy for unknown keys (strict objects stay strict).
    const catchall = (schema as z.ZodObject)._zod.def.catchall;
    const partial = z.object(shape);
    return catchall === undefined ? partial : partial.catchall(catchall as z.ZodType);
  }
  return schema;
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
  const context = {
    thingName: target.thingName,
    ...(target.shadowName === undefined ? {} : { shadowName: target.shadowName }),
  };
  const partials: ShadowSchema = {};
  for (const section of SECTIONS) {
    const sectionSchema = schema[section];
    if (sectionSchema !== undefined) partials[section] = partialOf(sectionSchema);
  }
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
        const sectionSchema = partials[section];
        const value = patch[section];
        if (sectionSchema !== undefined && value !== undefined && value !== null) {
          parseWithSchema(sectionSchema, value, { ...context, what: `${section} patch` });
        }
      }
    },
  };
}
