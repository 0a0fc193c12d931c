/**
 * The local AWS IoT Device Shadow service: one shadow engine shared by the HTTP data plane and the MQTT
 * reserved topics, so an HTTP update produces the same MQTT messages as a device's publish.
 */
import type { ShadowLimits } from '../core/limits.js';
import { parseShadowTopic, shadowTopic } from '../core/topics.js';
import { ShadowOptionsError } from '../errors.js';
import type { BrokerAuthOptions, BrokerTlsOptions } from './broker.js';
import type { ConnectionQuotas } from './connection-quotas.js';
import { type ConsoleServer, createConsoleServer, isLoopbackAddress } from './console/console-server.js';
import type { ShadowEngineApi } from './engine-api.js';
import type { FaultOptions } from './fault-injector.js';
import { startHttpFront } from './http-front.js';
import { type MqttFront, type MqttFrontOptions, startMqttFront } from './mqtt-front.js';
import {
  compileShadowRules,
  createRulesEngine,
  type RuleStats,
  type RulesEngineSettings,
  resolveRulesEngineSettings,
  type ShadowRule,
} from './rules/rules-engine.js';
import { createShadowEngine, type ShadowEngine } from './shadow-engine.js';
import type { SigV4Credentials } from './sigv4.js';

/** Options of {@link startShadowService}. */
export interface ShadowServiceOptions {
  /**
   * Interface both servers listen on.
   * @defaultValue '127.0.0.1'
   */
  host?: string;
  /**
   * HTTP port; 0 picks a free port.
   * @defaultValue 0
   */
  httpPort?: number;
  /**
   * Embedded MQTT broker port; 0 picks a free port.
   * @defaultValue 0
   */
  mqttPort?: number;
  /**
   * `'embedded'` (aedes in this process: MQTT 3.1.1 and 3.1, no install needed), `'mosquitto'` (the service
   * starts and configures a mosquitto: MQTT 5, 3.1.1 and 3.1; must be installed), `'auto'` (mosquitto when
   * installed, aedes otherwise), or the `mqtt://host:port` URL of an external broker the service joins as a
   * client. `service.mqtt.brokerInfo` says which broker and MQTT versions were served.
   * @defaultValue 'embedded'
   */
  broker?: 'embedded' | 'mosquitto' | 'auto' | string;
  /**
   * AWS IoT's per-connection quotas (50 subscriptions, 8 filters per SUBSCRIBE, 100 publishes/s), enforced by
   * the embedded broker with AWS's values unless `false`; an object changes some values. Asking for them with
   * mosquitto or an external broker is refused (a managed mosquitto enforces only the 128 KB message size).
   * @defaultValue AWS's values with the embedded broker
   */
  connectionQuotas?: boolean | Partial<ConnectionQuotas>;
  /**
   * Directory for durable storage (journal + snapshot); without it the store is in memory only.
   * @defaultValue undefined
   */
  dataDir?: string;
  /**
   * Limits and quotas; unspecified ones take AWS's defaults.
   * @defaultValue DEFAULT_LIMITS
   */
  limits?: Partial<ShadowLimits>;
  /**
   * Clock in epoch milliseconds.
   * @defaultValue Date.now
   */
  clock?: () => number;
  /**
   * Faults injected into the service's outgoing shadow messages (drop, duplicate, delay, reorder).
   * @defaultValue none
   */
  faults?: FaultOptions;
  /**
   * MQTT authorization like an AWS IoT policy (embedded broker only).
   * @defaultValue undefined (open broker)
   */
  auth?: BrokerAuthOptions;
  /**
   * TLS for the embedded broker, with optional client certificates (CN = thing name).
   * @defaultValue undefined (plain TCP)
   */
  tls?: BrokerTlsOptions;
  /**
   * Require SigV4-signed HTTP requests made with these credentials (403 otherwise).
   * @defaultValue undefined (no verification)
   */
  requireSigV4?: SigV4Credentials;
  /**
   * Publish `update/delta` even when an update leaves a non-empty delta unchanged (spec 3.3).
   * @defaultValue true
   */
  publishUnchangedDelta?: boolean;
  /**
   * Further MQTT front options (response QoS, logger, external broker login, aedes tuning).
   * @defaultValue {}
   */
  mqtt?: Omit<MqttFrontOptions, 'broker' | 'host' | 'port' | 'faults' | 'auth' | 'tls' | 'connectionQuotas'>;
  /**
   * AWS IoT rules run on every message through the service: client publishes, HTTP Publish, and the shadow
   * service's own messages (`update/accepted`, `update/documents`, `update/delta`, ...). SQL outside the supported
   * subset is refused when the service starts.
   * @defaultValue []
   */
  rules?: readonly ShadowRule[];
  /**
   * Logger and loop guard of the rules engine.
   * @defaultValue {} (silent logger, maxRepublishDepth 8)
   */
  rulesEngine?: RulesEngineSettings;
  /**
   * The web console at `<httpEndpoint>/console`. `'loopback'` serves it only when the service listens on a
   * loopback address (127.0.0.0/8, ::1, localhost) and does not require SigV4, the default of `shadow-sync serve`
   * and the demo. `true` serves it wherever the service listens (a deliberate choice); when SigV4 is required it
   * then answers loopback clients only, since the console itself signs nothing and checks no signature.
   * @defaultValue false
   */
  console?: boolean | 'loopback';
}

