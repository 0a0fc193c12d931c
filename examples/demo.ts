/**
 * The one-command demo: the seed's whole system (local shadow service, IoT rules, Lambdas, a fleet of air
 * conditioners) under app traffic for a bounded time, then a summary that checks what the library promises:
 * no lost updates, and a fleet that converges on what the app asked for.
 *
 * App traffic is what the seed's phone app did: concurrent desired changes through the `set-desired` Lambda,
 * invoked with the events API Gateway delivers, sometimes several at once on one unit (two phones in one
 * home). Each change is followed to the end: the version the Lambda committed it at (checked against the
 * service's `update/documents` message of that version), the moment the unit applied it, and whether the final
 * shadow still holds it or a later committed change of the same field replaced it.
 *
 * Run: `npm run demo` (`npx tsx examples/demo.ts`), or `npx shadow-sync demo` once installed;
 * `--no-split` runs the same fleet with temperature and humidity in the shadow (the seed's failure).
 * `--compare` runs both and prints them side by side.
 */
import {
  computeDelta,
  type JsonObject,
  type JsonValue,
  jsonEqual,
  ShadowOptionsError,
} from '../src/index.js';
import { AIRCON_MODES, type AirconSettings, seededRandom } from './device/aircon.js';
import { type LocalSystem, startLocalSystem } from './local-system.js';

/** Options of {@link runDemo}; all optional. */
export interface DemoOptions {
  /**
   * Milliseconds of app traffic.
   * @defaultValue 20000
   */
  durationMs?: number;
  /**
   * Air conditioners in the fleet.
   * @defaultValue 50
   */
  devices?: number;
  /**
   * Devices split telemetry off the shadow (`false`: the seed's failure, everything in the shadow).
   * @defaultValue true
   */
  split?: boolean;
  /**
   * Seed of every random choice (traffic, sensor noise, illegal states), so runs are repeatable.
   * @defaultValue 1
   */
  seed?: number;
  /**
   * Desired changes per second the app sends, over the whole fleet (bursts included).
   * @defaultValue devices / 5 (10 for 50 units), at least 1
   */
  changesPerSecond?: number;
  /**
   * Probability that a change comes with one or two more at the same moment for the same unit.
   * @defaultValue 0.1
   */
  burstProbability?: number;
  /**
   * Milliseconds the fleet gets, after app traffic stops, to show every desired value as reported.
   * @defaultValue 10000
   */
  graceMs?: number;
  /**
   * Milliseconds between two samples of each unit (a report each).
   * @defaultValue 1000
   */
  sampleIntervalMs?: number;
  /**
   * Probability per sample that a unit enters the illegal state.
   * @defaultValue 0.01
   */
  illegalStateProbability?: number;
  /**
   * Simulated round trip between the Lambdas and the shadow service, ms (see `LocalSystemOptions`). AWS's is
   * tens of milliseconds; it is the window in which a device's report makes a versioned write conflict.
   * @defaultValue 50
   */
  lambdaLatencyMs?: number;
  /**
   * Called about once per second with the run's counters so far.
   * @defaultValue none
   */
  onProgress?: (progress: DemoProgress) => void;
  /**
   * Ends app traffic early when aborted (Ctrl-C in the CLI); the run still converges, checks and cleans up.
   * @defaultValue none
   */
  signal?: AbortSignal;
  /**
   * Serve the local service's web console at `<httpEndpoint>/console` (on loopback only).
   * @defaultValue true
   */
  console?: boolean;
  /**
   * Called once the system runs, with the service's addresses (`consoleUrl` is undefined without the console).
   * @defaultValue none
   */
  onStarted?: (addresses: { httpEndpoint: string; mqttUrl: string; consoleUrl: string | undefined }) => void;
  /**
   * Called with the summary while the service and the fleet still run; the demo shuts down once the returned
   * promise settles. The CLI's `--keep-open` prints the summary here and waits for Ctrl-C, so the fleet can be
   * watched on the console after the run.
   * @defaultValue none (shut down at once)
   */
  keepOpen?: (summary: DemoSummary) => Promise<void>;
}

/** The counters of a run in progress. */
export interface DemoProgress {
  phase: 'traffic' | 'converging';
  elapsedMs: number;
  issued: number;
  committed: number;
  inFlight: number;
  conflicts: number;
  retries: number;
  /** Shadow versions the fleet made since app traffic started. */
  versions: number;
  alerts: number;
  /** Telemetry messages the sink handled so far. */
  telemetry: number;
}

