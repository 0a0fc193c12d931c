/**
 * An air conditioner on the device agent, as the seed's product had them: power, mode and target temperature
 * live in the shadow (the app sets them, the device follows the deltas and reports what it applied);
 * temperature and humidity are telemetry, sampled every second and sent through a split policy to
 * `my/things/<thingName>/state`, so they never bump the shadow's version. Now and then (seeded, so a run is
 * repeatable) the unit reports `someIllegalState: true` for a couple of samples, which the seed's IoT rule
 * catches.
 *
 * With `split: false` the same unit reports every value to the shadow, as the seed's devices did before the
 * fix: each sample is a new shadow version, and the app's versioned updates start meeting 409s.
 *
 * Run alone against any service (the local one from `npx shadow-sync serve`, or AWS IoT with TLS options):
 * `npx tsx examples/device/aircon.ts mqtt://127.0.0.1:1883 aircon-1 [--no-split]`
 */
import type { IClientOptions } from 'mqtt';
import { createDeviceAgent, type DeviceAgent, type DeviceMqttOption } from '../../src/device/index.js';
import { type JsonObject, ShadowOptionsError, type SplitPolicy, splitPolicy } from '../../src/index.js';

/** The operating modes the unit knows. */
export const AIRCON_MODES = Object.freeze(['cool', 'heat', 'dry', 'fan', 'auto'] as const);
/** An operating mode. */
export type AirconMode = (typeof AIRCON_MODES)[number];

/** What the app controls (the shadow's `desired`, and what the unit reports having applied). */
export interface AirconSettings {
  power: 'on' | 'off';
  mode: AirconMode;
  /** °C, 16-30 (the app's schema allows the same range). */
  targetTemp: number;
}

/** What the unit measures (telemetry). */
export interface AirconReadings {
  /** °C, one decimal. */
  temperature: number;
  /** Relative humidity in %, whole numbers. */
  humidity: number;
}

/** Counters of one simulated unit. */
export interface AirconStats {
  /** Samples taken (each one is a `report()`). */
  samples: number;
  /** Times the unit entered the illegal state. */
  illegalStates: number;
  /** Deltas the unit applied. */
  deltasApplied: number;
  /** Delta values the unit refused (out of range, unknown mode). */
  valuesRefused: number;
}

/** Options of {@link startAircon}. `thingName` and `mqtt` are required. */
export interface AirconOptions {
  /** The unit's thing name. */
  thingName: string;
  /** Broker URL, URL with mqtt.js options, or an mqtt.js client (passed to the device agent). */
  mqtt: DeviceMqttOption;
  /**
   * Send temperature and humidity to the telemetry topic (the seed's fix). `false` reports them to the shadow.
   * @defaultValue true
   */
  split?: boolean;
  /**
   * Seed of the unit's random numbers (sensor noise, illegal states).
   * @defaultValue derived from the thing name
   */
  seed?: number;
  /**
   * Milliseconds between two samples.
   * @defaultValue 1000
   */
  sampleIntervalMs?: number;
  /**
   * Probability, per sample, that the unit enters the illegal state (when it is not in it already).
   * @defaultValue 0.01
   */
  illegalStateProbability?: number;
  /**
   * Samples the illegal state lasts before the unit reports it cleared.
   * @defaultValue 2
   */
  illegalStateSamples?: number;
  /**
   * The settings the unit starts with (and reports on start, which creates its shadow).
   * @defaultValue { power: 'off', mode: 'cool', targetTemp: 24 }
   */
  initial?: Partial<AirconSettings>;
  /**
   * Room temperature the unit drifts toward when off, °C.
   * @defaultValue 29
   */
  ambientTemp?: number;
  /**
   * Called after the unit applied a delta, with the values applied, the time (epoch ms) and the shadow version
   * of the delta.
   * @defaultValue none
   */
  onApplied?: (values: Partial<AirconSettings>, at: number, version: number) => void;
  /**
   * Clock in epoch milliseconds: how far the readings drift between two samples, and the agent's clock.
   * @defaultValue Date.now
   */
  clock?: () => number;
  /**
   * Further device agent options (timeouts, resync interval). `thingName`, `mqtt`, `onDelta` and `policy` are
   * set by the simulator.
   * @defaultValue {}
   */
  agent?: {
    requestTimeoutMs?: number;
    resyncIntervalMs?: number;
    coalesceMs?: number;
  };
}

