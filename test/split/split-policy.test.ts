import { describe, expect, it } from 'vitest';
import { isShadowError, ShadowOptionsError, ShadowValidationError } from '../../src/errors.js';
import { type SplitPolicyOptions, splitPolicy } from '../../src/split/index.js';

const issuePolicy = () =>
  splitPolicy({
    telemetryTopic: 'my/things/{thingName}/state',
    fields: {
      power: 'shadow',
      mode: 'shadow',
      targetTemp: 'shadow',
      temperature: { route: 'telemetry', alsoShadow: { deadband: 0.5, minIntervalMs: 60_000 } },
      humidity: 'telemetry',
    },
    otherFields: 'telemetry',
  });

describe('splitPolicy: routing', () => {
  it("splits the issue's example: shadow fields to the patch, telemetry to the payload, temperature to both once", () => {
    const policy = issuePolicy();
    const result = policy.split({ power: 'on', temperature: 22.4, humidity: 41 }, { now: 1_000 });
    expect(result.shadow).toEqual({ power: 'on', temperature: 22.4 });
    expect(result.telemetry).toEqual({ temperature: 22.4, humidity: 41 });
    expect(result.reportedPaths).toEqual(['temperature']);
    expect(result.withheldPaths).toEqual([]);
  });

  it('routes unconfigured fields by otherFields, which defaults to shadow', () => {
    expect(issuePolicy().split({ rssi: -60 }, { now: 0 })).toEqual({
      telemetry: { rssi: -60 },
      reportedPaths: [],
      withheldPaths: [],
    });
    expect(
      splitPolicy({ fields: { rssi: 'telemetry' } }).split({ fw: '1.2', rssi: -60 }, { now: 0 }),
    ).toEqual({
      shadow: { fw: '1.2' },
      telemetry: { rssi: -60 },
      reportedPaths: [],
      withheldPaths: [],
    });
  });

  it('routes nested dotted paths by the longest configured prefix and takes unconfigured objects whole', () => {
    const policy = splitPolicy({
      fields: { env: 'shadow', 'env.temperature': 'telemetry', 'env.air.co2': 'telemetry' },
      otherFields: 'telemetry',
    });
    const result = policy.split(
      {
        env: { temperature: 21, humidity: 40, air: { co2: 600, voc: 3 }, filter: { hours: 12 } },
        uptime: 5,
      },
      { now: 0 },
    );
    expect(result.shadow).toEqual({ env: { humidity: 40, air: { voc: 3 }, filter: { hours: 12 } } });
    expect(result.telemetry).toEqual({ env: { temperature: 21, air: { co2: 600 } }, uptime: 5 });
    expect(policy.routeOf('env.humidity')).toBe('shadow');
    expect(policy.routeOf('env.temperature.raw')).toBe('telemetry');
    expect(policy.routeOf('other')).toBe('telemetry');
  });

  it('routes a non-object value at a configured parent whole (a path with configured children but a scalar value)', () => {
    const policy = splitPolicy({ fields: { env: 'shadow', 'env.temperature': 'telemetry' } });
    expect(policy.split({ env: 'offline' }, { now: 0 }).shadow).toEqual({ env: 'offline' });
  });

  it('leaves values equal to the last reported ones out of the shadow patch, at any depth', () => {
    const policy = splitPolicy({});
    const lastReported = { power: 'on', fan: { speed: 2, swing: true }, zones: [1, 2] };
    const result = policy.split(
      { power: 'on', fan: { speed: 3, swing: true }, zones: [1, 2] },
      { lastReported, now: 0 },
    );
    expect(result.shadow).toEqual({ fan: { speed: 3 } });
    expect(policy.split({ power: 'on', zones: [1, 2] }, { lastReported, now: 0 }).shadow).toBeUndefined();
  });

  it('treats a report as partial: absent keys stay, null deletes, undefined is ignored', () => {
    const policy = splitPolicy({});
    const lastReported = { power: 'on', mode: 'cool', error: 'E1' };
    const result = policy.split({ mode: 'heat', error: null, note: undefined } as never, {
      lastReported,
      now: 0,
    });
    expect(result.shadow).toEqual({ mode: 'heat', error: null });
    expect(policy.split({ missing: null }, { lastReported, now: 0 }).shadow).toBeUndefined();
  });

  it('a deletion of a key the shadow does not hold is no change, nested too (no empty container is created)', () => {
    const policy = splitPolicy({});
    expect(policy.split({ env: { co2: null } }, { now: 0 }).shadow).toBeUndefined();
    expect(
      policy.split({ env: { co2: null, t: 1 } }, { lastReported: { env: { voc: 2 } }, now: 0 }).shadow,
    ).toEqual({
      env: { t: 1 },
    });
    expect(
      policy.split({ env: { voc: null } }, { lastReported: { env: { voc: 2 } }, now: 0 }).shadow,
    ).toEqual({
      env: { voc: null },
    });
    expect(policy.split({ env: {} }, { now: 0 }).shadow).toEqual({ env: {} });
  });

  it('deleting every reported key yields one null per key rather than a null section', () => {
    const policy = splitPolicy({});
    expect(policy.split({ a: null, b: null }, { lastReported: { a: 1, b: 2 }, now: 0 }).shadow).toEqual({
      a: null,
      b: null,
    });
  });

  it('fills the telemetry topic template', () => {
    expect(issuePolicy().telemetryTopicFor('ac-17')).toBe('my/things/ac-17/state');
    expect(splitPolicy({}).telemetryTopicFor('x')).toBe('my/things/x/state');
    expect(splitPolicy({ telemetryTopic: 'tele/{thingName}/{thingName}' }).telemetryTopicFor('x')).toBe(
      'tele/x/x',
    );
  });
});