/** The rules of a running service. */
export interface ShadowServiceRules {
  /** Counters of each rule, keyed by rule name: messages, matched, actionsSucceeded, actionsFailed, lastError, ... */
  stats(): Record<string, RuleStats>;
  /** Resolves when every rule action started so far has finished. */
  idle(): Promise<void>;
}

/** A running local shadow service. */
export interface ShadowService {
  /** `http://host:port`: the `endpoint` of an `IoTDataPlaneClient`. */
  readonly httpEndpoint: string;
  /** `mqtt://host:port` (or the external broker's URL) for devices. */
  readonly mqttUrl: string;
  /** The engine: read access to the store (`read`, `snapshot`), stats. */
  readonly engine: ShadowEngine;
  /** The MQTT front: fault injector, stats, publish as the service. */
  readonly mqtt: MqttFront;
  /** The IoT rules: stats and `idle()`. */
  readonly rules: ShadowServiceRules;
  /** `<httpEndpoint>/console` when the web console is served, otherwise `undefined`. */
  readonly consoleUrl: string | undefined;
  /** Stops both servers, waits for requests in progress, closes the journal; releases every port and file. */
  close(): Promise<void>;
}

/** Defaults of {@link ShadowServiceOptions}. */
export const SHADOW_SERVICE_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  httpPort: 0,
  mqttPort: 0,
  broker: 'embedded' as const,
});

const SERVICE_OPTION_KEYS = [
  'host',
  'httpPort',
  'mqttPort',
  'broker',
  'connectionQuotas',
  'dataDir',
  'limits',
  'clock',
  'faults',
  'auth',
  'tls',
  'requireSigV4',
  'publishUnchangedDelta',
  'mqtt',
  'rules',
  'rulesEngine',
  'console',
];

/** {@link ShadowServiceOptions} validated, with defaults applied. */
export interface ResolvedShadowServiceOptions extends ShadowServiceOptions {
  host: string;
  httpPort: number;
  mqttPort: number;
  broker: 'embedded' | string;
}

/**
 * Validates the service options (the parts each component validates are checked again there) and applies
 * the defaults.
 *
 * @throws {@link ShadowOptionsError} for an unknown key or an invalid value; {@link RuleSqlError} for a rule whose
 *   SQL is outside the supported subset
 */