/** What a run observed. */
export interface DemoSummary {
  devices: number;
  split: boolean;
  /** Milliseconds of app traffic. */
  durationMs: number;
  lambdaLatencyMs: number;
  /** Desired changes sent to `set-desired`. */
  issued: number;
  /** Changes the Lambda answered 200 with a new version. */
  committed: number;
  /** Changes answered 200 without a write: the values were already desired. */
  unchanged: number;
  /** Other answers, by HTTP status. */
  failed: Record<string, number>;
  /** Versioned writes of `set-desired` that met 409 and were resolved by re-reading and re-applying. */
  conflicts: number;
  /**
   * What the conflicts lost to, from the service's documents: the version after the one expected was made by
   * another app request (`app`), by a unit's report (`device`: the seed's failure when telemetry is in the
   * shadow) or by desired-cleanup (`cleanup`).
   */
  conflictsWith: Record<ConflictCause, number>;
  /** Retries of `set-desired` (after conflicts, throttling or server errors). */
  retries: number;
  /** 429 answers the Lambdas met (and retried). */
  throttled: number;
  /** Conflicts met by `desired-cleanup` (also resolved). */
  cleanupConflicts: number;
  /** Committed changes whose value is neither in the final shadow nor replaced by a later committed change. */
  lostUpdates: number;
  /** One line per lost update, for the report. */
  lostDetails: string[];
  /** Milliseconds from the app's request to the unit applying the value. */
  changeToDevice: { samples: number; p50: number | undefined; p99: number | undefined };
  /** Shadow versions per hour per unit during app traffic, and the fleet's total count. */
  versionsPerHourPerDevice: number;
  fleetVersions: number;
  /** Alerts `illegal-state-alert` recorded, and illegal states the units entered. */
  alerts: number;
  illegalStates: number;
  /** NDJSON records the telemetry sink wrote, and telemetry messages the units published. */
  telemetryRecords: number;
  telemetryPublished: number;
  /** True when every unit's reported state matched desired (no delta) within the grace period. */
  converged: boolean;
  /** Milliseconds from the end of app traffic to convergence (undefined when it did not converge). */
  convergedAfterMs: number | undefined;
  /** Units whose shadow still had a delta at the end (names and deltas), when not converged. */
  unconverged: string[];
  /** `set-desired` instances the pool needed (peak concurrency). */
  lambdaInstances: number;
}

/** Who made the version a conflicting write expected to replace. */
export type ConflictCause = 'app' | 'device' | 'cleanup' | 'unknown';

/** Defaults of {@link DemoOptions}. */
export const DEMO_DEFAULTS = Object.freeze({
  durationMs: 20_000,
  devices: 50,
  split: true,
  seed: 1,
  burstProbability: 0.1,
  graceMs: 10_000,
  sampleIntervalMs: 1_000,
  illegalStateProbability: 0.01,
  lambdaLatencyMs: 50,
});

const OPTION_KEYS = new Set([
  'durationMs',
  'devices',
  'split',
  'seed',
  'changesPerSecond',
  'burstProbability',
  'graceMs',
  'sampleIntervalMs',
  'illegalStateProbability',
  'lambdaLatencyMs',
  'onProgress',
  'signal',
  'console',
  'onStarted',
  'keepOpen',
]);

/** Requests in flight at most: the app's traffic backs off rather than pile up on a slow machine. */
const MAX_IN_FLIGHT = 64;
const TICK_MS = 50;
const FIELDS = ['power', 'mode', 'targetTemp'] as const;
type Field = (typeof FIELDS)[number];

/** One desired change, followed to the end. */
interface Change {
  /** The request it was part of (one request may change several fields). */
  request: number;
  thingName: string;
  field: Field;
  value: JsonValue;
  issuedAt: number;
  status?: number;
  version?: number;
  skipped?: boolean;
  /** Milliseconds until the unit applied the value. */
  reachedDeviceMs?: number;
}

function fail(message: string): never {
  throw new ShadowOptionsError(`runDemo: ${message}`);
}

