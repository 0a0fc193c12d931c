/**
 * Types inferred for typed shadows. The `expectTypeOf` and `@ts-expect-error` lines are checked by
 * `tsc -p .` (npm run typecheck); the runtime part checks the same calls against the test double.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import type { JsonObject } from '../../src/core/document.js';
import {
  createShadowClient,
  type ShadowHandle,
  type TypedShadowDocument,
} from '../../src/update/shadow-client.js';
import { InMemoryShadowServiceDouble } from './in-memory-service-double.js';

const schema = {
  desired: z.object({ power: z.enum(['on', 'off']), fan: z.object({ speed: z.number() }).optional() }),
  reported: z.object({ temp: z.number().optional() }),
};

describe('typed shadow types', () => {
  it('infers the section types for intents, merges and reads', async () => {
    const service = new InMemoryShadowServiceDouble();
    const shadows = createShadowClient({ transport: service.transport() });
    const aircon = shadows.shadow('aircon-1', { schema });

    const result = await aircon.update((current) => {
      expectTypeOf(current).toEqualTypeOf<
        | TypedShadowDocument<
            { power: 'on' | 'off'; fan?: { speed: number } | undefined },
            { temp?: number | undefined }
          >
        | undefined
      >();
      return { desired: { power: current?.state.desired?.power === 'on' ? 'off' : 'on' } };
    });
    expectTypeOf(result.document?.state.desired?.power).toEqualTypeOf<'on' | 'off' | undefined>();

    await aircon.merge({ desired: { fan: { speed: 2 } } });
    await aircon.merge({ desired: { fan: null } }); // optional key: may be deleted
    // @ts-expect-error power is required by the schema: it cannot be deleted
    await aircon.merge({ desired: { power: null } }).catch(() => undefined);
    // @ts-expect-error not one of the enum values
    await aircon.merge({ desired: { power: 'loud' } }).catch(() => undefined);

    const untyped = shadows.shadow('aircon-1');
    const read = await untyped.get();
    expectTypeOf(read.state.desired).toEqualTypeOf<JsonObject | undefined>();
    const named = shadows.shadow('aircon-1', { shadowName: 'config' });
    expectTypeOf(named).toEqualTypeOf<ShadowHandle<JsonObject, JsonObject>>();
    const halfTyped = shadows.shadow('aircon-1', { schema: { reported: schema.reported } });
    expectTypeOf(halfTyped).toEqualTypeOf<ShadowHandle<JsonObject, { temp?: number | undefined }>>();
    expect(read.state.desired).toEqual({ power: 'on' });
  });
});