describe('splitPolicy: gates of telemetry fields mirrored into the shadow', () => {
  const gated = (gate: Record<string, number>) =>
    splitPolicy({ fields: { t: { route: 'telemetry', alsoShadow: gate } } });

  it('holds back a change within the deadband and reports one beyond it once the interval passed', () => {
    const policy = gated({ deadband: 0.5, minIntervalMs: 60_000 });
    const state = { lastReported: { t: 22 }, lastReportedAt: { t: 0 } };
    expect(policy.split({ t: 22.5 }, { ...state, now: 120_000 })).toEqual({
      telemetry: { t: 22.5 },
      reportedPaths: [],
      withheldPaths: ['t'],
    });
    expect(policy.split({ t: 22.6 }, { ...state, now: 120_000 }).shadow).toEqual({ t: 22.6 });
    expect(policy.split({ t: 21.4 }, { ...state, now: 120_000 }).shadow).toEqual({ t: 21.4 });
  });

  it('holds back a change beyond the deadband until the minimum interval passed and says when to look again', () => {
    const policy = gated({ deadband: 0.5, minIntervalMs: 60_000 });
    const state = { lastReported: { t: 22 }, lastReportedAt: { t: 10_000 } };
    const early = policy.split({ t: 30 }, { ...state, now: 69_999 });
    expect(early.shadow).toBeUndefined();
    expect(early.withheldPaths).toEqual(['t']);
    expect(early.nextCheckAt).toBe(70_000);
    const due = policy.split({ t: 30 }, { ...state, now: 70_000 });
    expect(due.shadow).toEqual({ t: 30 });
    expect(due.reportedPaths).toEqual(['t']);
    expect(due.nextCheckAt).toBeUndefined();
  });

  it('re-reports a value that drifted within the deadband once the maximum staleness passed', () => {
    const policy = gated({ deadband: 1, minIntervalMs: 1_000, maxStalenessMs: 300_000 });
    const state = { lastReported: { t: 20 }, lastReportedAt: { t: 0 } };
    const fresh = policy.split({ t: 20.4 }, { ...state, now: 299_999 });
    expect(fresh.shadow).toBeUndefined();
    expect(fresh.nextCheckAt).toBe(300_000);
    expect(policy.split({ t: 20.4 }, { ...state, now: 300_000 }).shadow).toEqual({ t: 20.4 });
    // An unchanged value is accurate, however old: it is never re-reported.
    expect(policy.split({ t: 20 }, { ...state, now: 10_000_000 }).shadow).toBeUndefined();
  });

  it('reports the first value at once and counts any change of a non-numeric value as beyond the deadband', () => {
    const policy = gated({ deadband: 5, minIntervalMs: 1_000 });
    expect(policy.split({ t: 1 }, { now: 0 }).shadow).toEqual({ t: 1 });
    const state = { lastReported: { t: 'low' }, lastReportedAt: { t: 0 } };
    expect(policy.split({ t: 'high' }, { ...state, now: 999 }).shadow).toBeUndefined();
    expect(policy.split({ t: 'high' }, { ...state, now: 1_000 }).shadow).toEqual({ t: 'high' });
  });

  it('without a lastReportedAt entry the interval does not hold a changed value back', () => {
    const policy = gated({ deadband: 0, minIntervalMs: 60_000 });
    expect(policy.split({ t: 2 }, { lastReported: { t: 1 }, now: 5 }).shadow).toEqual({ t: 2 });
  });

  it('gates nested fields by their full dotted path', () => {
    const policy = splitPolicy({
      fields: { 'env.t': { route: 'telemetry', alsoShadow: { minIntervalMs: 100 } } },
      otherFields: 'telemetry',
    });
    const result = policy.split(
      { env: { t: 3, h: 4 } },
      { lastReported: { env: { t: 1 } }, lastReportedAt: { 'env.t': 0 }, now: 50 },
    );
    expect(result.shadow).toBeUndefined();
    expect(result.withheldPaths).toEqual(['env.t']);
    expect(result.telemetry).toEqual({ env: { t: 3, h: 4 } });
  });
});