function checkOptions(options: DemoOptions): void {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) fail(`unknown option ${key} (allowed: ${[...OPTION_KEYS].join(', ')})`);
  }
  const number = (name: keyof DemoOptions, min: number, max: number, integer: boolean) => {
    const value = options[name];
    if (value === undefined) return;
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < min ||
      value > max ||
      (integer && !Number.isInteger(value))
    )
      fail(`${name} must be ${integer ? 'an integer' : 'a number'} ${min}-${max}, got ${String(value)}`);
  };
  number('durationMs', 100, 3_600_000, true);
  number('devices', 1, 1_000, true);
  number('seed', 0, 2 ** 32 - 1, true);
  number('changesPerSecond', 0.1, 1_000, false);
  number('burstProbability', 0, 1, false);
  number('graceMs', 0, 600_000, true);
  number('sampleIntervalMs', 10, 3_600_000, true);
  number('illegalStateProbability', 0, 1, false);
  number('lambdaLatencyMs', 0, 10_000, true);
  if (options.console !== undefined && typeof options.console !== 'boolean')
    fail('console must be a boolean');
  for (const name of ['onProgress', 'onStarted', 'keepOpen'] as const)
    if (options[name] !== undefined && typeof options[name] !== 'function')
      fail(`${name} must be a function`);
}

/**
 * The value at quantile `q` (0-1) of sorted samples (nearest rank).
 *
 * @param sorted - ascending samples
 * @param q - the quantile
 */
export function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function randomBody(random: () => number): Partial<AirconSettings> {
  const body: Partial<AirconSettings> = {};
  const count = random() < 0.6 ? 1 : 2;
  const fields = [...FIELDS].sort(() => random() - 0.5).slice(0, count);
  for (const field of fields) {
    if (field === 'power') body.power = random() < 0.7 ? 'on' : 'off';
    else if (field === 'mode') body.mode = AIRCON_MODES[Math.floor(random() * AIRCON_MODES.length)] ?? 'cool';
    else body.targetTemp = 16 + Math.floor(random() * 15);
  }
  return body;
}

function readState(
  system: LocalSystem,
  thingName: string,
): { version: number; desired?: JsonObject; reported?: JsonObject } | undefined {
  const record = system.service.engine.read({ thingName });
  if (record === undefined || !('state' in record)) return undefined;
  const state = record.state as { desired?: JsonObject; reported?: JsonObject };
  return {
    version: record.version,
    ...(state.desired === undefined ? {} : { desired: state.desired }),
    ...(state.reported === undefined ? {} : { reported: state.reported }),
  };
}

