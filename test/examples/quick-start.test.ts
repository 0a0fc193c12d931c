import { describe, expect, it } from 'vitest';
import { runCoreWalkthrough } from '../../examples/core-walkthrough.js';
import { INCREMENTS_EACH, runQuickStart, WRITERS } from '../../examples/quick-start.js';

describe('examples', () => {
  it('quick start: five independent racing writers all land under the quota, the no-op is skipped, delete then 404', async () => {
    const lines: string[] = [];
    const result = await runQuickStart((line) => lines.push(line));
    expect(result.counter).toBe(WRITERS * INCREMENTS_EACH);
    // create + the increments + the reported merge; the skipped no-op adds no version.
    expect(result.version).toBe(WRITERS * INCREMENTS_EACH + 2);
    expect(result.skipped).toBe(true);
    expect(lines.at(-1)).toMatch(/after delete: .*aircon-1/);
  });

  it('core walkthrough: runs the documented steps and ends at version 5', () => {
    const log = console.log;
    console.log = () => {};
    try {
      expect(runCoreWalkthrough()).toBe(5);
    } finally {
      console.log = log;
    }
  });
});