/** A running simulated air conditioner. */
export interface AirconSimulator {
  readonly thingName: string;
  /** The device agent the unit runs on. */
  readonly agent: DeviceAgent;
  /** The settings the unit runs with now. */
  settings(): AirconSettings;
  /** The latest sample. */
  readings(): AirconReadings;
  /** True while the unit reports the illegal state. */
  illegal(): boolean;
  stats(): AirconStats;
  /** Takes one sample now and reports it (the timer does this every `sampleIntervalMs`). */
  sample(): void;
  /** Stops sampling (the agent keeps following deltas). */
  stopSampling(): void;
  /** Stops sampling and closes the agent. */
  close(): Promise<void>;
}

/** Defaults of {@link AirconOptions}. */
export const AIRCON_DEFAULTS = Object.freeze({
  split: true,
  sampleIntervalMs: 1_000,
  illegalStateProbability: 0.01,
  illegalStateSamples: 2,
  ambientTemp: 29,
  initial: Object.freeze({ power: 'off', mode: 'cool', targetTemp: 24 } satisfies AirconSettings),
});

const OPTION_KEYS = new Set([
  'thingName',
  'mqtt',
  'split',
  'seed',
  'sampleIntervalMs',
  'illegalStateProbability',
  'illegalStateSamples',
  'initial',
  'ambientTemp',
  'onApplied',
  'clock',
  'agent',
]);
const AGENT_KEYS = new Set(['requestTimeoutMs', 'resyncIntervalMs', 'coalesceMs']);

/** The split policy of the seed's fix: temperature and humidity to the telemetry topic, the rest to the shadow. */
export function airconSplitPolicy(split: boolean): SplitPolicy {
  return split
    ? splitPolicy({
        fields: { temperature: 'telemetry', humidity: 'telemetry' },
        telemetryTopic: 'my/things/{thingName}/state',
      })
    : splitPolicy({});
}