/**
 * Runs the demo: starts the local system, sends app traffic for `durationMs`, waits up to `graceMs` for the fleet
 * to converge, checks every committed change, and stops everything.
 *
 * @param options - see {@link DemoOptions}
 * @returns the summary ({@link formatDemoSummary} prints it; {@link demoPassed} says whether the run passed)
 * @throws ShadowOptionsError for invalid options; Error when the system cannot start
 * @example
 * const summary = await runDemo({ devices: 10, durationMs: 4_000 });
 * console.log(formatDemoSummary(summary).join('\n'));
 * process.exitCode = demoPassed(summary) ? 0 : 1;
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  checkOptions(options);
  const d = DEMO_DEFAULTS;
  const devices = options.devices ?? d.devices;
  const durationMs = options.durationMs ?? d.durationMs;
  const split = options.split ?? d.split;
  const seed = options.seed ?? d.seed;
  const rate = options.changesPerSecond ?? Math.max(1, devices / 5);
  const burstProbability = options.burstProbability ?? d.burstProbability;
  const graceMs = options.graceMs ?? d.graceMs;
  const lambdaLatencyMs = options.lambdaLatencyMs ?? d.lambdaLatencyMs;
  const random = seededRandom(seed ^ 0x5eed);

  const changes: Change[] = [];
  // Changes not yet seen on their unit, by thing: matched when the unit applies the same value.
  const awaitingDevice = new Map<string, Change[]>();
  let conflicts = 0;
  const conflicted: { thingName: string; expectedVersion: number }[] = [];
  let retries = 0;
  let throttled = 0;
  let cleanupConflicts = 0;

  const system = await startLocalSystem({
    console: options.console === false ? false : 'loopback',
    devices,
    split,
    seed,
    sampleIntervalMs: options.sampleIntervalMs ?? d.sampleIntervalMs,
    illegalStateProbability: options.illegalStateProbability ?? d.illegalStateProbability,
    lambdaLatencyMs,
    onApplied(thingName, values, at, version) {
      const waiting = awaitingDevice.get(thingName);
      if (waiting === undefined) return;
      const still: Change[] = [];
      for (const change of waiting) {
        const applied = (values as Record<string, JsonValue | undefined>)[change.field];
        if (applied === undefined) {
          still.push(change);
          continue;
        }
        const same = jsonEqual(applied, change.value);
        if (change.version !== undefined) {
          // Answered: a delta of its version or later settles it, as delivered (same value) or superseded.
          if (change.version > version) still.push(change);
          else if (same) change.reachedDeviceMs = at - change.issuedAt;
        } else if (same) {
          // The unit can get the delta before the Lambda's answer reaches the app.
          change.reachedDeviceMs = at - change.issuedAt;
        } else still.push(change);
      }
      awaitingDevice.set(thingName, still);
    },
    onShadowEvent(lambda, event) {
      if (lambda === 'desired-cleanup') {
        if (event.type === 'conflict') cleanupConflicts++;
        return;
      }
      if (event.type === 'conflict') {
        conflicts++;
        conflicted.push({ thingName: event.target.thingName, expectedVersion: event.expectedVersion });
      } else if (event.type === 'retry') retries++;
      else if (event.type === 'throttled' && event.source === 'service') throttled++;
    },
  });

  options.onStarted?.({
    httpEndpoint: system.service.httpEndpoint,
    mqttUrl: system.service.mqttUrl,
    consoleUrl: system.service.consoleUrl,
  });
  try {
    // The desired section of every version the service committed, from its own `update/documents` messages.
    const stateAt = new Map<string, Map<number, { desired?: JsonObject; reported?: JsonObject }>>();
    const stopWatching = system.service.engine.onMessage((message) => {
      if (!message.topic.endsWith('/shadow/update/documents') || message.topic.includes('/shadow/name/'))
        return;
      const thingName = message.topic.split('/')[2] ?? '';
      const body = JSON.parse(Buffer.from(message.payload).toString('utf8')) as {
        previous: { version: number; state: ShadowSections } | null;
        current: { version: number; state: ShadowSections };
      };
      let versions = stateAt.get(thingName);
      if (versions === undefined) {
        versions = new Map();
        stateAt.set(thingName, versions);
      }
      versions.set(body.current.version, body.current.state);
      // The version before the first one watched (the units' first reports) comes as `previous`.
      if (body.previous !== null && !versions.has(body.previous.version))
        versions.set(body.previous.version, body.previous.state);
    });

    const things = system.fleet.map((unit) => unit.thingName);
    const versionAtStart = new Map(things.map((name) => [name, readState(system, name)?.version ?? 0]));
    const fleetVersions = () =>
      things.reduce(
        (sum, name) => sum + (readState(system, name)?.version ?? 0) - (versionAtStart.get(name) ?? 0),
        0,
      );
    const telemetryHandled = () => system.service.rules.stats().TelemetryRule?.actionsSucceeded ?? 0;

    let inFlight = 0;
    const requests = new Set<Promise<void>>();
    let issuedRequests = 0;
    const send = (thingName: string, body: Partial<AirconSettings>) => {
      const issuedAt = Date.now();
      const request = issuedRequests++;
      const sent: Change[] = Object.entries(body).map(([field, value]) => ({
        request,
        thingName,
        field: field as Field,
        value: value as JsonValue,
        issuedAt,
      }));
      changes.push(...sent);
      const waiting = awaitingDevice.get(thingName) ?? [];
      waiting.push(...sent);
      awaitingDevice.set(thingName, waiting);
      inFlight++;
      const call = system
        .setDesired(thingName, body)
        .then((response) => {
          const status = response.statusCode ?? 0;
          let parsed: { version?: number; skipped?: boolean } = {};
          try {
            parsed = JSON.parse(String(response.body ?? '{}')) as typeof parsed;
          } catch {
            // A non-JSON body counts as a failed request below (its status is kept).
          }
          for (const change of sent) {
            change.status = status;
            if (status === 200 && typeof parsed.version === 'number') {
              change.version = parsed.version;
              change.skipped = parsed.skipped === true;
            }
          }
        })
        .catch(() => {
          for (const change of sent) change.status = 0;
        })
        .finally(() => {
          inFlight--;
          requests.delete(call);
        });
      requests.add(call);
    };

    const progress = (phase: DemoProgress['phase'], startedAt: number): DemoProgress => ({
      phase,
      elapsedMs: Date.now() - startedAt,
      issued: issuedRequests,
      committed: countRequests(changes, (c) => c.status === 200 && c.skipped === false),
      inFlight,
      conflicts,
      retries,
      versions: fleetVersions(),
      alerts: system.alerts.alerts.length,
      telemetry: telemetryHandled(),
    });

    // ---- app traffic ----------------------------------------------------------------------------------------
    const trafficStart = Date.now();
    let nextArrival = trafficStart;
    let nextProgress = trafficStart + 1_000;
    const stopped = () => options.signal?.aborted === true;
    while (Date.now() - trafficStart < durationMs && !stopped()) {
      const now = Date.now();
      while (nextArrival <= now) {
        // Poisson arrivals: exponential gaps with mean 1/rate.
        nextArrival += (-Math.log(1 - random()) / rate) * 1_000;
        const thingName = things[Math.floor(random() * things.length)] ?? 'aircon-1';
        const burst = random() < burstProbability ? 2 + Math.floor(random() * 2) : 1;
        for (let i = 0; i < burst && inFlight < MAX_IN_FLIGHT; i++) {
          send(thingName, randomBody(random));
        }
      }
      if (now >= nextProgress) {
        options.onProgress?.(progress('traffic', trafficStart));
        nextProgress += 1_000;
      }
      await sleep(TICK_MS);
    }
    const trafficMs = Date.now() - trafficStart;
    const versionsDuringTraffic = fleetVersions();

    // ---- convergence ------------------------------------------------------------------------------------------
    const trafficEnd = Date.now();
    let convergedAfterMs: number | undefined;
    let unconverged: string[] = [];
    const deadline = trafficEnd + graceMs;
    nextProgress = trafficEnd + 1_000;
    while (true) {
      if (requests.size === 0) {
        unconverged = [];
        for (const unit of system.fleet) {
          const state = readState(system, unit.thingName);
          const delta = computeDelta(state?.desired, state?.reported);
          const settings = unit.settings();
          const reported = state?.reported ?? {};
          const applied = FIELDS.every((field) => jsonEqual(reported[field] ?? null, settings[field]));
          if (delta !== undefined || !applied)
            unconverged.push(
              `${unit.thingName}: delta ${JSON.stringify(delta ?? {})}, device ${JSON.stringify(settings)}`,
            );
        }
        if (unconverged.length === 0) {
          convergedAfterMs = Date.now() - trafficEnd;
          break;
        }
      }
      if (Date.now() >= deadline) {
        if (requests.size > 0) unconverged = [`${requests.size} app requests still unanswered`];
        break;
      }
      if (Date.now() >= nextProgress) {
        options.onProgress?.(progress('converging', trafficStart));
        nextProgress += 1_000;
      }
      await sleep(100);
    }
    // Every Lambda answers within its retry budget (10 s); the bound only guards the demo against a hang.
    let guard: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...requests]),
      new Promise<void>((resolve) => {
        guard = setTimeout(resolve, 15_000);
      }),
    ]);
    clearTimeout(guard);

    // ---- the end: stop the units' sampling, let the rules finish, then check every change ----------------------
    for (const unit of system.fleet) unit.stopSampling();
    await sleep(200); // the last telemetry messages are on their way (QoS 0, loopback)
    await system.rulesIdle();
    stopWatching();

    const lostDetails = findLostUpdates(
      changes,
      (thingName, version) => stateAt.get(thingName)?.get(version),
      (thingName) => readState(system, thingName),
    );

    // Changes the unit had already applied when they were committed send no delta: no time to measure.
    const neededDelta = (c: Change) => {
      const reported =
        c.version === undefined ? undefined : stateAt.get(c.thingName)?.get(c.version)?.reported;
      return !jsonEqual(reported?.[c.field] ?? null, c.value);
    };
    const conflictsWith: Record<ConflictCause, number> = { app: 0, device: 0, cleanup: 0, unknown: 0 };
    for (const { thingName, expectedVersion } of conflicted) {
      const versions = stateAt.get(thingName);
      conflictsWith[conflictCause(versions?.get(expectedVersion), versions?.get(expectedVersion + 1))]++;
    }

    const latencies = changes
      .filter(
        (c) => c.status === 200 && c.skipped === false && c.reachedDeviceMs !== undefined && neededDelta(c),
      )
      .map((c) => c.reachedDeviceMs as number)
      .sort((a, b) => a - b);
    const failed: Record<string, number> = {};
    for (const [status, count] of countByRequest(changes)) {
      if (status !== 200) failed[String(status)] = count;
    }
    const hours = trafficMs / 3_600_000;
    const summary: DemoSummary = {
      devices,
      split,
      durationMs: trafficMs,
      lambdaLatencyMs,
      issued: issuedRequests,
      committed: countRequests(changes, (c) => c.status === 200 && c.skipped === false),
      unchanged: countRequests(changes, (c) => c.status === 200 && c.skipped === true),
      failed,
      conflicts,
      conflictsWith,
      retries,
      throttled,
      cleanupConflicts,
      lostUpdates: lostDetails.length,
      lostDetails,
      changeToDevice: {
        samples: latencies.length,
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
      },
      versionsPerHourPerDevice: versionsDuringTraffic / devices / hours,
      fleetVersions: versionsDuringTraffic,
      alerts: system.alerts.alerts.length,
      illegalStates: system.fleet.reduce((sum, unit) => sum + unit.stats().illegalStates, 0),
      telemetryRecords: await system.countTelemetryRecords(),
      telemetryPublished: system.fleet.reduce((sum, unit) => sum + unit.agent.stats().telemetryPublished, 0),
      converged: convergedAfterMs !== undefined,
      convergedAfterMs,
      unconverged,
      lambdaInstances: system.lambdaInstances(),
    };
    await options.keepOpen?.(summary);
    return summary;
  } finally {
    await system.close();
  }
}

/**
 * Who made version `v + 1`, from the documents of `v` and `v + 1`: only reported changed → a unit's report;
 * only desired keys removed → desired-cleanup; any desired value set → an app request.
 *
 * @param before - the document of the version a write expected
 * @param after - the document of the next version
 */