describe('splitPolicy: estimate', () => {
  it('counts shadow fields at their rate, telemetry at zero and gated fields at most once per interval', () => {
    const estimate = issuePolicy().estimate({ power: 2, temperature: 36_000, humidity: 36_000 });
    expect(estimate.perField).toEqual({ power: 2, temperature: 60, humidity: 0 });
    expect(estimate.versionsPerHour).toBe(62);
    expect(estimate.overBudget).toBe(false);
    expect(estimate.budgetVersionsPerHour).toBeUndefined();
  });

  it('counts a gated field once per interval when reports come faster, the held value written at the re-check', () => {
    const policy = splitPolicy({
      fields: { t: { route: 'telemetry', alsoShadow: { minIntervalMs: 25_000 } } },
    });
    // Reports every 10 s, interval 25 s: the value held back at 10 s and 20 s is written at the re-check at
    // 25 s (nextCheckAt), so the shadow sees the field every 25 s, not at every third report (30 s, 120/h).
    expect(policy.estimate({ t: 360 }).versionsPerHour).toBe(144);
    // Reports slower than the interval: every report.
    expect(policy.estimate({ t: 60 }).versionsPerHour).toBe(60);
  });

  it('flags a budget from the options or from the call, the call taking precedence', () => {
    const policy = splitPolicy({ budgetVersionsPerHour: 100, otherFields: 'shadow' });
    expect(policy.estimate({ a: 101 })).toMatchObject({ overBudget: true, budgetVersionsPerHour: 100 });
    expect(policy.estimate({ a: 100 }).overBudget).toBe(false);
    expect(policy.estimate({ a: 101 }, { budgetVersionsPerHour: 200 }).overBudget).toBe(false);
  });

  it('the seed fix: reporting temperature and humidity every 100 ms costs 72,000 versions an hour unsplit, 0 split', () => {
    const rates = { temperature: 36_000, humidity: 36_000 };
    expect(splitPolicy({}).estimate(rates, { budgetVersionsPerHour: 600 })).toMatchObject({
      versionsPerHour: 72_000,
      overBudget: true,
    });
    expect(splitPolicy({ otherFields: 'telemetry' }).estimate(rates).versionsPerHour).toBe(0);
  });

  it('rejects a rate that is not a finite number ≥ 0, naming the field', () => {
    const policy = splitPolicy({});
    expect(() => policy.estimate({ a: -1, b: Number.NaN })).toThrow(ShadowValidationError);
    expect(() => policy.estimate({ a: -1 })).toThrow(/a: rate must be a finite number/);
    expect(() => policy.estimate({ a: 1 }, { budgetVersionsPerHour: -3 })).toThrow(ShadowOptionsError);
  });
});

