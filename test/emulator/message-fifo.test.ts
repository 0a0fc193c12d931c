/** The broker router's O(1) FIFO against an array model. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MessageFifo } from '../../src/emulator/message-fifo.js';

describe('MessageFifo', () => {
  it('behaves as an array used with push and shift, across compactions', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.nat(3000).map((n) => ({ push: n })),
            fc.nat(3000).map((n) => ({ shift: n })),
          ),
          {
            maxLength: 30,
          },
        ),
        (operations) => {
          const fifo = new MessageFifo<number>();
          const model: number[] = [];
          let next = 0;
          for (const operation of operations) {
            if ('push' in operation) {
              for (let i = 0; i < operation.push; i++) {
                expect(fifo.push(next)).toBe(model.push(next));
                next++;
              }
            } else {
              for (let i = 0; i < operation.shift; i++) expect(fifo.shift()).toBe(model.shift());
            }
            expect(fifo.length).toBe(model.length);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