export function conflictCause(
  before: ShadowSections | undefined,
  after: ShadowSections | undefined,
): ConflictCause {
  if (before === undefined || after === undefined) return 'unknown';
  const desiredBefore = before.desired ?? {};
  const desiredAfter = after.desired ?? {};
  if (jsonEqual(desiredBefore, desiredAfter))
    return jsonEqual(before.reported ?? {}, after.reported ?? {}) ? 'unknown' : 'device';
  const setsValue = Object.keys(desiredAfter).some(
    (key) => !jsonEqual(desiredAfter[key] as JsonValue, (desiredBefore[key] ?? null) as JsonValue),
  );
  return setsValue ? 'app' : 'cleanup';
}

/** A desired change the app made, as {@link findLostUpdates} checks it. */
export interface CommittedChange {
  thingName: string;
  field: string;
  value: JsonValue;
  /** HTTP status of the Lambda's answer; only 200s are checked. */
  status?: number | undefined;
  /** The version the Lambda answered with (committed, or read when the value was already desired). */
  version?: number | undefined;
}

/** The sections of a shadow at one version. */
export interface ShadowSections {
  desired?: JsonObject;
  reported?: JsonObject;
}

/**
 * Checks that no committed change was lost. A change answered 200 at version `v` must be in the service's
 * document of version `v`; and the newest such change of each field (highest version) must still be desired at
 * the end, or, when `desired` no longer has the field, be what the unit reports (desired-cleanup removes only
 * values equal to reported). Any other committed change was superseded by a later committed change of the same
 * field, which is what the app asked for.
 *
 * @param changes - every change the app made (failed ones are skipped)
 * @param stateAt - the service's document of a version (from its `update/documents` messages)
 * @param finalState - the shadow at the end
 * @returns one line per lost update (empty when none was lost)
 */
