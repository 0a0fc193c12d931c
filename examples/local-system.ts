/**
 * The seed's whole system in one process, with no AWS account and no network beyond loopback:
 * - the local shadow service (embedded MQTT broker, shadows in memory) with the reference IoT rules:
 *   illegal state → `illegal-state-alert`, telemetry topic → `telemetry-sink` (NDJSON files in a temporary
 *   directory, laid out as the S3 bucket would be), `update/documents` → `desired-cleanup` (one shadow client per
 *   invocation: concurrent invocations of a Lambda run on separate instances, which neither coalesce their
 *   writes nor share a rate limiter);
 * - the app's `set-desired` Lambda, invoked with real API Gateway HTTP API (payload 2.0) events on a pool of
 *   "instances" that grows with concurrency as Lambda's does (each instance handles one event at a time and
 *   keeps its own shadow client, as a warm Lambda instance keeps its module state);
 * - a fleet of simulated air conditioners (`examples/device/aircon.ts`) on the device agent, over MQTT.
 *
 * Every Lambda talks to the service through the real AWS SDK over HTTP, as it would to AWS IoT Core.
 * Run `npx tsx examples/demo.ts` (or `npx shadow-sync demo`) to drive it with app traffic.
 */
import { randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { type ShadowService, startShadowService } from '../src/emulator/index.js';
import { type ShadowEvent, ShadowOptionsError } from '../src/index.js';
import { type AirconSettings, type AirconSimulator, startAircon } from './device/aircon.js';
import { type MemoryAlertStore, memoryAlertStore } from './lambdas/alert-store.js';
import { createDesiredCleanupHandler, DESIRED_CLEANUP_RULE_SQL } from './lambdas/desired-cleanup.js';
import { REFERENCE_RULE_NAMES, referenceRules } from './lambdas/local-rules.js';
import { directoryRecordSink } from './lambdas/record-sink.js';
import { createSetDesiredHandler, type SetDesiredHandler } from './lambdas/set-desired.js';
import { lambdaShadowClient } from './lambdas/shadows-from-environment.js';

/** Which Lambda a shadow-client event came from. */
export type LambdaName = 'set-desired' | 'desired-cleanup';

/** Options of {@link startLocalSystem}; all optional. */
export interface LocalSystemOptions {
  /**
   * Simulated air conditioners, named `aircon-1` ... `aircon-N`.
   * @defaultValue 50
   */
  devices?: number;
  /**
   * Devices send temperature and humidity to the telemetry topic (the seed's fix); `false` sends everything to
   * the shadow (the seed's original failure).
   * @defaultValue true
   */
  split?: boolean;
  /**
   * Seed of the fleet's random numbers (each unit derives its own from it and its name).
   * @defaultValue 1
   */
  seed?: number;
  /**
   * Milliseconds between two samples of each unit.
   * @defaultValue 1000
   */
  sampleIntervalMs?: number;
  /**
   * Probability per sample that a unit enters the illegal state.
   * @defaultValue 0.01
   */
  illegalStateProbability?: number;
  /**
   * Simulated network round trip, in milliseconds, between the Lambdas and the shadow service's HTTP data
   * plane (half before each request, half after its answer). In AWS a Lambda's call to the IoT data plane
   * takes tens of milliseconds; on loopback it takes well under one, which hides how often a versioned write
   * races a device's report. 0 turns it off.
   * @defaultValue 0
   */
  lambdaLatencyMs?: number;
  /**
   * Directory for the telemetry sink's NDJSON files. Without it a temporary directory is created and removed
   * by `close()`.
   * @defaultValue a new directory under the OS temporary directory
   */
  telemetryDir?: string;
  /**
   * Called after a unit applied a delta (values applied, epoch ms, shadow version of the delta).
   * @defaultValue none
   */
  onApplied?: (thingName: string, values: Partial<AirconSettings>, at: number, version: number) => void;
  /**
   * Receives the update engine's events of every Lambda's shadow client (attempts, conflicts, retries...).
   * @defaultValue none
   */
  onShadowEvent?: (lambda: LambdaName, event: ShadowEvent) => void;
  /**
   * Serve the service's web console (`'loopback'`: only on a loopback address; see `ShadowServiceOptions`).
   * @defaultValue false
   */
  console?: boolean | 'loopback';
}

/** A running local system. */
export interface LocalSystem {
  readonly service: ShadowService;
  /** The AWS SDK client the Lambdas use (the local service's HTTP endpoint). */
  readonly iot: IoTDataPlaneClient;
  /** Alerts recorded by `illegal-state-alert`. */
  readonly alerts: MemoryAlertStore;
  /** Where `telemetry-sink` writes. */
  readonly telemetryDir: string;
  /** The simulated air conditioners. */
  readonly fleet: readonly AirconSimulator[];
  /**
   * Invokes `set-desired` as API Gateway would for `PUT /things/{thingName}/desired` by the thing's owner.
   *
   * @param thingName - the path parameter
   * @param body - the JSON body
   * @returns the handler's HTTP answer
   */
  setDesired(thingName: string, body: unknown): Promise<APIGatewayProxyStructuredResultV2>;
  /** `set-desired` instances created so far (peak concurrency). */
  lambdaInstances(): number;
  /** NDJSON records the telemetry sink has written (one file per record). */
  countTelemetryRecords(): Promise<number>;
  /** Waits for every rule action started so far (alerts, telemetry, cleanup). */
  rulesIdle(): Promise<void>;
  /** Stops the fleet, the service and the SDK client; removes a temporary telemetry directory. */
  close(): Promise<void>;
}

/** Defaults of {@link LocalSystemOptions}. */
export const LOCAL_SYSTEM_DEFAULTS = Object.freeze({
  devices: 50,
  split: true,
  seed: 1,
  sampleIntervalMs: 1_000,
  illegalStateProbability: 0.01,
  lambdaLatencyMs: 0,
});

const OPTION_KEYS = new Set([
  'devices',
  'split',
  'seed',
  'sampleIntervalMs',
  'illegalStateProbability',
  'lambdaLatencyMs',
  'telemetryDir',
  'onApplied',
  'onShadowEvent',
  'console',
]);

/** The Lambdas' timeout in the deploy template (15 s); the rule actions get the same. */
const LAMBDA_TIMEOUT_MS = 15_000;
/** Units started at once: a whole fleet connecting in one burst only slows everyone's first read. */
const START_BATCH = 10;

function checkOptions(options: LocalSystemOptions): void {
  const fail = (message: string): never => {
    throw new ShadowOptionsError(`startLocalSystem: ${message}`);
  };
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) fail(`unknown option ${key} (allowed: ${[...OPTION_KEYS].join(', ')})`);
  }
  const integer = (name: keyof LocalSystemOptions, min: number, max: number) => {
    const value = options[name];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
      fail(`${name} must be an integer ${min}-${max}, got ${String(value)}`);
  };
  integer('devices', 1, 1_000);
  integer('sampleIntervalMs', 10, 3_600_000);
  integer('lambdaLatencyMs', 0, 10_000);
  integer('seed', 0, 2 ** 32 - 1);
}