export function resolveShadowServiceOptions(
  options: ShadowServiceOptions = {},
): ResolvedShadowServiceOptions {
  if (typeof options !== 'object' || options === null)
    throw new ShadowOptionsError('Shadow service options must be an object');
  for (const key of Object.keys(options))
    if (!SERVICE_OPTION_KEYS.includes(key))
      throw new ShadowOptionsError(
        `Unknown shadow service option '${key}'; known options: ${SERVICE_OPTION_KEYS.join(', ')}`,
      );
  const port = (name: 'httpPort' | 'mqttPort'): number => {
    const value = options[name] ?? SHADOW_SERVICE_DEFAULTS[name];
    if (!Number.isInteger(value) || value < 0 || value > 65535)
      throw new ShadowOptionsError(
        `Shadow service option ${name} must be an integer 0-65535, got ${String(value)}`,
      );
    return value;
  };
  const host = options.host ?? SHADOW_SERVICE_DEFAULTS.host;
  if (typeof host !== 'string' || host === '')
    throw new ShadowOptionsError('Shadow service option host must be a non-empty string');
  // Rules are checked (and their SQL parsed) here so that a bad rule fails before any port is bound.
  compileShadowRules(options.rules);
  if (options.console !== undefined && typeof options.console !== 'boolean' && options.console !== 'loopback')
    throw new ShadowOptionsError(
      `Shadow service option console must be true, false or 'loopback', got ${String(options.console)}`,
    );
  if (options.rulesEngine !== undefined) resolveRulesEngineSettings(options.rulesEngine);
  return {
    ...options,
    host,
    httpPort: port('httpPort'),
    mqttPort: port('mqttPort'),
    broker: options.broker ?? SHADOW_SERVICE_DEFAULTS.broker,
  };
}

/**
 * Starts the local shadow service: engine (with persistence when `dataDir` is set), MQTT front (embedded
 * aedes or an external broker) and the HTTP data plane.
 *
 * @param options - see {@link ShadowServiceOptions}
 * @returns the endpoints, the engine and `close()`
 * @throws {@link ShadowOptionsError} for invalid options; Error when a port cannot be bound, the external
 *   broker cannot be joined or the data directory cannot be used
 * @example
 * const service = await startShadowService({ dataDir: './shadow-data' });
 * const client = new IoTDataPlaneClient({
 *   endpoint: service.httpEndpoint, region: 'us-east-1',
 *   credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
 * });
 * await service.close();
 */
