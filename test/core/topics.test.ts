import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseShadowTopic, shadowTopic, shadowTopicPrefix } from '../../src/core/topics.js';

describe('reserved shadow topics (spec 7)', () => {
  it('classic and named prefixes', () => {
    expect(shadowTopicPrefix({ thingName: 'lamp' })).toBe('$aws/things/lamp/shadow');
    expect(shadowTopicPrefix({ thingName: 'lamp', shadowName: 'cfg' })).toBe(
      '$aws/things/lamp/shadow/name/cfg',
    );
    expect(shadowTopic({ thingName: 'lamp', shadowName: 'cfg' }, 'update/delta')).toBe(
      '$aws/things/lamp/shadow/name/cfg/update/delta',
    );
  });

  it('parses request and response topics of classic and named shadows', () => {
    expect(parseShadowTopic('$aws/things/lamp/shadow/update')).toEqual({
      target: { thingName: 'lamp' },
      operation: 'update',
      response: undefined,
    });
    expect(parseShadowTopic('$aws/things/lamp/shadow/name/cfg/get/rejected')).toEqual({
      target: { thingName: 'lamp', shadowName: 'cfg' },
      operation: 'get',
      response: 'rejected',
    });
  });

  it.each([
    'aws/things/lamp/shadow/update',
    '$aws/things//shadow/update',
    '$aws/things/lamp/shadow/name//update',
    '$aws/things/lamp/shadow/patch',
    '$aws/things/lamp/shadow/get/delta',
    '$aws/things/lamp/shadow/delete/documents',
    '$aws/things/lamp/shadow/update/accepted/extra',
    '$aws/things/lamp/Shadow/update',
  ])('refuses %s (topics are case-sensitive; only documented suffixes)', (topic) => {
    expect(parseShadowTopic(topic)).toBeUndefined();
  });

  it('parse(build(target, suffix)) gives the target back for every documented suffix', () => {
    const name = fc.stringMatching(/^[a-zA-Z0-9:_-]{1,16}$/);
    const suffixes = [
      'get',
      'get/accepted',
      'get/rejected',
      'update',
      'update/accepted',
      'update/rejected',
      'update/delta',
      'update/documents',
      'delete',
      'delete/accepted',
      'delete/rejected',
    ] as const;
    fc.assert(
      fc.property(
        name,
        fc.option(name, { nil: undefined }),
        fc.constantFrom(...suffixes),
        (thing, shadow, suffix) => {
          const target =
            shadow === undefined ? { thingName: thing } : { thingName: thing, shadowName: shadow };
          const parsed = parseShadowTopic(shadowTopic(target, suffix));
          expect(parsed?.target).toEqual(target);
          expect(`${parsed?.operation}${parsed?.response === undefined ? '' : `/${parsed.response}`}`).toBe(
            suffix,
          );
        },
      ),
    );
  });
});
