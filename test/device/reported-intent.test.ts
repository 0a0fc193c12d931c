import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonObject, JsonValue } from '../../src/core/document.js';
import { mergeSection } from '../../src/core/merge.js';
import { createReportedIntent } from '../../src/device/reported-intent.js';

const key = fc.constantFrom('a', 'b', 'c');
const scalar = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('x', true));
/** A nested object without nulls (depth ≤ 3). */
const section: fc.Arbitrary<JsonObject> = fc.letrec<{ node: JsonObject; value: JsonValue }>((tie) => ({
  node: fc.dictionary(key, tie('value'), { maxKeys: 3, depthIdentifier: 'intent' }),
  value: fc.oneof(
    { depthSize: 'small', depthIdentifier: 'intent' },
    scalar,
    fc.array(scalar, { maxLength: 2 }),
    tie('node'),
  ),
})).node;
/** A device change: a section, with top-level deletions. */
const change = fc
  .tuple(section, fc.dictionary(key, fc.constant(null), { maxKeys: 1 }))
  .map(([values, deletions]) => ({ ...values, ...deletions }) as JsonObject);

type Op =
  | { kind: 'change'; patch: JsonObject }
  | { kind: 'send'; outcome: 'acked' | 'answer-lost' | 'request-lost' }
  | { kind: 'read' };
const op: fc.Arbitrary<Op> = fc.oneof(
  change.map((patch) => ({ kind: 'change' as const, patch })),
  fc
    .constantFrom('acked', 'answer-lost', 'request-lost')
    .map((outcome) => ({ kind: 'send' as const, outcome })),
  fc.constant({ kind: 'read' as const }),
);

describe('reported intent', () => {
  it('example: a confirmed leaf is not sent again; a change made while an update is in flight is', () => {
    const intent = createReportedIntent();
    intent.rebase({ power: 'off', fw: '1.0' });
    expect(intent.change({ power: 'on', fw: '1.0' })).toEqual({ power: 'on' });
    const first = intent.pending();
    expect(first?.patch).toEqual({ power: 'on' });
    intent.change({ power: 'off' }); // back again before the answer
    intent.acknowledge(first?.sent ?? []);
    expect(intent.pending()?.patch).toEqual({ power: 'off' });
    intent.acknowledge(intent.pending()?.sent ?? []);
    expect(intent.dirty).toBe(false);
    expect(intent.change({ fw: '1.0' })).toBeUndefined();
  });

  it('example: a refused leaf is given up alone, one at a time, and a change made since it was sent stays', () => {
    const intent = createReportedIntent();
    intent.rebase({ mode: 'eco', lights: { front: true } });
    intent.change({ mode: 'boost', blob: 'big', lights: { front: false } });
    const one = intent.pending(1);
    expect(one?.sent).toHaveLength(1);
    expect(intent.pending()?.sent).toHaveLength(3);
    const refused = intent.pending(3)?.sent ?? [];
    intent.change({ mode: 'turbo' }); // changed after the refused update was sent
    intent.discardLeaves(refused, { mode: 'eco', lights: { front: true } });
    expect(intent.wanted).toEqual({ mode: 'turbo', lights: { front: true } });
    expect(intent.pending()?.patch).toEqual({ mode: 'turbo' });
  });

  it('example: a read that overtook an update does not lose the update', () => {
    const intent = createReportedIntent();
    intent.rebase({ power: 'off' });
    intent.change({ power: 'on' });
    intent.pending(); // in flight
    intent.rebase({ power: 'off' }); // the read was answered before the update was applied
    expect(intent.wanted).toEqual({ power: 'on' });
    expect(intent.pending()?.patch).toEqual({ power: 'on' });
  });

  it('under lost requests, lost answers and reads at any time, one read and one update make the shadow equal the device', () => {
    fc.assert(
      fc.property(fc.option(section, { nil: undefined }), fc.array(op, { maxLength: 30 }), (initial, ops) => {
        const intent = createReportedIntent();
        let shadow = initial && Object.keys(initial).length > 0 ? initial : undefined;
        intent.rebase(shadow);
        let truth = shadow;
        for (const step of ops) {
          if (step.kind === 'change') {
            intent.change(step.patch);
            truth = mergeSection(truth, step.patch);
          } else if (step.kind === 'read') {
            intent.rebase(shadow);
          } else {
            const update = intent.pending();
            if (update === undefined) continue;
            if (step.outcome !== 'request-lost') shadow = mergeSection(shadow, update.patch);
            if (step.outcome === 'acked') intent.acknowledge(update.sent);
            else intent.unsure(); // the device only sees a timeout
          }
          // The intent always holds exactly the device's own values.
          expect(intent.wanted ?? {}).toEqual(truth ?? {});
        }
        intent.rebase(shadow);
        const update = intent.pending();
        if (update !== undefined) {
          shadow = mergeSection(shadow, update.patch);
          intent.acknowledge(update.sent);
        }
        expect(shadow ?? {}).toEqual(truth ?? {});
        expect(intent.dirty).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