describe('splitPolicy: bad input', () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown option', { field: {} }, /unknown option field/],
    ['bad route', { fields: { power: 'cloud' } }, /fields\['power'\] must be 'shadow', 'telemetry'/],
    ['bad route object', { fields: { power: { route: 'both' } } }, /fields\['power'\]\.route must be/],
    [
      'unknown rule key',
      { fields: { power: { route: 'shadow', deadband: 1 } } },
      /unknown option fields\['power'\]\.deadband/,
    ],
    [
      'alsoShadow on a shadow route',
      { fields: { t: { route: 'shadow', alsoShadow: {} } } },
      /fields\['t'\]\.alsoShadow is only allowed with route 'telemetry'/,
    ],
    [
      'unknown gate key',
      { fields: { t: { route: 'telemetry', alsoShadow: { deadBand: 1 } } } },
      /unknown option fields\['t'\]\.alsoShadow\.deadBand/,
    ],
    [
      'negative deadband',
      { fields: { t: { route: 'telemetry', alsoShadow: { deadband: -1 } } } },
      /fields\['t'\]\.alsoShadow\.deadband must be a finite number ≥ 0, got -1/,
    ],
    [
      'staleness below interval',
      { fields: { t: { route: 'telemetry', alsoShadow: { minIntervalMs: 10, maxStalenessMs: 5 } } } },
      /maxStalenessMs \(5\) must be ≥ minIntervalMs \(10\)/,
    ],
    ['empty path segment', { fields: { 'env..t': 'shadow' } }, /field path 'env\.\.t'/],
    ['bad otherFields', { otherFields: 'drop' }, /otherFields must be 'shadow' or 'telemetry'/],
    ['wildcard topic', { telemetryTopic: 'my/+/state' }, /telemetryTopic 'my\/\+\/state' must not contain/],
    ['reserved topic', { telemetryTopic: '$aws/things/x' }, /must not be a reserved/],
    [
      'bad budget',
      { budgetVersionsPerHour: Number.POSITIVE_INFINITY },
      /budgetVersionsPerHour must be a finite/,
    ],
  ];
  for (const [name, options, message] of cases) {
    it(`rejects options with ${name} by a ShadowOptionsError naming it`, () => {
      let caught: unknown;
      try {
        splitPolicy(options as SplitPolicyOptions);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ShadowOptionsError);
      expect(isShadowError(caught)).toBe(true);
      expect((caught as Error).message).toMatch(message);
    });
  }

  it('rejects a report holding values JSON cannot carry, listing each path', () => {
    const policy = splitPolicy({});
    let caught: unknown;
    try {
      policy.split({ a: Number.NaN, b: { c: () => 1, d: [1, new Date(0)] } } as never, { now: 0 });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ShadowValidationError);
    const issues = (caught as ShadowValidationError).issues;
    expect(issues.map((issue) => issue.path)).toEqual([['a'], ['b', 'c'], ['b', 'd', 1]]);
    expect((caught as Error).message).toMatch(/a: NaN is not a finite number/);
    expect(() => policy.split([1] as never, { now: 0 })).toThrow(/a report must be a JSON object/);
  });

  it('never changes the caller’s values or last reported state', () => {
    const policy = issuePolicy();
    const values = { power: 'on', temperature: 30, nested: { a: 1 } };
    const lastReported = { power: 'off', temperature: 20 };
    const copy = structuredClone({ values, lastReported });
    policy.split(values, { lastReported, lastReportedAt: { temperature: 0 }, now: 100_000 });
    expect({ values, lastReported }).toEqual(copy);
  });
});