export function findLostUpdates(
  changes: readonly CommittedChange[],
  stateAt: (thingName: string, version: number) => ShadowSections | undefined,
  finalState: (thingName: string) => ShadowSections | undefined,
): string[] {
  const winners = new Map<string, CommittedChange & { version: number }>();
  const lost: string[] = [];
  const show = (change: CommittedChange) =>
    `${change.thingName}.${change.field}=${JSON.stringify(change.value)}`;
  for (const change of changes) {
    if (change.status !== 200 || change.version === undefined) continue;
    const desired = stateAt(change.thingName, change.version)?.desired;
    if (desired === undefined || !jsonEqual(desired[change.field] ?? null, change.value)) {
      lost.push(
        `${show(change)}: answered as committed at version ${change.version}, whose desired is ${JSON.stringify(desired ?? null)}`,
      );
      continue;
    }
    const key = `${change.thingName}/${change.field}`;
    const winner = winners.get(key);
    if (winner === undefined || winner.version < change.version)
      winners.set(key, { ...change, version: change.version });
  }
  for (const change of winners.values()) {
    const state = finalState(change.thingName);
    const desired = state?.desired?.[change.field];
    const reported = state?.reported?.[change.field];
    const kept =
      desired !== undefined ? jsonEqual(desired, change.value) : jsonEqual(reported ?? null, change.value);
    if (!kept)
      lost.push(
        `${show(change)} (version ${change.version}): final desired ${JSON.stringify(desired ?? null)}, reported ${JSON.stringify(reported ?? null)}`,
      );
  }
  return lost;
}

