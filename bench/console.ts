/**
 * The web console's speed, measured in headless Chromium (Debian's package, driven by playwright-core):
 *
 * 1. first paint with 1,000 shadows on loopback (goal < 300 ms): navigation start → the list rendered from the
 *    SSE snapshot, and the browser's first contentful paint; against the named peer "one polling sweep" (the AWS
 *    SDK reading all 1,000 shadows with GetThingShadow, 10 at a time), which is what a page without the service's
 *    own events would need per refresh;
 * 2. live latency (goal < 100 ms): the service accepting an update (the engine's clock, which dates the summary)
 *    → the page having applied it to the DOM, over updates sent one at a time;
 * 3. the demo's 50 air conditioners under app traffic with the console open on the fleet and one unit: event lag,
 *    long tasks (> 50 ms) and animation frames that took longer than 50 ms; and a screenshot for the README.
 *
 * Run: `npx tsx bench/console.ts [--quick] [--screenshot docs/console.png]`. Writes bench/results/console.md and
 * console.json. Figures come from a shared 2-core machine; they are reported, never asserted in tests.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { GetThingShadowCommand, IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { Browser, Page } from 'playwright-core';
import { runDemo } from '../examples/demo.js';
import { startShadowService } from '../src/emulator/index.js';
import { launchChromium } from '../test/console/chromium.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const quick = process.argv.includes('--quick');
const shotAt = process.argv.indexOf('--screenshot');
const screenshot = shotAt > 0 ? process.argv[shotAt + 1] : undefined;
const encoder = new TextEncoder();

interface PageMetrics {
  events: number;
  lagSamples: number[];
  longTasks: number;
  longTaskMs: number;
}

const median = (values: number[]) => quantile(values, 0.5);
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}
const round = (value: number) => Math.round(value * 10) / 10;

async function metricsOf(page: Page): Promise<PageMetrics> {
  return (await page.evaluate('window.shadowConsole.metrics')) as PageMetrics;
}

async function firstPaint(browser: Browser, runs: number) {
  const service = await startShadowService({ console: true, limits: { requestsPerSecondPerThing: 1e6 } });
  try {
    for (let i = 0; i < 1000; i++) {
      const thingName = `thing-${String(i).padStart(4, '0')}`;
      const payload = encoder.encode(
        JSON.stringify({
          state: {
            desired: { power: 'on', targetTemp: 21 + (i % 5) },
            reported: { power: 'on', targetTemp: 21 },
          },
        }),
      );
      const target = i % 4 === 0 ? { thingName, shadowName: 'settings' } : { thingName };
      await service.engine.handle({ operation: 'update', target, origin: 'http', payload });
    }
    const ready: number[] = [];
    const fcp: number[] = [];
    const busy: number[] = [];
    const scripting: number[] = [];
    const layout: number[] = [];
    for (let run = 0; run < runs; run++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
      // Main-thread time the page spent (script, style, layout, paint...) up to the first paint: unlike wall time
      // it barely depends on what else loads the machine.
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Performance.enable');
      await page.goto(service.consoleUrl as string);
      // The page notes when the frame after its first rendering of the list ran (from navigation start).
      await page.waitForFunction('window.shadowConsole?.firstPaintMs !== undefined');
      const painted = (await page.evaluate('window.shadowConsole.firstPaintMs')) as number;
      ready.push(painted);
      const { metrics } = await cdp.send('Performance.getMetrics');
      const metric = (name: string) => (metrics.find((m) => m.name === name)?.value ?? 0) * 1000;
      busy.push(metric('TaskDuration'));
      scripting.push(metric('ScriptDuration'));
      layout.push(metric('LayoutDuration') + metric('RecalcStyleDuration'));
      const entry = (await page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN",
      )) as number;
      fcp.push(entry);
      await page.close();
    }
    // The peer: one polling sweep over the same 1,000 shadows with the AWS SDK, 10 requests at a time.
    const sdk = new IoTDataPlaneClient({
      endpoint: service.httpEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    const sweeps: number[] = [];
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      const queue = service.engine.snapshot().map(({ target }) => target);
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          for (let target = queue.pop(); target !== undefined; target = queue.pop())
            await sdk.send(
              new GetThingShadowCommand({
                thingName: target.thingName,
                ...(target.shadowName === undefined ? {} : { shadowName: target.shadowName }),
              }),
            );
        }),
      );
      sweeps.push(performance.now() - started);
    }
    sdk.destroy();
    return {
      shadows: service.engine.snapshot().length,
      listOnScreenMs: {
        median: round(median(ready)),
        min: round(Math.min(...ready)),
        max: round(Math.max(...ready)),
      },
      firstContentfulPaintMs: round(median(fcp)),
      mainThreadMs: {
        busy: round(median(busy)),
        script: round(median(scripting)),
        styleAndLayout: round(median(layout)),
      },
      pollingSweepMs: round(median(sweeps)),
    };
  } finally {
    await service.close();
  }
}

async function liveLatency(browser: Browser, updates: number) {
  const service = await startShadowService({ console: true, limits: { requestsPerSecondPerThing: 1e6 } });
  try {
    for (let i = 0; i < 50; i++)
      await service.engine.handle({
        operation: 'update',
        target: { thingName: `unit-${i}` },
        origin: 'http',
        payload: encoder.encode('{"state":{"reported":{"n":0}}}'),
      });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    await page.goto(`${service.consoleUrl}#unit-7/`);
    await page.waitForFunction("document.querySelector('#d-version')?.textContent === 'v1'");
    await page.evaluate('window.shadowConsole.metrics.lagSamples.length = 0');
    for (let n = 1; n <= updates; n++) {
      await service.engine.handle({
        operation: 'update',
        target: { thingName: `unit-${n % 50}` },
        origin: 'mqtt',
        payload: encoder.encode(JSON.stringify({ state: { reported: { n } } })),
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Every update reaches the page within a second (one lag sample per batch of summaries the page applied).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const lags = (await metricsOf(page)).lagSamples;
    await page.close();
    return {
      updates,
      samples: lags.length,
      lagMs: { p50: quantile(lags, 0.5), p95: quantile(lags, 0.95), max: Math.max(...lags) },
    };
  } finally {
    await service.close();
  }
}

async function demoFleet(browser: Browser, durationMs: number) {
  let page: Page | undefined;
  let opened: Promise<void> | undefined;
  const summary = await runDemo({
    devices: 50,
    durationMs,
    graceMs: 5_000,
    onStarted({ consoleUrl }) {
      opened = (async () => {
        page = await browser.newPage({ viewport: { width: 1400, height: 940 }, bypassCSP: true });
        await page.goto(`${consoleUrl}#aircon-1/`);
        await page.waitForFunction("document.querySelector('#d-version')?.textContent?.startsWith('v')");
        // Frames longer than 50 ms while the fleet runs: what a person would see as the page stuttering.
        await page.evaluate(`(() => {
          const frames = (window.frameStats = { frames: 0, slow: 0, worstMs: 0 });
          let last = performance.now();
          const tick = (now) => {
            const gap = now - last;
            last = now;
            frames.frames++;
            if (gap > 50) frames.slow++;
            if (gap > frames.worstMs) frames.worstMs = gap;
            requestAnimationFrame(tick);
          };
          requestAnimationFrame(tick);
        })()`);
      })();
    },
    async keepOpen() {
      // The service still runs here (its summary is ready): show the unit whose shadow changed most often.
      await opened;
      if (screenshot === undefined || page === undefined) return;
      await page.evaluate(`(() => {
        const rows = [...document.querySelectorAll('#rows tr')];
        const busiest = rows.sort((a, b) => Number(b.cells[2].textContent) - Number(a.cells[2].textContent))[0];
        busiest?.click();
      })()`);
      await page.waitForFunction("document.querySelectorAll('#messages .msg').length > 0", undefined, {
        timeout: 20_000,
      });
      await page.screenshot({ path: screenshot });
    },
  });
  await opened;
  if (page === undefined) throw new Error('the console page did not open');
  const metrics = await metricsOf(page);
  const frames = (await page.evaluate('window.frameStats')) as {
    frames: number;
    slow: number;
    worstMs: number;
  };
  await page.close();
  return {
    devices: summary.devices,
    trafficMs: summary.durationMs,
    fleetVersions: summary.fleetVersions,
    conflicts: summary.conflicts,
    events: metrics.events,
    lagMs: {
      p50: quantile(metrics.lagSamples, 0.5),
      p95: quantile(metrics.lagSamples, 0.95),
      max: Math.max(...metrics.lagSamples),
    },
    longTasks: metrics.longTasks,
    longTaskMs: Math.round(metrics.longTaskMs),
    frames: { total: frames.frames, over50ms: frames.slow, worstMs: Math.round(frames.worstMs) },
  };
}

const browser = await launchChromium();
try {
  const paint = await firstPaint(browser, quick ? 3 : 7);
  const live = await liveLatency(browser, quick ? 100 : 300);
  const demo = await demoFleet(browser, quick ? 8_000 : 20_000);
  const result = {
    machine: `${cpus().length} cores, Node ${process.version}, ${await browser.version()}`,
    loadAverage: (await import('node:os')).loadavg().map(round),
    firstPaint: paint,
    liveLatency: live,
    demo,
  };
  writeFileSync('bench/results/console.json', `${JSON.stringify(result, null, 2)}\n`);
  const lines = [
    '# Web console',
    '',
    `Machine: ${result.machine}; load average at the end ${result.loadAverage.join(' / ')}.`,
    'Headless Chromium on loopback, driven by playwright-core (`npx tsx bench/console.ts`).',
    '',
    '| what | measured | goal |',
    '| --- | --- | --- |',
    `| first paint, ${paint.shadows} shadows: navigation → list on screen (median, min-max) | ${paint.listOnScreenMs.median} ms (${paint.listOnScreenMs.min}-${paint.listOnScreenMs.max}) | < 300 ms |`,
    `| first contentful paint (median) | ${paint.firstContentfulPaintMs} ms | |`,
    `| main-thread time up to that first paint: all tasks / script / style + layout (median) | ${paint.mainThreadMs.busy} / ${paint.mainThreadMs.script} / ${paint.mainThreadMs.styleAndLayout} ms | |`,
    `| peer: one polling sweep of the same shadows with the AWS SDK (10 in flight) | ${paint.pollingSweepMs} ms (${round(paint.pollingSweepMs / paint.listOnScreenMs.median)}x the console's first paint) | |`,
    `| live: service accepts → DOM updated, ${live.updates} updates 20 ms apart, ${live.samples} batches (p50 / p95 / max) | ${live.lagMs.p50} / ${live.lagMs.p95} / ${live.lagMs.max} ms | < 100 ms |`,
    `| demo, ${demo.devices} units, ${Math.round(demo.trafficMs / 1000)} s of traffic, ${demo.fleetVersions} versions: event lag (p50 / p95 / max) | ${demo.lagMs.p50} / ${demo.lagMs.p95} / ${demo.lagMs.max} ms over ${demo.events} events | |`,
    `| demo: long tasks (> 50 ms) in the page | ${demo.longTasks} (${demo.longTaskMs} ms in all) | |`,
    `| demo: animation frames over 50 ms | ${demo.frames.over50ms} of ${demo.frames.total} (worst ${demo.frames.worstMs} ms) | |`,
    '',
  ];
  writeFileSync('bench/results/console.md', lines.join('\n'));
  console.log(lines.join('\n'));
} finally {
  await browser.close();
}