/** A Powertools logger that prints nothing: the demo has its own output. */
function silentLogger(serviceName: string): Logger {
  return new Logger({ serviceName, logLevel: 'SILENT' });
}

/** Claims of a Cognito ID token whose user owns `thingName` (the `custom:things` attribute). */
function ownerClaims(thingName: string): Record<string, string> {
  return {
    sub: `owner-of-${thingName}`,
    'cognito:username': `owner-of-${thingName}`,
    token_use: 'id',
    'custom:things': thingName,
  };
}

/**
 * The event API Gateway's HTTP API (payload format 2.0) delivers for `PUT /things/{thingName}/desired`
 * after its Cognito JWT authorizer accepted the caller.
 *
 * @param thingName - the path parameter
 * @param body - the request body as sent (a JSON string)
 * @param claims - the verified JWT claims
 */
export function putDesiredEvent(
  thingName: string,
  body: string,
  claims: Record<string, string>,
): APIGatewayProxyEventV2WithJWTAuthorizer {
  const now = Date.now();
  const requestId = randomUUID();
  return {
    version: '2.0',
    routeKey: 'PUT /things/{thingName}/desired',
    rawPath: `/things/${thingName}/desired`,
    rawQueryString: '',
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      authorization: 'Bearer <id token>',
    },
    pathParameters: { thingName },
    isBase64Encoded: false,
    body,
    requestContext: {
      accountId: '123456789012',
      apiId: 'local',
      domainName: 'local.execute-api.localhost',
      domainPrefix: 'local',
      http: {
        method: 'PUT',
        path: `/things/${thingName}/desired`,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'shadow-sync-demo',
      },
      requestId,
      routeKey: 'PUT /things/{thingName}/desired',
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
      authorizer: { principalId: '', integrationLatency: 0, jwt: { claims, scopes: [] } },
    },
  };
}

