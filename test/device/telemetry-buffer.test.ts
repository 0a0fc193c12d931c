import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createTelemetryBuffer } from '../../src/device/telemetry-buffer.js';

describe('telemetry buffer', () => {
  it('keeps the newest messages up to its capacity, oldest first, and counts the drops', () => {
    const buffer = createTelemetryBuffer<number>(3);
    for (let i = 1; i <= 5; i++) buffer.push(i);
    expect(buffer.size).toBe(3);
    expect(buffer.dropped).toBe(2);
    expect(buffer.drain()).toEqual([3, 4, 5]);
    expect(buffer.size).toBe(0);
    buffer.push(6);
    expect(buffer.drain()).toEqual([6]);
    expect(buffer.dropped).toBe(2);
  });

  it('with capacity 0 keeps nothing and counts every message as dropped', () => {
    const buffer = createTelemetryBuffer<string>(0);
    buffer.push('a');
    buffer.push('b');
    expect(buffer.drain()).toEqual([]);
    expect(buffer.dropped).toBe(2);
  });

  it('behaves like a list trimmed to its last `capacity` entries, across any pushes and drains', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.oneof(fc.integer(), fc.constant('drain' as const)), { maxLength: 60 }),
        (capacity, ops) => {
          const buffer = createTelemetryBuffer<number>(capacity);
          let model: number[] = [];
          let dropped = 0;
          for (const op of ops) {
            if (op === 'drain') {
              expect(buffer.drain()).toEqual(model);
              model = [];
            } else {
              model.push(op);
              if (model.length > capacity) {
                model.shift();
                dropped++;
              }
              buffer.push(op);
            }
            expect(buffer.size).toBe(model.length);
            expect(buffer.dropped).toBe(dropped);
          }
        },
      ),
    );
  });
});