/** Requests are counted once, however many fields they changed. */
function countRequests(changes: readonly Change[], predicate: (change: Change) => boolean): number {
  const seen = new Set<number>();
  for (const change of changes) if (predicate(change)) seen.add(change.request);
  return seen.size;
}

function countByRequest(changes: readonly Change[]): Map<number, number> {
  const statusOf = new Map<number, number>();
  for (const change of changes) statusOf.set(change.request, change.status ?? 0);
  const counts = new Map<number, number>();
  for (const status of statusOf.values()) counts.set(status, (counts.get(status) ?? 0) + 1);
  return counts;
}

/**
 * True when the run kept its promises: no lost update and a converged fleet.
 *
 * @param summary - what {@link runDemo} returned
 */
export function demoPassed(summary: DemoSummary): boolean {
  return summary.lostUpdates === 0 && summary.converged;
}

const integer = (value: number) => Math.round(value).toLocaleString('en-US');
const ms = (value: number | undefined) => (value === undefined ? 'n/a' : `${integer(value)} ms`);

/**
 * One line of progress, for example `  5 s  traffic   changes 48 (45 committed, 2 in flight)  conflicts 3 ...`.
 *
 * @param progress - what {@link DemoOptions.onProgress} received
 */
export function formatDemoProgress(progress: DemoProgress): string {
  const seconds = String(Math.round(progress.elapsedMs / 1_000)).padStart(3);
  return (
    `${seconds} s  ${progress.phase.padEnd(10)} changes ${progress.issued} (${progress.committed} committed, ` +
    `${progress.inFlight} in flight)  conflicts ${progress.conflicts}  retries ${progress.retries}  ` +
    `shadow versions ${progress.versions}  alerts ${progress.alerts}  telemetry ${progress.telemetry}`
  );
}

/**
 * The summary table, one string per line.
 *
 * @param summary - what {@link runDemo} returned
 */