export async function startShadowService(options: ShadowServiceOptions = {}): Promise<ShadowService> {
  const resolved = resolveShadowServiceOptions(options);
  const engine = createShadowEngine({
    ...(resolved.limits === undefined ? {} : { limits: resolved.limits }),
    ...(resolved.clock === undefined ? {} : { clock: resolved.clock }),
    ...(resolved.dataDir === undefined ? {} : { dataDir: resolved.dataDir }),
    ...(resolved.publishUnchangedDelta === undefined
      ? {}
      : { publishUnchangedDelta: resolved.publishUnchangedDelta }),
  });
  let mqtt: MqttFront | undefined;
  let webConsole: ConsoleServer | undefined;
  try {
    const mqttOptions: MqttFrontOptions = { ...(resolved.mqtt ?? {}), broker: resolved.broker };
    if (resolved.broker === 'embedded' || resolved.broker === 'mosquitto' || resolved.broker === 'auto') {
      mqttOptions.host = resolved.host;
      mqttOptions.port = resolved.mqttPort;
    }
    if (resolved.faults !== undefined) mqttOptions.faults = resolved.faults;
    if (resolved.auth !== undefined) mqttOptions.auth = resolved.auth;
    if (resolved.tls !== undefined) mqttOptions.tls = resolved.tls;
    if (resolved.connectionQuotas !== undefined) mqttOptions.connectionQuotas = resolved.connectionQuotas;
    mqtt = await startMqttFront(engine, mqttOptions);
    const front = mqtt;
    const embedded = front.brokerInfo.kind === 'aedes';
    const rules = createRulesEngine({
      rules: resolved.rules ?? [],
      ...(resolved.rulesEngine ?? {}),
      ...(resolved.clock === undefined ? {} : { clock: resolved.clock }),
      async publish(topic, payload, qos) {
        const shadow = parseShadowTopic(topic);
        // A rule's republish to a shadow request topic is applied like a device publish (spec 7, DG-app). The
        // embedded broker does not route the service's own publishes back to the front, so hand it to the engine
        // here; an external broker delivers it to the service's request subscription, which does the same.
        if (embedded && shadow !== undefined && shadow.response === undefined)
          engine
            .handle({ operation: shadow.operation, target: shadow.target, payload, origin: 'mqtt' })
            .catch((error: unknown) =>
              resolved.rulesEngine?.logger?.warn(
                `shadow engine failed on a republished request: ${String(error)}`,
                {
                  topic,
                },
              ),
            );
        await front.publish(topic, payload, { qos });
      },
    });
    // Rules see client publishes (and the service's own publishes through the front: HTTP Publish, republish),
    // and the shadow service's messages before delivery faults: those are inside AWS, not on the device's link.
    const stopClientPublishes =
      resolved.rules === undefined || resolved.rules.length === 0
        ? () => {}
        : front.onClientPublish((message) => rules.ingest(message));
    await front.clientPublishesObserved();
    const stopShadowMessages = engine.onMessage((message) => rules.ingest(message));
    // HTTP Publish to a shadow request topic goes straight to the engine; rules on that topic still see it, as
    // the message passes through AWS's broker. UpdateThingShadow (origin 'http') is not a message on the `/update`
    // topic: AWS documents that REST updates publish `delta` and `documents` (spec 7), not that they pass through
    // `/update`, so rules on `/update` do not see them (undocumented; rules on `/update/documents` do).
    const httpEngine: ShadowEngineApi = {
      handle(request) {
        if (request.origin === 'mqtt')
          rules.ingest({ topic: shadowTopic(request.target, request.operation), payload: request.payload });
        return engine.handle(request);
      },
      listNamedShadows: (thingName, page) => engine.listNamedShadows(thingName, page),
      onMessage: (listener) => engine.onMessage(listener),
    };
    const consoleWanted =
      resolved.console === true ||
      (resolved.console === 'loopback' &&
        resolved.requireSigV4 === undefined &&
        (resolved.host === 'localhost' || isLoopbackAddress(resolved.host)));
    webConsole = consoleWanted
      ? createConsoleServer(engine, {
          loopbackOnly: resolved.requireSigV4 !== undefined,
          ...(resolved.clock === undefined ? {} : { clock: resolved.clock }),
        })
      : undefined;
    const served = webConsole;
    const http = await startHttpFront(httpEngine, {
      host: resolved.host,
      port: resolved.httpPort,
      publish: (topic, payload, publishOptions) => front.publish(topic, payload, publishOptions),
      ...(resolved.requireSigV4 === undefined ? {} : { requireSigV4: resolved.requireSigV4 }),
      ...(resolved.clock === undefined ? {} : { clock: resolved.clock }),
      ...(served === undefined ? {} : { console: (req, res) => served.handle(req, res) }),
    });
    let closing: Promise<void> | undefined;
    return {
      httpEndpoint: http.endpoint,
      mqttUrl: front.mqttUrl,
      engine,
      mqtt: front,
      rules: { stats: () => rules.stats(), idle: () => rules.idle() },
      consoleUrl: served === undefined ? undefined : `${http.endpoint}/console`,
      close() {
        closing ??= (async () => {
          served?.close();
          await http.close();
          stopClientPublishes();
          stopShadowMessages();
          await rules.close();
          await engine.close();
          await front.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    webConsole?.close();
    await mqtt?.close().catch(() => undefined);
    await engine.close().catch(() => undefined);
    throw error;
  }
}
