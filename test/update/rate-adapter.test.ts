/**
 * The adaptive per-thing rate, on fake time: unit rules of the adapter, then properties of independent
 * clients (each its own limiter, as Lambdas each with their own client) competing for one thing's quota at
 * a simulated service with AWS's per-thing token bucket (20 requests/s, burst 20). Time is virtual: a
 * scheduler advances it from one pending timer to the next, so the properties do not depend on the
 * machine's speed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRateAdapter, RATE_ADAPTER_DEFAULTS } from '../../src/update/rate-adapter.js';
import { createThingLimiter } from '../../src/update/thing-limiter.js';

const settings = { ...RATE_ADAPTER_DEFAULTS, ceiling: 20 };

describe('rate adapter', () => {
  it('halves on a 429, once per burst: a 429 for a request sent before the cut does not cut again', () => {
    const adapter = createRateAdapter(settings, 0);
    expect(adapter.rate).toBe(20);
    expect(adapter.throttled(0, 10)).toBe(true);
    expect(adapter.rate).toBe(10);
    expect(adapter.throttled(5, 12)).toBe(false); // sent before the cut at 10
    expect(adapter.rate).toBe(10);
    expect(adapter.throttled(20, 30)).toBe(true);
    expect(adapter.rate).toBe(5);
  });

  it('never goes below the floor', () => {
    const adapter = createRateAdapter(settings, 0);
    for (let t = 1; t < 100; t++) adapter.throttled(t, t);
    expect(adapter.rate).toBe(RATE_ADAPTER_DEFAULTS.floor);
  });

  it('climbs additively on successes, crediting at most one second per success, up to the ceiling', () => {
    const adapter = createRateAdapter(settings, 0);
    adapter.throttled(0, 0);
    adapter.succeeded(500);
    const afterHalfSecond = adapter.rate;
    expect(afterHalfSecond).toBeGreaterThan(10);
    expect(afterHalfSecond).toBeLessThan(10 + RATE_ADAPTER_DEFAULTS.increasePerSecond * 2);
    // A long idle gap is credited as one second only.
    const before = adapter.rate;
    adapter.succeeded(100_500);
    expect(adapter.rate - before).toBeLessThanOrEqual(
      RATE_ADAPTER_DEFAULTS.increasePerSecond * (1 + 100_500 / RATE_ADAPTER_DEFAULTS.quietDoublingMs) + 1e-9,
    );
    for (let t = 101_000; t < 400_000; t += 100) adapter.succeeded(t);
    expect(adapter.rate).toBe(20);
    expect(adapter.recovered(400_000)).toBe(true);
  });

  it('honours Retry-After: paused until then, recovered only afterwards', () => {
    const adapter = createRateAdapter(settings, 0);
    adapter.throttled(0, 100, 2000);
    expect(adapter.pausedUntil).toBe(2100);
    expect(adapter.recovered(2000)).toBe(false);
  });
});

/** Virtual time: `sleep` registers a timer; `runUntil` fires timers in order, letting promises settle between. */
function virtualTime() {
  let now = 0;
  let sequence = 0;
  const timers: Array<{ at: number; seq: number; fire: () => void }> = [];
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    clock: {
      now: () => now,
      sleep: (ms: number) =>
        new Promise<void>((resolve) => {
          timers.push({ at: now + Math.max(0, ms), seq: sequence++, fire: resolve });
        }),
    },
    async runUntil(end: number) {
      for (;;) {
        await settle();
        if (timers.length === 0) return;
        timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
        const next = timers[0]!;
        if (next.at > end) return;
        timers.shift();
        now = next.at;
        next.fire();
      }
    },
  };
}

/** AWS's per-thing bucket: 20 tokens, 20 per second; a throttled request takes no token. */
function serviceBucket(now: () => number, rate = 20) {
  let tokens = rate;
  let refilledAt = 0;
  return (): boolean => {
    const t = now();
    tokens = Math.min(rate, tokens + ((t - refilledAt) * rate) / 1000);
    refilledAt = t;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}

interface Outcome {
  at: number;
  writer: number;
  ok: boolean;
}

/** `writers` independent clients send back to back for `untilMs` (writer w stops at `stopAt[w]`). */
async function simulate(writers: number, latencyMs: number, untilMs: number, stopAt: (w: number) => number) {
  const time = virtualTime();
  const admit = serviceBucket(time.clock.now);
  const outcomes: Outcome[] = [];
  const limiters = Array.from({ length: writers }, () =>
    createThingLimiter({
      requestsPerSecond: 20,
      maxInFlight: 10,
      clock: time.clock,
      adaptive: RATE_ADAPTER_DEFAULTS,
    }),
  );
  const loops = limiters.map(async (limiter, writer) => {
    while (time.clock.now() < Math.min(untilMs, stopAt(writer))) {
      await limiter.run('thing', async ({ sentAt }) => {
        await time.clock.sleep(latencyMs / 2);
        const ok = admit();
        await time.clock.sleep(latencyMs / 2);
        outcomes.push({ at: time.clock.now(), writer, ok });
        if (ok) limiter.succeeded('thing');
        else limiter.throttled('thing', sentAt);
      });
    }
  });
  await time.runUntil(untilMs + 10_000);
  await Promise.all(loops);
  return { outcomes, limiters };
}

describe('independent clients on one thing (simulated service, virtual time)', () => {
  it('converge under the quota: the service stays busy, 429s stay a minority, nobody starves', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 16 }),
        fc.integer({ min: 1, max: 40 }),
        async (writers, latency) => {
          const { outcomes } = await simulate(writers, latency, 60_000, () => Number.POSITIVE_INFINITY);
          const window = outcomes.filter((o) => o.at >= 15_000 && o.at < 60_000);
          const accepted = window.filter((o) => o.ok).length;
          const throttled = window.length - accepted;
          // The quota admits at most 20/s: 900 in 45 s. The clients together use at least 80 % of it ...
          expect(accepted).toBeGreaterThanOrEqual(0.8 * 20 * 45);
          // ... while at most as many requests are throttled as pass.
          expect(throttled).toBeLessThanOrEqual(accepted);
          // Never starves: every writer gets requests through in every 15-second window.
          for (let start = 15_000; start < 60_000; start += 15_000) {
            for (let w = 0; w < writers; w++) {
              expect(
                window.some((o) => o.writer === w && o.ok && o.at >= start && o.at < start + 15_000),
              ).toBe(true);
            }
          }
        },
      ),
      { numRuns: 12 },
    );
  }, 60_000);

  it('recovers after throttling stops: the last writer left climbs back to the ceiling', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 12 }),
        fc.integer({ min: 1, max: 20 }),
        async (writers, latency) => {
          // Everyone competes for 20 s, then all but writer 0 stop; it runs alone for 80 s more.
          const { outcomes, limiters } = await simulate(writers, latency, 100_000, (w) =>
            w === 0 ? Number.POSITIVE_INFINITY : 20_000,
          );
          expect(outcomes.some((o) => !o.ok && o.at < 20_000)).toBe(true);
          expect(limiters[0]!.rate('thing')).toBe(20);
          // Alone at the ceiling it uses the whole quota again, with no 429 in the last 20 s.
          const last = outcomes.filter((o) => o.at >= 80_000 && o.at < 100_000);
          expect(last.every((o) => o.ok)).toBe(true);
          expect(last.length).toBeGreaterThanOrEqual(0.9 * 20 * 20);
        },
      ),
      { numRuns: 8 },
    );
  }, 60_000);
});
