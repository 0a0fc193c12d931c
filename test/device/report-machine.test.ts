/** The device agent's pure report loop: examples and a property, no I/O at all. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  INITIAL_REPORT_STATE,
  type ReportEffect,
  type ReportEvent,
  type ReportState,
  stepReport,
} from '../../src/device/report-machine.js';
import {
  ShadowConflictError,
  ShadowRejectedError,
  ShadowThrottledError,
  ShadowTimeoutError,
  ShadowTransportError,
} from '../../src/errors.js';

function run(events: ReportEvent[], from: ReportState = INITIAL_REPORT_STATE) {
  let state = from;
  const effects: ReportEffect[] = [];
  for (const event of events) {
    const step = stepReport(state, event);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const types = (effects: ReportEffect[]) => effects.map((effect) => effect.type);
const tooLarge = new ShadowRejectedError('payload too large', { statusCode: 413 });
const wake: ReportEvent = { type: 'wake', ready: true, dirty: true };
const due: ReportEvent = { type: 'timer-due', ready: true };

describe('report machine: examples', () => {
  it('waits for the timer, sends once, and acknowledges the answer', () => {
    const { state, effects } = run([wake, wake, due, wake, { type: 'accepted', version: 3 }]);
    expect(effects).toEqual([
      { type: 'start-report-timer', retry: 0 },
      { type: 'send-report', maxLeaves: undefined },
      { type: 'acknowledge', version: 3 },
      { type: 'pump' },
    ]);
    expect(state).toMatchObject({ inFlight: false, timer: false, failures: 0 });
  });

  it('does nothing while not ready or clean, and a timer that ends offline sends nothing', () => {
    expect(run([{ type: 'wake', ready: false, dirty: true }]).effects).toEqual([]);
    expect(run([{ type: 'wake', ready: true, dirty: false }]).effects).toEqual([]);
    const offline = run([wake, { type: 'timer-due', ready: false }]);
    expect(types(offline.effects)).toEqual(['start-report-timer']);
    expect(offline.state).toMatchObject({ timer: false, inFlight: false });
  });

  it('backs off after throttling and failures (retry number grows), and starts over after a success', () => {
    const throttled = { type: 'failed', error: new ShadowThrottledError('slow down'), leaves: 1 } as const;
    const failing = {
      type: 'failed',
      error: new ShadowRejectedError('oops', { statusCode: 503 }),
      leaves: 1,
    } as const;
    const { effects } = run([
      wake,
      due,
      throttled,
      wake,
      due,
      failing,
      wake,
      due,
      { type: 'accepted', version: 1 },
      wake,
    ]);
    expect(effects.filter((effect) => effect.type === 'start-report-timer')).toEqual([
      { type: 'start-report-timer', retry: 0 },
      { type: 'start-report-timer', retry: 1 },
      { type: 'start-report-timer', retry: 2 },
      { type: 'start-report-timer', retry: 0 },
    ]);
  });

  it('a lost answer (timeout, link) makes the intent unsure and asks for a read; a 409 asks for a read', () => {
    for (const error of [
      new ShadowTimeoutError('no answer', { timeoutMs: 5 }),
      new ShadowTransportError('gone'),
    ]) {
      expect(types(run([wake, due, { type: 'failed', error, leaves: 2 }]).effects)).toEqual([
        'start-report-timer',
        'send-report',
        'unsure',
        'sync-wanted',
        'pump',
      ]);
    }
    const conflict = new ShadowConflictError('Version conflict', { attempts: 1 });
    expect(types(run([wake, due, { type: 'failed', error: conflict, leaves: 1 }]).effects)).toEqual([
      'start-report-timer',
      'send-report',
      'conflict',
      'sync-wanted',
      'pump',
    ]);
  });

  it('a 413 of several leaves sends them one per update; a refused single leaf is given up', () => {
    const refusedThree = run([wake, due, { type: 'failed', error: tooLarge, leaves: 3 }, wake, due]);
    expect(refusedThree.effects.at(-1)).toEqual({ type: 'send-report', maxLeaves: 1 });
    expect(refusedThree.state.isolateLeft).toBe(3);
    const oneRefused = run([{ type: 'failed', error: tooLarge, leaves: 1 }], refusedThree.state);
    expect(types(oneRefused.effects)).toEqual(['discard-sent', 'pump']);
    const rest = run(
      [wake, due, { type: 'accepted', version: 1 }, wake, due, { type: 'accepted', version: 2 }],
      oneRefused.state,
    );
    expect(rest.state.isolateLeft).toBe(0);
    expect(run([wake, due], rest.state).effects.at(-1)).toEqual({
      type: 'send-report',
      maxLeaves: undefined,
    });
  });

  it('nothing pending ends the isolation; close cancels the timer and ignores later outcomes', () => {
    const isolating = run([wake, due, { type: 'failed', error: tooLarge, leaves: 4 }]).state;
    expect(run([wake, due, { type: 'nothing-pending' }], isolating).state).toMatchObject({
      isolateLeft: 0,
      inFlight: false,
    });
    const closed = run([wake, { type: 'close' }]);
    expect(types(closed.effects)).toEqual(['start-report-timer', 'cancel-report-timer']);
    expect(run([due, wake, { type: 'accepted', version: 1 }], closed.state).effects).toEqual([]);
  });
});

const event: fc.Arbitrary<ReportEvent> = fc.oneof(
  fc.record({ type: fc.constant('wake' as const), ready: fc.boolean(), dirty: fc.boolean() }),
  fc.record({ type: fc.constant('timer-due' as const), ready: fc.boolean() }),
  fc.constant({ type: 'nothing-pending' } as const),
  fc.nat(9).map((version) => ({ type: 'accepted', version }) as const),
  fc
    .tuple(
      fc.constantFrom<unknown>(
        tooLarge,
        new ShadowThrottledError('slow down'),
        new ShadowTimeoutError('no answer', { timeoutMs: 5 }),
        new Error('not a shadow error'),
      ),
      fc.integer({ min: 1, max: 5 }),
    )
    .map(([error, leaves]) => ({ type: 'failed', error, leaves }) as const),
  fc.constant({ type: 'close' } as const),
);

describe('report machine: properties', () => {
  it('never has two updates in flight or two timers, and sends only from a timer', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        let state = INITIAL_REPORT_STATE;
        let inFlight = 0;
        let timers = 0;
        for (const e of events) {
          const { state: next, effects } = stepReport(state, e);
          for (const effect of effects) {
            if (effect.type === 'start-report-timer') timers++;
            if (effect.type === 'cancel-report-timer') timers--;
            if (effect.type === 'send-report') {
              expect(e.type).toBe('timer-due');
              inFlight++;
            }
          }
          if (state.timer && e.type === 'timer-due') timers--;
          // An outcome ends the update in flight (outcomes without one are the runtime's mistake, never sent).
          if (state.inFlight && !next.inFlight) inFlight--;
          expect(inFlight).toBeLessThanOrEqual(1);
          expect(timers).toBeLessThanOrEqual(1);
          expect(timers).toBe(next.timer ? 1 : 0);
          expect(next.isolateLeft).toBeGreaterThanOrEqual(0);
          state = next;
        }
      }),
    );
  });
});
