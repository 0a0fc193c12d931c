import type { StandardSchemaV1 } from '@standard-schema/spec';
import { describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate } from '../../src/core/apply-update.js';
import { getDocument } from '../../src/core/get-document.js';
import {
  deleteAcceptedBodySchema,
  deltaBodySchema,
  documentsBodySchema,
  getAcceptedBodySchema,
  jsonValueSchema,
  metadataNodeSchema,
  namedShadowListBodySchema,
  parseWithSchema,
  rejectedBodySchema,
  updateAcceptedBodySchema,
  updateRequestSchema,
} from '../../src/core/schemas.js';
import { isShadowValidationError, type ShadowValidationError } from '../../src/errors.js';

const target = { thingName: 'lamp', shadowName: 'cfg' };
const context = { ...target, what: 'message' };
/** What a body looks like after a trip over the network. */
const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** True when a schema accepts the value. */
const valid = (schema: StandardSchemaV1, value: unknown): boolean => {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) throw new Error('the message schemas are synchronous');
  return result.issues === undefined;
};

function failure(run: () => unknown): ShadowValidationError {
  try {
    run();
  } catch (error) {
    if (isShadowValidationError(error)) return error;
    throw error;
  }
  throw new Error('expected a ShadowValidationError');
}

describe('schemas accept every body the core produces', () => {
  const first = applyUpdate(
    undefined,
    { state: { desired: { on: true, rgb: [1, 2] } }, clientToken: 'c1' },
    { target, now: 1000 },
  );
  if (!first.ok) throw new Error('update rejected');
  const second = applyUpdate(
    first.shadow,
    { state: { reported: { on: false }, desired: null } },
    { target, now: 2000 },
  );
  if (!second.ok) throw new Error('update rejected');
  const cleared = applyUpdate(second.shadow, { state: null }, { target, now: 3000 });
  if (!cleared.ok) throw new Error('update rejected');

  it('update/accepted (object, null-section and null-state forms)', () => {
    for (const body of [first.accepted, second.accepted, cleared.accepted]) {
      expect(parseWithSchema(updateAcceptedBodySchema, wire(body), context)).toEqual(body);
    }
  });

  it('update/delta and update/documents (with and without previous)', () => {
    expect(parseWithSchema(deltaBodySchema, wire(first.delta), context)).toEqual(first.delta);
    expect(parseWithSchema(documentsBodySchema, wire(first.documents), context)).toEqual(first.documents);
    expect(parseWithSchema(documentsBodySchema, wire(second.documents), context)).toEqual(second.documents);
  });

  it('get/accepted (with delta metadata) and delete/accepted', () => {
    const got = getDocument(first.shadow, {
      target,
      now: 5000,
      includeDeltaMetadata: true,
      clientToken: 'g',
    });
    expect(got.ok && parseWithSchema(getAcceptedBodySchema, wire(got.body), context)).toEqual(
      got.ok && got.body,
    );
    const deleted = applyDelete(first.shadow, { target, now: 6000 });
    expect(deleted.ok && parseWithSchema(deleteAcceptedBodySchema, wire(deleted.accepted), context)).toEqual(
      deleted.ok && deleted.accepted,
    );
  });

  it('rejected bodies, named shadow lists and update requests', () => {
    const rejected = { code: 404, message: "No shadow exists with name: 'cfg'", clientToken: 't' };
    expect(parseWithSchema(rejectedBodySchema, rejected, context)).toEqual(rejected);
    expect(
      parseWithSchema(rejectedBodySchema, { code: 409, message: 'Version conflict', timestamp: 5 }, context),
    ).toBeTruthy();
    const list = { results: ['a', 'b'], nextToken: 'n', timestamp: 1 };
    expect(parseWithSchema(namedShadowListBodySchema, list, context)).toEqual(list);
    const request = { state: { desired: { a: 1 }, reported: null }, version: 3, clientToken: 'x' };
    expect(parseWithSchema(updateRequestSchema, request, context)).toEqual(request);
  });

  it('keeps fields it does not know (AWS may add some)', () => {
    const body = { version: 1, timestamp: 2, extra: { a: 1 } };
    expect(parseWithSchema(deleteAcceptedBodySchema, body, context)).toEqual(body);
  });
});

describe('schemas reject malformed bodies', () => {
  it('lists every issue with its path and names the shadow', () => {
    const error = failure(() =>
      parseWithSchema(
        deltaBodySchema,
        { version: -1, timestamp: 1.5, state: { a: 1 }, metadata: { a: 'x' } },
        {
          ...target,
          what: 'update/delta body',
        },
      ),
    );
    expect(error.message).toMatch(/^Invalid update\/delta body for shadow 'cfg' of thing 'lamp': /);
    expect(error.thingName).toBe('lamp');
    expect(error.shadowName).toBe('cfg');
    const paths = error.issues.map((issue) => issue.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['version', 'timestamp', 'metadata.a']));
    for (const issue of error.issues) expect(error.message).toContain(issue.message);
  });

  it('reports the root and names the classic shadow when there is no shadow name', () => {
    const error = failure(() =>
      parseWithSchema(rejectedBodySchema, 'oops', { thingName: 'lamp', what: 'rejected body' }),
    );
    expect(error.message).toMatch(/^Invalid rejected body for classic shadow of thing 'lamp': \(root\): /);
    expect(error.shadowName).toBeUndefined();
    expect(failure(() => parseWithSchema(rejectedBodySchema, 1, { what: 'x' })).message).toContain(
      'unknown thing',
    );
  });

  it('rejects non-JSON numbers, wrong types and explicit undefined for optional keys', () => {
    expect(valid(jsonValueSchema, { a: [1, Number.NaN] })).toBe(false);
    expect(valid(jsonValueSchema, { a: [1, { b: 'c' }, null] })).toBe(true);
    expect(valid(metadataNodeSchema, { a: [{ timestamp: 1 }], timestamp: { timestamp: 2 } })).toBe(true);
    expect(valid(metadataNodeSchema, { a: 1 })).toBe(false);
    expect(valid(deleteAcceptedBodySchema, { version: 1, timestamp: 2, clientToken: undefined })).toBe(false);
    expect(valid(updateRequestSchema, { state: { desired: [1] } })).toBe(false);
    expect(valid(updateRequestSchema, { version: 1 })).toBe(false);
    expect(valid(getAcceptedBodySchema, { state: {}, metadata: {}, version: '1', timestamp: 1 })).toBe(false);
    expect(
      valid(documentsBodySchema, { current: { state: {}, metadata: {}, version: 1 }, timestamp: 1 }),
    ).toBe(false);
    expect(valid(namedShadowListBodySchema, { results: [1], timestamp: 1 })).toBe(false);
  });
});
