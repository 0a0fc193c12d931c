/**
 * Typed shadows from any Standard Schema library: the same shadow schema written with zod 3 (3.25, through the
 * `zod3` alias), zod 4 and valibot gives the same inferred types (checked by `npm run typecheck`) and the same
 * behaviour: documents read are validated, writes that break the schema are refused before any request, and a
 * blind `merge` is checked as a deep-partial patch (left-out keys fine, `null` only for optional keys).
 */
import * as v from 'valibot';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z as z4 } from 'zod';
import { z as z3 } from 'zod3';
import { ShadowOptionsError, ShadowValidationError } from '../../src/errors.js';
import { createShadowClient, type TypedShadowDocument } from '../../src/update/shadow-client.js';
import type { SectionOf } from '../../src/update/typed-schema.js';
import { InMemoryShadowServiceDouble, instantClock } from './in-memory-service-double.js';

interface Desired {
  power: 'on' | 'off';
  fan?: { speed: number; swing?: boolean } | undefined;
}
interface Reported {
  temp?: number | undefined;
}

const libraries = {
  'zod 3': {
    desired: z3.object({
      power: z3.enum(['on', 'off']),
      fan: z3.object({ speed: z3.number().int().min(1).max(5), swing: z3.boolean().optional() }).optional(),
    }),
    reported: z3.object({ temp: z3.number().optional() }),
  },
  'zod 4': {
    desired: z4.object({
      power: z4.enum(['on', 'off']),
      fan: z4.object({ speed: z4.number().int().min(1).max(5), swing: z4.boolean().optional() }).optional(),
    }),
    reported: z4.object({ temp: z4.number().optional() }),
  },
  valibot: {
    desired: v.object({
      power: v.picklist(['on', 'off']),
      fan: v.optional(
        v.object({
          speed: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(5)),
          swing: v.optional(v.boolean()),
        }),
      ),
    }),
    reported: v.object({ temp: v.optional(v.number()) }),
  },
};

it('infers the same section types with every library', () => {
  type Z3 = (typeof libraries)['zod 3'];
  type Z4 = (typeof libraries)['zod 4'];
  type V = (typeof libraries)['valibot'];
  expectTypeOf<SectionOf<Z3['desired']>>().toEqualTypeOf<Desired>();
  expectTypeOf<SectionOf<Z4['desired']>>().toEqualTypeOf<Desired>();
  expectTypeOf<SectionOf<V['desired']>>().toEqualTypeOf<Desired>();
  expectTypeOf<SectionOf<Z3['reported']>>().toEqualTypeOf<Reported>();
  expectTypeOf<SectionOf<Z4['reported']>>().toEqualTypeOf<Reported>();
  expectTypeOf<SectionOf<V['reported']>>().toEqualTypeOf<Reported>();
  expectTypeOf<TypedShadowDocument<Desired, Reported>['state']['desired']>().toEqualTypeOf<
    Desired | undefined
  >();
});

function setup() {
  const service = new InMemoryShadowServiceDouble();
  const shadows = createShadowClient({
    transport: service.transport('app'),
    clock: instantClock(),
    random: () => 0.5,
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
  });
  return { service, shadows };
}

describe.each(Object.entries(libraries))('typed shadows with %s', (_library, schema) => {
  it('infers the section types from the schema', async () => {
    const { shadows } = setup();
    const aircon = shadows.shadow('aircon-1', { schema });
    await aircon.update((current) => ({ desired: { power: current?.state.desired?.power ?? 'on' } }));
    // @ts-expect-error not one of the schema's values
    await aircon.merge({ desired: { power: 'loud' } }).catch(() => undefined);
    // @ts-expect-error power is required: it cannot be deleted
    await aircon.merge({ desired: { power: null } }).catch(() => undefined);
    await aircon.merge({ desired: { fan: null } });
  });

  it('validates documents read, listing the path of each issue', async () => {
    const { service, shadows } = setup();
    service.write({ thingName: 'lamp' }, { state: { desired: { power: 'maybe' } } });
    const error = await shadows
      .shadow('lamp', { schema })
      .get()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowValidationError);
    expect((error as ShadowValidationError).issues.map((issue) => issue.path)).toEqual([['power']]);
    expect((error as Error).message).toContain("thing 'lamp'");
  });

  it('refuses an update that breaks the schema before any request', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp', { schema });
    await aircon.update(() => ({ desired: { power: 'on' } }));
    const error = await aircon.update(() => ({ desired: { fan: { speed: 9 } } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowValidationError);
    expect((error as ShadowValidationError).issues[0]?.path).toEqual(['fan', 'speed']);
    expect(service.count('update')).toBe(1);
  });

  it('checks a blind merge as a deep-partial patch', async () => {
    const { service, shadows } = setup();
    const aircon = shadows.shadow('lamp', { schema });
    await aircon.merge({ desired: { fan: { speed: 2 } } }); // power and fan.swing left out: fine
    await aircon.merge({ desired: { fan: { swing: null } } }); // optional: may be deleted
    const wrong = await aircon.merge({ desired: { fan: { speed: 0 } } }).catch((e: unknown) => e);
    expect((wrong as ShadowValidationError).issues.map((issue) => issue.path)).toEqual([['fan', 'speed']]);
    const deleted = await aircon.merge({ desired: { power: null } as never }).catch((e: unknown) => e);
    expect(deleted).toBeInstanceOf(ShadowValidationError);
    expect((deleted as Error).message).toContain('cannot be deleted');
    const reported = await aircon.merge({ reported: { temp: 'warm' } as never }).catch((e: unknown) => e);
    expect((reported as ShadowValidationError).issues.map((issue) => issue.path)).toEqual([['temp']]);
    expect(service.count('update')).toBe(2);
  });
});

describe('schema option', () => {
  it('refuses a section that is not a Standard Schema when the handle is made', () => {
    const { shadows } = setup();
    const run = () => shadows.shadow('lamp', { schema: { desired: { parse: () => ({}) } as never } });
    expect(run).toThrow(/schema\.desired is not a Standard Schema/);
    let error: unknown;
    try {
      run();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ShadowOptionsError);
  });

  it('refuses a schema that validates asynchronously, naming it', async () => {
    const { service, shadows } = setup();
    service.write({ thingName: 'lamp' }, { state: { desired: { power: 'on' } } });
    const desired = z4.object({ power: z4.string() }).refine(async () => true);
    const error = await shadows
      .shadow('lamp', { schema: { desired } })
      .get()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowOptionsError);
    expect((error as Error).message).toContain('validates asynchronously');
  });
});