/** Adds a simulated network round trip to every request of an SDK client. */
function addLatency(client: IoTDataPlaneClient, roundTripMs: number): void {
  if (roundTripMs <= 0) return;
  const half = roundTripMs / 2;
  const sleep = () => new Promise<void>((resolve) => setTimeout(resolve, half));
  client.middlewareStack.add(
    (next) => async (args) => {
      await sleep();
      const result = await next(args);
      await sleep();
      return result;
    },
    { step: 'finalizeRequest', name: 'simulatedNetworkLatency' },
  );
}

/**
 * Starts the local system: service, rules, Lambdas and fleet. Resolves once every unit has reported its first
 * state and is in sync with its shadow.
 *
 * @param options - see {@link LocalSystemOptions}
 * @throws ShadowOptionsError for invalid options; Error when a unit does not get in sync within 15 s
 * @example
 * const system = await startLocalSystem({ devices: 5 });
 * await system.setDesired('aircon-1', { power: 'on', targetTemp: 22 }); // { statusCode: 200, ... }
 * await system.close();
 */
export async function startLocalSystem(options: LocalSystemOptions = {}): Promise<LocalSystem> {
  checkOptions(options);
  const d = LOCAL_SYSTEM_DEFAULTS;
  const devices = options.devices ?? d.devices;
  const ownDir = options.telemetryDir === undefined;
  const telemetryDir = options.telemetryDir ?? (await mkdtemp(join(tmpdir(), 'shadow-sync-telemetry-')));
  const alerts = memoryAlertStore();

  // One HTTP agent with keep-alive and Nagle off: the Lambdas' calls are small request/answer pairs.
  const agent = new Agent({ keepAlive: true, noDelay: true } as ConstructorParameters<typeof Agent>[0]);
  // The service's port is known only once it runs, and the cleanup rule's client must exist before it starts:
  // the SDK asks this provider for the endpoint on every request.
  let serviceUrl: URL | undefined;
  const iot = new IoTDataPlaneClient({
    endpoint: async () => {
      if (serviceUrl === undefined) throw new Error('the local shadow service is not running yet');
      return {
        protocol: serviceUrl.protocol,
        hostname: serviceUrl.hostname,
        port: Number(serviceUrl.port),
        path: '/',
      };
    },
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestHandler: { httpAgent: agent },
    maxAttempts: 1, // the update engine retries, with full jitter
  });
  const shadowClientFor = (lambda: LambdaName) =>
    lambdaShadowClient(iot, {
      onEvent: (event) => options.onShadowEvent?.(lambda, event),
    });

  const cleanupLogger = silentLogger('desired-cleanup');
  const service = await startShadowService({
    ...(options.console === undefined ? {} : { console: options.console }),
    rules: [
      ...referenceRules({
        alertStore: alerts,
        recordSink: directoryRecordSink(telemetryDir),
        logger: silentLogger('reference-rules'),
        timeoutMs: LAMBDA_TIMEOUT_MS,
      }),
      {
        name: REFERENCE_RULE_NAMES.documents,
        sql: DESIRED_CLEANUP_RULE_SQL,
        actions: [
          {
            type: 'lambda',
            timeoutMs: LAMBDA_TIMEOUT_MS,
            // A new client per invocation, as on separate Lambda instances (see the module comment).
            handler: (event) =>
              createDesiredCleanupHandler({
                shadows: shadowClientFor('desired-cleanup'),
                logger: cleanupLogger,
              })(event),
          },
        ],
      },
    ],
  });
  serviceUrl = new URL(service.httpEndpoint);
  addLatency(iot, options.lambdaLatencyMs ?? d.lambdaLatencyMs);

  // set-desired: a pool of instances; an idle one takes the next event, a new one starts when all are busy.
  const idle: SetDesiredHandler[] = [];
  let instances = 0;
  const newInstance = (): SetDesiredHandler => {
    instances++;
    return createSetDesiredHandler({
      shadows: shadowClientFor('set-desired'),
      logger: silentLogger('set-desired'),
    });
  };

  const fleet: AirconSimulator[] = [];
  const close = async () => {
    await Promise.allSettled(fleet.map((unit) => unit.close()));
    await service.close();
    iot.destroy();
    agent.destroy();
    if (ownDir) await rm(telemetryDir, { recursive: true, force: true });
  };

  try {
    const names = Array.from({ length: devices }, (_, i) => `aircon-${i + 1}`);
    const seed = options.seed ?? d.seed;
    for (let i = 0; i < names.length; i += START_BATCH) {
      const batch = await Promise.all(
        names.slice(i, i + START_BATCH).map((thingName, j) =>
          startAircon({
            thingName,
            mqtt: { url: service.mqttUrl, options: { reconnectPeriod: 250, connectTimeout: 5_000 } },
            split: options.split ?? d.split,
            seed: (seed * 1_000_003 + i + j) >>> 0,
            sampleIntervalMs: options.sampleIntervalMs ?? d.sampleIntervalMs,
            illegalStateProbability: options.illegalStateProbability ?? d.illegalStateProbability,
            // A fleet spreads its initial settings, so the app's first changes are not all no-ops.
            initial: { power: (i + j) % 2 === 0 ? 'off' : 'on', targetTemp: 20 + ((i + j) % 8) },
            ...(options.onApplied === undefined
              ? {}
              : { onApplied: (values, at, version) => options.onApplied?.(thingName, values, at, version) }),
          }),
        ),
      );
      fleet.push(...batch);
    }
    await withTimeout(
      Promise.all(fleet.map((unit) => unit.agent.whenSynced())),
      15_000,
      'the fleet did not get in sync with its shadows within 15 s',
    );
  } catch (error) {
    await close();
    throw error;
  }

  return {
    service,
    iot,
    alerts,
    telemetryDir,
    fleet,
    async setDesired(thingName, body) {
      const handler = idle.pop() ?? newInstance();
      try {
        return await handler(putDesiredEvent(thingName, JSON.stringify(body), ownerClaims(thingName)));
      } finally {
        idle.push(handler);
      }
    },
    lambdaInstances: () => instances,
    countTelemetryRecords: () => countFiles(telemetryDir, '.ndjson'),
    rulesIdle: () => service.rules.idle(),
    close,
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Counts files ending in `suffix` below `directory` (0 when it does not exist yet). */
async function countFiles(directory: string, suffix: string): Promise<number> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true, recursive: true });
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return 0;
    throw error;
  }
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith(suffix)).length;
}