/**
 * A small seeded generator (mulberry32): numbers in [0, 1), the same sequence for the same seed.
 *
 * @param seed - any integer
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A stable seed from a string (FNV-1a), so each unit of a fleet has its own repeatable sequence. */
export function seedFromName(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function fail(message: string): never {
  throw new ShadowOptionsError(`startAircon: ${message}`);
}

function isSettingsValue(key: string, value: unknown): boolean {
  if (key === 'power') return value === 'on' || value === 'off';
  if (key === 'mode') return (AIRCON_MODES as readonly unknown[]).includes(value);
  if (key === 'targetTemp') return typeof value === 'number' && value >= 16 && value <= 30;
  return false;
}

interface ResolvedAirconOptions {
  thingName: string;
  mqtt: DeviceMqttOption;
  split: boolean;
  seed: number;
  sampleIntervalMs: number;
  illegalStateProbability: number;
  illegalStateSamples: number;
  initial: AirconSettings;
  ambientTemp: number;
  onApplied: ((values: Partial<AirconSettings>, at: number, version: number) => void) | undefined;
  clock: () => number;
  agent: NonNullable<AirconOptions['agent']>;
}

/**
 * Validates {@link AirconOptions} and fills in the defaults.
 *
 * @throws ShadowOptionsError naming the option for an unknown key or an out-of-range value
 */
export function resolveAirconOptions(options: AirconOptions): ResolvedAirconOptions {
  if (typeof options !== 'object' || options === null) fail('options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) fail(`unknown option ${key} (allowed: ${[...OPTION_KEYS].join(', ')})`);
  }
  for (const key of Object.keys(options.agent ?? {})) {
    if (!AGENT_KEYS.has(key)) fail(`unknown option agent.${key} (allowed: ${[...AGENT_KEYS].join(', ')})`);
  }
  if (typeof options.thingName !== 'string' || options.thingName === '') fail('thingName must be a string');
  const d = AIRCON_DEFAULTS;
  const sampleIntervalMs = options.sampleIntervalMs ?? d.sampleIntervalMs;
  if (!Number.isInteger(sampleIntervalMs) || sampleIntervalMs < 10)
    fail(`sampleIntervalMs must be an integer ≥ 10, got ${String(sampleIntervalMs)}`);
  const probability = options.illegalStateProbability ?? d.illegalStateProbability;
  if (typeof probability !== 'number' || !(probability >= 0 && probability <= 1))
    fail(`illegalStateProbability must be in [0, 1], got ${String(probability)}`);
  const illegalStateSamples = options.illegalStateSamples ?? d.illegalStateSamples;
  if (!Number.isInteger(illegalStateSamples) || illegalStateSamples < 1)
    fail(`illegalStateSamples must be an integer ≥ 1, got ${String(illegalStateSamples)}`);
  const initial: AirconSettings = { ...d.initial, ...(options.initial ?? {}) };
  for (const [key, value] of Object.entries(initial)) {
    if (!isSettingsValue(key, value)) fail(`initial.${key} is not a valid setting: ${JSON.stringify(value)}`);
  }
  const ambientTemp = options.ambientTemp ?? d.ambientTemp;
  if (typeof ambientTemp !== 'number' || !Number.isFinite(ambientTemp))
    fail(`ambientTemp must be a finite number, got ${String(ambientTemp)}`);
  if (options.onApplied !== undefined && typeof options.onApplied !== 'function')
    fail('onApplied must be a function');
  if (options.clock !== undefined && typeof options.clock !== 'function') fail('clock must be a function');
  return {
    thingName: options.thingName,
    mqtt: options.mqtt,
    split: options.split ?? d.split,
    seed: options.seed ?? seedFromName(options.thingName),
    sampleIntervalMs,
    illegalStateProbability: probability,
    illegalStateSamples,
    initial,
    ambientTemp,
    onApplied: options.onApplied,
    clock: options.clock ?? Date.now,
    agent: options.agent ?? {},
  };
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * Starts a simulated air conditioner: its device agent connects, reports the initial settings and readings
 * (creating the shadow if needed), follows deltas, and samples every `sampleIntervalMs`.
 *
 * @param options - see {@link AirconOptions}
 * @returns the running unit
 * @throws ShadowOptionsError for invalid options
 * @example
 * const unit = await startAircon({ thingName: 'aircon-1', mqtt: service.mqttUrl });
 * await unit.agent.whenSynced();
 * await unit.close();
 */
export async function startAircon(options: AirconOptions): Promise<AirconSimulator> {
  const o = resolveAirconOptions(options);
  const random = seededRandom(o.seed);
  const settings: AirconSettings = { ...o.initial };
  const readings: AirconReadings = {
    temperature: round(o.ambientTemp - 2 + random() * 4, 1),
    humidity: Math.round(45 + random() * 20),
  };
  const stats: AirconStats = { samples: 0, illegalStates: 0, deltasApplied: 0, valuesRefused: 0 };
  let illegalLeft = 0;
  let lastSampleAt = o.clock();

  const agent = await createDeviceAgent({
    thingName: o.thingName,
    mqtt: o.mqtt,
    policy: airconSplitPolicy(o.split),
    clock: o.clock,
    ...o.agent,
    onDelta(delta, context) {
      // Apply what the unit can do; answer with the value it keeps for anything it cannot (the agent then
      // reports that value and flags a conflict, so the app sees the refusal instead of a silent drop).
      const applied: Partial<AirconSettings> = {};
      const answer: JsonObject = {};
      for (const [key, value] of Object.entries(delta)) {
        if (key !== 'power' && key !== 'mode' && key !== 'targetTemp') continue;
        if (isSettingsValue(key, value)) {
          (applied as Record<string, unknown>)[key] = value;
          answer[key] = value;
        } else {
          stats.valuesRefused++;
          answer[key] = settings[key];
        }
      }
      Object.assign(settings, applied);
      stats.deltasApplied++;
      if (Object.keys(applied).length > 0) o.onApplied?.(applied, o.clock(), context.version);
      return answer;
    },
  });

  /** Moves the readings one step: toward the target when running, toward the room when off. */
  function drift(seconds: number): void {
    let goal = o.ambientTemp;
    let humidityGoal = 60;
    let rate = 0.02; // fraction of the gap closed per second
    if (settings.power === 'on') {
      const target = settings.targetTemp;
      const t = readings.temperature;
      if (settings.mode === 'cool') goal = Math.min(target, t);
      else if (settings.mode === 'heat') goal = Math.max(target, t);
      else if (settings.mode === 'auto') goal = target;
      else if (settings.mode === 'dry') goal = t - 0.5;
      rate = settings.mode === 'fan' ? 0.01 : 0.08;
      humidityGoal = settings.mode === 'dry' ? 35 : settings.mode === 'cool' ? 45 : 55;
    }
    const step = Math.min(1, rate * seconds);
    readings.temperature = round(
      readings.temperature + (goal - readings.temperature) * step + (random() - 0.5) * 0.1,
      1,
    );
    readings.humidity = Math.round(
      Math.min(
        100,
        Math.max(0, readings.humidity + (humidityGoal - readings.humidity) * step + (random() - 0.5) * 2),
      ),
    );
  }

  function sample(): void {
    const now = o.clock();
    drift((now - lastSampleAt) / 1000);
    lastSampleAt = now;
    stats.samples++;
    const values: JsonObject = { temperature: readings.temperature, humidity: readings.humidity };
    if (illegalLeft > 0) {
      illegalLeft--;
      // Cleared: reported false rather than deleted, so the shadow shows the unit recovered.
      if (illegalLeft === 0) values.someIllegalState = false;
    } else if (random() < o.illegalStateProbability) {
      illegalLeft = o.illegalStateSamples;
      stats.illegalStates++;
      values.someIllegalState = true;
    }
    agent.report(values);
  }

  // The first report creates the shadow (the app's set-desired answers 404 for things that never reported).
  agent.report({ ...settings, ...readings });
  let timer: ReturnType<typeof setInterval> | undefined = setInterval(sample, o.sampleIntervalMs);
  const stopSampling = () => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };

  return {
    thingName: o.thingName,
    agent,
    settings: () => ({ ...settings }),
    readings: () => ({ ...readings }),
    illegal: () => illegalLeft > 0,
    stats: () => ({ ...stats }),
    sample,
    stopSampling,
    async close() {
      stopSampling();
      await agent.close();
    },
  };
}

async function main(argv: string[]): Promise<void> {
  const positional = argv.filter((arg) => !arg.startsWith('--'));
  const [url, thingName = 'aircon-1'] = positional;
  if (url === undefined) {
    console.error('Usage: tsx examples/device/aircon.ts <mqtt-url> [thingName] [--no-split]');
    process.exitCode = 2;
    return;
  }
  const mqttOptions: IClientOptions = { reconnectPeriod: 1_000 };
  const unit = await startAircon({
    thingName,
    mqtt: { url, options: mqttOptions },
    split: !argv.includes('--no-split'),
    onApplied: (values) => console.log(`${thingName}: applied ${JSON.stringify(values)}`),
  });
  unit.agent.on('error', (error, info) =>
    console.error(
      `${thingName}: ${info.kind} error: ${error instanceof Error ? error.message : String(error)}`,
    ),
  );
  console.log(`${thingName}: running against ${url}; Ctrl-C stops`);
  const status = setInterval(() => {
    const r = unit.readings();
    console.log(`${thingName}: ${JSON.stringify(unit.settings())} ${r.temperature} °C ${r.humidity} %`);
  }, 5_000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearInterval(status);
  await unit.close();
}

// Matched on the path, not import.meta.url: this module is also bundled into the `shadow-sync` CLI.
if (/examples[\\/]device[\\/]aircon\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  void main(process.argv.slice(2));
}
