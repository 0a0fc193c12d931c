import { describe, expect, it } from 'vitest';
import { runDemo } from '../../examples/demo.js';
import { runCli } from '../../src/cli/run-cli.js';
import type { ShadowSummary } from '../../src/emulator/console/shadow-tracker.js';
import { openSse } from './sse-reader.js';

describe('the demo with the console', () => {
  it('serves the console while it runs and, kept open, after its summary', async () => {
    let consoleUrl: string | undefined;
    let watched: ShadowSummary[] = [];
    const summary = await runDemo({
      devices: 2,
      durationMs: 500,
      graceMs: 5_000,
      onStarted(addresses) {
        consoleUrl = addresses.consoleUrl;
      },
      async keepOpen(done) {
        // The run is over (its summary is ready) and the fleet is still up: the console shows it.
        expect(done.devices).toBe(2);
        const stream = await openSse(`${consoleUrl}/events`);
        try {
          watched = (await stream.next<{ shadows: ShadowSummary[] }>('snapshot')).shadows;
        } finally {
          stream.close();
        }
      },
    });
    expect(consoleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/console$/);
    expect(watched.map((s) => s.thing).sort()).toEqual(['aircon-1', 'aircon-2']);
    expect(summary.lostUpdates).toBe(0);
  });

  it('documents --keep-open and --no-console', async () => {
    const out: string[] = [];
    expect(await runCli(['demo', '--help'], { stdout: (line) => out.push(line), stderr: () => {} })).toBe(0);
    expect(out.join('\n')).toMatch(/--keep-open[\s\S]*--no-console/);
    const serveHelp: string[] = [];
    await runCli(['serve', '--help'], { stdout: (line) => serveHelp.push(line), stderr: () => {} });
    expect(serveHelp.join('\n')).toMatch(/--no-console[\s\S]*--console/);
    const err: string[] = [];
    expect(
      await runCli(['serve', '--console', '--no-console'], { stdout: () => {}, stderr: (l) => err.push(l) }),
    ).toBe(2);
    expect(err.join('\n')).toContain('--console and --no-console contradict each other');
  });
});
