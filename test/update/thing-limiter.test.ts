import { describe, expect, it } from 'vitest';
import { createThingLimiter } from '../../src/update/thing-limiter.js';
import { instantClock } from './in-memory-service-double.js';

describe('thing limiter', () => {
  it('lets a burst of rate - 1 through, then paces at the rate (one token of slack for network jitter)', async () => {
    // Time moves only in a macrotask, after every runnable continuation has recorded its send time.
    let time = 0;
    const clock = {
      now: () => time,
      sleep: (ms: number) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            time += ms;
            resolve();
          }, 0),
        ),
    };
    const sent: number[] = [];
    const limiter = createThingLimiter({ requestsPerSecond: 20, maxInFlight: 100, clock });
    await Promise.all(
      Array.from({ length: 40 }, () => limiter.run('lamp', async () => sent.push(clock.now()))),
    );
    expect(sent.slice(0, 19).every((t) => t === 0)).toBe(true);
    // After the burst: one request per 50 ms, never faster than the rate.
    for (let i = 20; i < sent.length; i++) expect(sent[i]! - sent[i - 1]!).toBeGreaterThanOrEqual(50);
    // The service's own bucket (20 tokens, 20 per second) admits every one of them: in any window of T ms
    // there are at most 19 + 20 * T / 1000 requests.
    for (const start of sent) {
      for (const end of sent) {
        if (end < start) continue;
        const inWindow = sent.filter((t) => t >= start && t <= end).length;
        expect(inWindow).toBeLessThanOrEqual(19 + (20 * (end - start)) / 1000 + 1e-9);
      }
    }
  });

  it('keeps at most maxInFlight requests running per thing, other things unaffected', async () => {
    const limiter = createThingLimiter({
      requestsPerSecond: Number.POSITIVE_INFINITY,
      maxInFlight: 2,
      clock: instantClock(),
    });
    let running = 0;
    let peak = 0;
    const gates: Array<() => void> = [];
    const task = () =>
      limiter.run('lamp', async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      });
    const all = Promise.all([task(), task(), task(), task(), task()]);
    // One turn of the event loop lets every task reach the limiter (the clock is instant: no time passes).
    await new Promise((resolve) => setImmediate(resolve));
    expect(limiter.inFlight('lamp')).toBe(2);
    // Another thing is not held back by the first one's quota.
    await expect(limiter.run('other', async () => 'free')).resolves.toBe('free');
    while (gates.length > 0 || running > 0) {
      gates.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await all;
    expect(peak).toBe(2);
    expect(limiter.inFlight('lamp')).toBe(0);
  });

  it('releases the slot when a task fails', async () => {
    const limiter = createThingLimiter({ requestsPerSecond: 5, maxInFlight: 1, clock: instantClock() });
    await expect(limiter.run('lamp', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(limiter.run('lamp', async () => 'next')).resolves.toBe('next');
  });

  it('forgets idle things once their bucket is full again, so a client of a large fleet does not grow without bound', async () => {
    const clock = instantClock();
    const limiter = createThingLimiter({ requestsPerSecond: 20, maxInFlight: 10, clock });
    const batch = (prefix: string) =>
      Promise.all(Array.from({ length: 5000 }, (_, i) => limiter.run(`${prefix}-${i}`, async () => i)));
    await batch('a');
    expect(limiter.trackedThings()).toBe(5000); // each of them just spent a token: still tracked
    await clock.sleep(1000); // every bucket has refilled
    await batch('b');
    await clock.sleep(1000);
    await batch('c');
    expect(limiter.trackedThings()).toBeLessThanOrEqual(10_000);
    // Without a rate limit there is no bucket to remember: an idle thing is forgotten at once.
    const unlimited = createThingLimiter({
      requestsPerSecond: Number.POSITIVE_INFINITY,
      maxInFlight: 10,
      clock,
    });
    await Promise.all(Array.from({ length: 100 }, (_, i) => unlimited.run(`t-${i}`, async () => i)));
    expect(unlimited.trackedThings()).toBe(0);
  });

  it('paces a rate below one request per second instead of waiting forever', async () => {
    let time = 0;
    let sleeps = 0;
    const clock = {
      now: () => time,
      sleep: async (ms: number) => {
        if (++sleeps > 100) throw new Error('the limiter never handed out a token');
        time += ms;
      },
    };
    const limiter = createThingLimiter({ requestsPerSecond: 0.5, maxInFlight: 10, clock });
    const sent: number[] = [];
    for (let i = 0; i < 3; i++) await limiter.run('lamp', async () => sent.push(time));
    expect(sent).toEqual([0, 2000, 4000]);
  });

  it('reports waits for tokens', async () => {
    const waits: number[] = [];
    const limiter = createThingLimiter({
      requestsPerSecond: 2,
      maxInFlight: 10,
      clock: instantClock(),
      onWait: (_thing, ms) => waits.push(ms),
    });
    await Promise.all([1, 2, 3].map(() => limiter.run('lamp', async () => undefined)));
    expect(waits.length).toBeGreaterThan(0);
    expect(waits.every((ms) => ms > 0 && ms <= 500)).toBe(true);
  });
});