export function formatDemoSummary(summary: DemoSummary): string[] {
  const failed = Object.entries(summary.failed)
    .map(([status, count]) => `${count} × ${status === '0' ? 'no answer' : status}`)
    .join(', ');
  const rows: [string, string][] = [
    ['desired changes issued', integer(summary.issued)],
    ['  committed', integer(summary.committed)],
    ['  already desired (no write)', integer(summary.unchanged)],
    ['  failed', failed === '' ? '0' : failed],
    [
      'conflicts resolved (409 → re-read, re-apply)',
      `${integer(summary.conflicts)} (lost the race to: another app request ${integer(summary.conflictsWith.app)}, ` +
        `a device report ${integer(summary.conflictsWith.device)}, desired-cleanup ${integer(summary.conflictsWith.cleanup)}` +
        `${summary.conflictsWith.unknown > 0 ? `, unknown ${integer(summary.conflictsWith.unknown)}` : ''})`,
    ],
    ['retries', `${integer(summary.retries)} (429s met: ${integer(summary.throttled)})`],
    ['lost updates', integer(summary.lostUpdates)],
    [
      'change → device, p50 / p99',
      `${ms(summary.changeToDevice.p50)} / ${ms(summary.changeToDevice.p99)} (${integer(summary.changeToDevice.samples)} changes)`,
    ],
    [
      'shadow versions per hour, per unit',
      `${integer(summary.versionsPerHourPerDevice)} (${integer(summary.fleetVersions)} versions in the run)`,
    ],
    [
      'alerts raised',
      `${integer(summary.alerts)} (illegal states entered: ${integer(summary.illegalStates)})`,
    ],
    [
      'telemetry records written',
      `${integer(summary.telemetryRecords)} (messages published: ${integer(summary.telemetryPublished)})`,
    ],
    [
      'fleet converged',
      summary.converged
        ? `yes, ${ms(summary.convergedAfterMs)} after app traffic stopped`
        : `NO: ${summary.unconverged.length} units still differ`,
    ],
    ['desired-cleanup conflicts resolved', integer(summary.cleanupConflicts)],
    ['set-desired instances (peak concurrency)', integer(summary.lambdaInstances)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const mode = summary.split
    ? 'split policy ON: temperature and humidity go to my/things/<thing>/state'
    : 'split policy OFF (--no-split): every value goes to the shadow, as in the seed';
  const lines = [
    '',
    `shadow-sync demo: ${summary.devices} air conditioners, ${(summary.durationMs / 1_000).toFixed(1)} s of app traffic, ` +
      `${summary.lambdaLatencyMs} ms Lambda ↔ service round trip`,
    mode,
    '',
    ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`),
    '',
  ];
  for (const detail of summary.lostDetails.slice(0, 10)) lines.push(`  lost: ${detail}`);
  for (const detail of summary.unconverged.slice(0, 10)) lines.push(`  not converged: ${detail}`);
  lines.push(
    demoPassed(summary)
      ? 'PASS: no update was lost and every unit shows what the app asked for.'
      : 'FAIL: see the lines above.',
  );
  return lines;
}

/**
 * The seed's failure side by side: the same fleet, traffic and seed with and without the split policy.
 *
 * @param split - a run with the split policy
 * @param noSplit - the same run with `split: false`
 */
export function formatDemoComparison(split: DemoSummary, noSplit: DemoSummary): string[] {
  const failedCount = (summary: DemoSummary) => Object.values(summary.failed).reduce((a, b) => a + b, 0);
  const rows: [string, (summary: DemoSummary) => string][] = [
    ['desired changes issued', (x) => integer(x.issued)],
    ['  committed', (x) => integer(x.committed)],
    ['  failed', (x) => integer(failedCount(x))],
    ['conflicts resolved', (x) => integer(x.conflicts)],
    ['  lost to a device report', (x) => integer(x.conflictsWith.device)],
    ['retries', (x) => integer(x.retries)],
    ['lost updates', (x) => integer(x.lostUpdates)],
    ['change → device, p50 / p99', (x) => `${ms(x.changeToDevice.p50)} / ${ms(x.changeToDevice.p99)}`],
    ['shadow versions per hour, per unit', (x) => integer(x.versionsPerHourPerDevice)],
    ['alerts raised', (x) => integer(x.alerts)],
    ['telemetry records written', (x) => integer(x.telemetryRecords)],
    ['fleet converged', (x) => (x.converged ? 'yes' : 'NO')],
  ];
  const label = Math.max(...rows.map(([name]) => name.length));
  const column = Math.max(12, ...rows.map(([, value]) => value(split).length));
  return [
    '',
    `shadow-sync demo, side by side: ${split.devices} air conditioners, ${(split.durationMs / 1_000).toFixed(1)} s ` +
      `of app traffic each, ${split.lambdaLatencyMs} ms Lambda ↔ service round trip`,
    '',
    `  ${''.padEnd(label)}  ${'split'.padStart(column)}  ${'no split (seed)'.padStart(15)}`,
    ...rows.map(
      ([name, value]) =>
        `  ${name.padEnd(label)}  ${value(split).padStart(column)}  ${value(noSplit).padStart(15)}`,
    ),
    '',
    demoPassed(split) && demoPassed(noSplit)
      ? 'PASS: no update was lost and the fleet converged in both runs; without the split, every sample is a shadow version.'
      : 'FAIL: a run lost an update or did not converge (run it alone for the details).',
  ];
}

// Matched on the path, not import.meta.url: this module is also bundled into the `shadow-sync` CLI.
if (/examples[\\/]demo\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  void import('../src/cli/demo-command.js').then(async ({ demoCommand }) => {
    process.exitCode = await demoCommand.run(process.argv.slice(2), {
      stdout: (line) => process.stdout.write(`${line}\n`),
      stderr: (line) => process.stderr.write(`${line}\n`),
    });
  });
}
