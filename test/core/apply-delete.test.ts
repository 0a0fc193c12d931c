import { describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate } from '../../src/core/apply-update.js';
import type { ShadowRecord, StoredShadow } from '../../src/core/document.js';
import { isShadowError } from '../../src/errors.js';

const target = { thingName: 'lamp' };
const stored: StoredShadow = Object.freeze({
  state: { reported: { on: true } },
  metadata: { reported: { on: { timestamp: 1591057000 } } },
  version: 4,
}) as StoredShadow;

describe('applyDelete', () => {
  it('reports the deleted version and leaves a tombstone one version higher (DG-flow {"version":4,"timestamp":1591057529})', () => {
    const result = applyDelete(stored, { target, now: 1591057529123 });
    expect(result).toEqual({
      ok: true,
      tombstone: { deleted: true, version: 5, deletedAt: 1591057529123 },
      accepted: { version: 4, timestamp: 1591057529 },
    });
    expect(JSON.stringify(result.ok && result.accepted)).toBe('{"version":4,"timestamp":1591057529}');
  });

  it('echoes the clientToken of the request', () => {
    const result = applyDelete(stored, { target, now: 0, clientToken: 'del-1' });
    expect(result.ok && result.accepted).toEqual({ version: 4, timestamp: 0, clientToken: 'del-1' });
  });

  it('answers 404 with the thing name for a missing classic shadow', () => {
    expect(applyDelete(undefined, { target, now: 0 })).toEqual({
      ok: false,
      rejection: {
        code: 404,
        message: "No shadow exists with name: 'lamp'",
        errorType: 'ResourceNotFoundException',
      },
    });
  });

  it('answers 404 with the shadow name for a missing named shadow, echoing the clientToken', () => {
    const result = applyDelete(undefined, {
      target: { thingName: 'lamp', shadowName: 'cfg' },
      now: 0,
      clientToken: 't',
    });
    expect(result).toEqual({
      ok: false,
      rejection: {
        code: 404,
        message: "No shadow exists with name: 'cfg'",
        errorType: 'ResourceNotFoundException',
        clientToken: 't',
      },
    });
  });

  it('answers 404 for an already deleted shadow (a tombstone is no shadow)', () => {
    const first = applyDelete(stored, { target, now: 1000 });
    if (!first.ok) throw new Error('first delete rejected');
    expect(applyDelete(first.tombstone, { target, now: 2000 }).ok).toBe(false);
  });

  it('rejects a bad thing or shadow name with 400 before looking at the record', () => {
    const result = applyDelete(stored, { target: { thingName: 'has space' }, now: 0, clientToken: 'x' });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.rejection).toMatchObject({
      code: 400,
      errorType: 'InvalidRequestException',
      clientToken: 'x',
    });
    expect(applyDelete(stored, { target: { thingName: 'lamp', shadowName: 'a/b' }, now: 0 }).ok).toBe(false);
  });

  it('continues the numbering across delete and re-create: delete V, re-create V + 2, delete again reports V + 2', () => {
    const deleted = applyDelete(stored, { target, now: 10_000 });
    if (!deleted.ok) throw new Error('delete rejected');
    const recreated = applyUpdate(
      deleted.tombstone,
      { state: { desired: { on: false } } },
      { target, now: 20_000 },
    );
    if (!recreated.ok) throw new Error('update rejected');
    expect(recreated.shadow.version).toBe(6);
    expect(recreated.documents.previous).toBeNull();
    const again = applyDelete(recreated.shadow, { target, now: 30_000 });
    expect(again.ok && again.accepted.version).toBe(6);
    expect(again.ok && again.tombstone.version).toBe(7);
  });

  it('never mutates the stored shadow', () => {
    const prior: ShadowRecord = structuredClone(stored);
    applyDelete(prior, { target, now: 5 });
    expect(prior).toEqual(stored);
  });

  it('throws ShadowOptionsError for a clock that is not a number and for invalid limits', () => {
    expect(() => applyDelete(stored, { target, now: Number.NaN })).toThrow(/now/);
    try {
      applyDelete(stored, { target, now: 0, limits: { maxThingNameLength: 0 } });
      expect.unreachable();
    } catch (error) {
      expect(isShadowError(error) && error.code).toBe('OPTIONS');
    }
  });
});
