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

  it('raises the rate in use the longer only 429s arrive, doubling every starvedDoublingMs, up to the ceiling', () => {
    const adapter = createRateAdapter(settings, 0);
    for (let t = 1; t < 100; t++) adapter.throttled(t, t);
    const floor = RATE_ADAPTER_DEFAULTS.floor;
    const doubling = RATE_ADAPTER_DEFAULTS.starvedDoublingMs;
    adapter.succeeded(100);
    expect(adapter.rateAt(100)).toBeCloseTo(adapter.rate, 9);
    adapter.throttled(200, 200);
    expect(adapter.rate).toBe(floor);
    expect(adapter.rateAt(100 + doubling)).toBeCloseTo(2 * floor, 9);
    expect(adapter.rateAt(100 + 3 * doubling)).toBeCloseTo(4 * floor, 9);
    expect(adapter.rateAt(100 + 1000 * doubling)).toBe(20);
    // Any answer but a 429 ends the relief.
    adapter.succeeded(100 + 3 * doubling);
    expect(adapter.rateAt(100 + 3 * doubling)).toBe(adapter.rate);
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

/** A deterministic source of numbers in [0, 1) (a 32-bit linear congruential generator). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
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
  const limiters = Array.from({ length: writers }, (_, writer) =>
    createThingLimiter({
      requestsPerSecond: 20,
      maxInFlight: 10,
      clock: time.clock,
      random: seededRandom(writer + 1),
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

/** The clients together use at least 80 % of the quota, 429s stay a minority, and nobody starves. */
async function expectFairShare(writers: number, latency: number) {
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
      expect(window.some((o) => o.writer === w && o.ok && o.at >= start && o.at < start + 15_000)).toBe(true);
    }
  }
}

describe('independent clients on one thing (simulated service, virtual time)', () => {
  it('a 429 that cuts several clients at once sends them back at different times, keeping their mean wait', async () => {
    // Clients started together and cut by the same burst would otherwise all wait the same time for their
    // next read and write (two tokens) and be cut together again: 64 writers ran in lockstep every 7-8 s.
    const time = virtualTime();
    const draws = [0.05, 0.35, 0.65, 0.95];
    const limiters = draws.map((draw) =>
      createThingLimiter({
        requestsPerSecond: 20,
        maxInFlight: 10,
        clock: time.clock,
        random: () => draw,
        adaptive: RATE_ADAPTER_DEFAULTS,
      }),
    );
    const sentAt: number[] = [];
    for (const limiter of limiters) {
      await limiter.run('thing', async () => {});
      expect(limiter.throttled('thing', 0)).toBe(true);
    }
    const rate = limiters[0]!.rate('thing');
    expect(rate).toBe(9.5); // half of 95 % of 20
    const next = limiters.map((limiter, i) =>
      limiter.run(
        'thing',
        async ({ sentAt: at }) => {
          sentAt[i] = at;
        },
        { tokens: 2 },
      ),
    );
    await time.runUntil(10_000);
    await Promise.all(next);
    // Cut to half the starting rate with a bucket level of 2 * draw - 1 tokens: the read and its write wait
    // (2 - level) / rate seconds.
    draws.forEach((draw, i) => {
      expect(Math.abs(sentAt[i]! - ((2 - (2 * draw - 1)) * 1000) / rate)).toBeLessThanOrEqual(1);
    });
    expect(new Set(sentAt).size).toBe(draws.length);
    const mean = sentAt.reduce((a, b) => a + b, 0) / sentAt.length;
    expect(Math.abs(mean - 2000 / rate)).toBeLessThanOrEqual(1); // two tokens at that rate, as without the spread
  });

  it('a burst of 429s does not pile up a debt of tokens: the next read waits at most three tokens', async () => {
    const time = virtualTime();
    const limiter = createThingLimiter({
      requestsPerSecond: 20,
      maxInFlight: 10,
      clock: time.clock,
      random: () => 0,
      adaptive: RATE_ADAPTER_DEFAULTS,
    });
    await limiter.run('thing', async () => {});
    // A write re-sent on a 429 takes no token (its read paid for it), and each of its 429s cuts the rate.
    for (let cut = 0; cut < 8; cut++) {
      const sent = time.clock.sleep(40);
      await time.runUntil(time.clock.now() + 40);
      await sent;
      expect(limiter.throttled('thing', time.clock.now())).toBe(true);
    }
    const floor = RATE_ADAPTER_DEFAULTS.floor;
    const from = time.clock.now();
    let readAt = 0;
    const read = limiter.run(
      'thing',
      async (ticket) => {
        readAt = ticket.sentAt;
      },
      { tokens: 2 },
    );
    await time.runUntil(from + 60_000);
    await read;
    // Level -1 at worst (random 0): three tokens at the floor rate, less the relief for starving.
    expect(readAt - from).toBeLessThanOrEqual(Math.ceil((3 * 1000) / floor));
  });

  it('converge under the quota: the service stays busy, 429s stay a minority, nobody starves', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 16 }),
        fc.integer({ min: 1, max: 40 }),
        async (writers, latency) => {
          await expectFairShare(writers, latency);
        },
      ),
      { numRuns: 12 },
    );
  }, 60_000);

  it('nobody starves where a writer once went 15 s without a request through', async () => {
    // Before the relief for starving clients and the 5 % share left to others (ADAPTIVE_SHARE).
    for (const [writers, latency] of [
      [2, 33],
      [12, 1],
      [14, 10],
      [15, 1],
      [16, 1],
      [16, 3],
      [16, 10],
      [16, 22],
    ] as const) {
      await expectFairShare(writers, latency);
    }
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
          expect(limiters[0]!.rate('thing')).toBe(19); // 95 % of the quota, see ADAPTIVE_SHARE
          // Alone at the ceiling it uses the whole quota again, with no 429 in the last 20 s.
          const last = outcomes.filter((o) => o.at >= 80_000 && o.at < 100_000);
          expect(last.every((o) => o.ok)).toBe(true);
          expect(last.length).toBeGreaterThanOrEqual(0.9 * 19 * 20);
        },
      ),
      { numRuns: 8 },
    );
  }, 60_000);
});
