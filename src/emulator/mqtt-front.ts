/**
 * The MQTT side of the local shadow service: receives clients' publishes to the reserved request topics
 * (`$aws/things/<thing>/shadow[/name/<shadow>]/get|update|delete`), hands them to the shadow engine in arrival
 * order, and publishes every message the engine emits (`accepted`, `rejected`, `delta`, `documents`), through the
 * fault injector.
 *
 * Modes:
 * - `broker: 'embedded'` (the default) starts an aedes broker ({@link startBroker}) and intercepts requests inside
 *   it, before they are routed, so the engine sees them in the exact order the broker read them. aedes speaks
 *   MQTT 3.1.1 and 3.1 only: an MQTT 5 client gets CONNACK reason code 0x84 (Unsupported Protocol Version);
 * - `broker: 'mosquitto'` starts and configures a mosquitto ({@link startManagedMosquitto}: MQTT 5, 3.1.1 and
 *   3.1, the device policy as ACL patterns, TLS with client certificates) and joins it like an external broker
 *   through its privileged service listener; `'auto'` picks mosquitto when it is installed, aedes otherwise;
 * - `broker: 'mqtt://host:port'` joins an external broker (mosquitto, ...) as an mqtt.js client with the service
 *   credentials and subscribes to the request topics of every thing and shadow at QoS 1. An external broker does
 *   not tell subscribers who published, so `clientId` is then unknown.
 *
 * Joining a broker as a client, the service keeps a persistent session by default (a stable client id and
 * `clean: false`; with MQTT 5 a session expiry interval): requests that the broker acknowledged to devices while
 * the service was reconnecting are queued by the broker and applied, in order, once the service is back. A QoS 1
 * request the broker resends because the service's PUBACK was lost is recognised and not applied twice
 * ({@link createRedeliveryFilter}).
 *
 * Response QoS: AWS does not document the QoS of its own shadow publishes; a QoS 1 subscription in the 2019
 * walk-through displayed `"qos": 0` (spec section 7), so responses go out at QoS 0 by default. Choose 1 with
 * `responseQos` to test clients against redelivery instead.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ShadowTarget } from '../core/document.js';
import { parseShadowTopic, type ShadowOperation } from '../core/topics.js';
import { ShadowOptionsError } from '../errors.js';
import {
  type BrokerAuthOptions,
  type BrokerStats,
  type BrokerTlsOptions,
  type ClientPublish,
  checkPort,
  type EmbeddedBroker,
  type MqttLogger,
  startBroker,
} from './broker.js';
import { type ConnectionQuotas, resolveConnectionQuotas } from './connection-quotas.js';
import type { OutgoingMessage, ShadowEngineApi } from './engine-api.js';
import {
  createFaultInjector,
  type FaultInjector,
  type FaultOptions,
  type FaultStats,
  resolveFaultOptions,
} from './fault-injector.js';
import {
  findMosquitto,
  type ManagedMosquitto,
  type ManagedMosquittoOptions,
  resolveManagedMosquittoOptions,
  startManagedMosquitto,
} from './managed-mosquitto.js';
import { createRedeliveryFilter } from './redelivery-filter.js';

/** Options of {@link startMqttFront}. */
export interface MqttFrontOptions {
  /**
   * `'embedded'` to run the aedes broker in this process (MQTT 3.1.1), `'mosquitto'` to start and manage a
   * mosquitto (MQTT 5 and 3.1.1; must be installed), `'auto'` for mosquitto when installed and aedes otherwise,
   * or the `mqtt://` / `mqtts://` URL of an external broker the service joins as a client.
   * @defaultValue 'embedded'
   */
  broker?: 'embedded' | 'mosquitto' | 'auto' | string;
  /** Managed mosquitto: settings besides host, port, TLS and policy (persistence, binary, limits). */
  mosquitto?: Omit<ManagedMosquittoOptions, 'host' | 'port' | 'tls' | 'auth' | 'logger'>;
  /**
   * Embedded broker or managed mosquitto: interface to bind (ignored with an external broker).
   * @defaultValue '127.0.0.1'
   */
  host?: string;
  /**
   * Embedded broker or managed mosquitto: port, 0 = any free port (ignored with an external broker).
   * @defaultValue 0
   */
  port?: number;
  /** Embedded broker or managed mosquitto: TLS with optional client certificates (CN = thing name). */
  tls?: BrokerTlsOptions;
  /** Embedded broker or managed mosquitto: AWS IoT-like policy; without it the broker is open. */
  auth?: BrokerAuthOptions;
  /**
   * Embedded broker: AWS IoT's per-connection quotas ({@link ConnectionQuotas}), on with AWS's values unless
   * `false`; an object changes some values. A managed mosquitto cannot count subscriptions, filters per SUBSCRIBE
   * or publishes per connection: left out, it enforces only the 128 KB message size and says so at start; asking
   * for the quotas explicitly (`true` or values) with any broker but the embedded one is refused, since they
   * would not be applied.
   * @defaultValue AWS's values with the embedded broker; none with mosquitto or an external broker
   */
  connectionQuotas?: boolean | Partial<ConnectionQuotas>;
  /**
   * Embedded broker: aedes `concurrency` (see {@link BrokerOptions}).
   * @defaultValue 1000
   */
  concurrency?: number;
  /**
   * Embedded broker: aedes `drainTimeout` in ms (see {@link BrokerOptions}).
   * @defaultValue 10000
   */
  drainTimeoutMs?: number;
  /**
   * External broker: how the service logs in (`username`/`password` are the service credentials there;
   * `protocolVersion` 4 is MQTT 3.1.1, 5 is MQTT 5). A managed mosquitto sets the login itself.
   * @defaultValue client id `shadow-sync-service` (a random `shadow-sync-service-<hex>` without a persistent
   *   session), no credentials, protocolVersion 4 (5 with a managed mosquitto)
   */
  serviceClient?: {
    clientId?: string;
    username?: string;
    password?: string;
    ca?: string | Buffer;
    protocolVersion?: 4 | 5;
  };
  /**
   * Joining a broker as a client: keep a persistent session (`clean: false`; MQTT 5: session expiry) so that
   * requests acknowledged while the service reconnects are delivered afterwards. Two services joining one broker
   * need different `serviceClient.clientId`s (the broker disconnects the older of two equal ids).
   * @defaultValue true
   */
  persistentSession?: boolean;
  /**
   * MQTT 5 session expiry interval of the persistent session, in seconds (AWS IoT's default persistent session
   * expiry is one hour).
   * @defaultValue 3600
   */
  sessionExpirySeconds?: number;
  /**
   * External broker: how long to wait for the CONNACK and the SUBACK, in ms.
   * @defaultValue 10000
   */
  connectTimeoutMs?: number;
  /**
   * QoS of the service's responses (`accepted`, `rejected`, `delta`, `documents`).
   * @defaultValue 0
   */
  responseQos?: 0 | 1;
  /** Faults injected into outgoing shadow messages; none by default (change them later with `faults.set`). */
  faults?: FaultOptions;
  /** Receives denials and errors; silent by default. */
  logger?: MqttLogger;
}

/** Counters of the MQTT front. */
export interface MqttFrontStats {
  /** Shadow requests handed to the engine. */
  requests: number;
  /** Shadow messages published (after faults). */
  responses: number;
  /** Client publishes seen (including requests). */
  clientPublishes: number;
  /** Engine calls that threw (a bug: the engine should answer with a rejection). */
  engineErrors: number;
  /** Shadow requests published at QoS 2, which AWS IoT does not support: ignored. */
  ignoredQos2: number;
  /** Counters of the embedded broker; undefined with an external broker. */
  broker: BrokerStats | undefined;
  /** QoS 1 requests a broker resent after a lost PUBACK and that were not applied again. */
  redeliveriesSkipped: number;
  faults: FaultStats;
}

/** Which broker serves the devices, and which MQTT versions it speaks. */
export interface MqttBrokerInfo {
  kind: 'aedes' | 'mosquitto' | 'external';
  /** MQTT versions devices can use: `['3.1.1', '3.1']` for aedes, `['5', '3.1.1', '3.1']` for mosquitto. */
  protocols: readonly string[];
  /** One line for people, for example `embedded aedes broker: MQTT 3.1.1 and 3.1 (MQTT 5 clients refused)`. */
  description: string;
}

/** The running MQTT front. */
export interface MqttFront {
  /** Which broker serves the devices and its MQTT versions. */
  readonly brokerInfo: MqttBrokerInfo;
  /** The managed mosquitto (health, restart, log) when `broker` is `'mosquitto'` (or `'auto'` chose it). */
  readonly mosquitto: ManagedMosquitto | undefined;
  /** URL devices connect to: the embedded broker's, or the external broker's as given. */
  readonly mqttUrl: string;
  /** Publishes any message as the service (the data-plane Publish API uses it for non-shadow topics). */
  publish(
    topic: string,
    payload: Uint8Array | string,
    options?: { qos?: 0 | 1; retain?: boolean },
  ): Promise<void>;
  /**
   * Sees every client publish (topic, payload, client id), including shadow requests, in arrival order.
   * With an external broker only the request topics and topics matched by `#` are seen (`#` does not match
   * `$`-topics) and `clientId` is undefined.
   * @returns a function that removes the listener
   */
  onClientPublish(listener: (publish: ClientPublish) => void): () => void;
  /**
   * Resolves once client publishes reach the `onClientPublish` listeners: at once with the embedded broker; with
   * an external broker, when it has acknowledged the service's `#` subscription (made by the first listener).
   */
  clientPublishesObserved(): Promise<void>;
  /** The fault injector of outgoing shadow messages: `set(faults)`, `clear()`, `stats()`. */
  readonly faults: FaultInjector<OutgoingMessage>;
  stats(): MqttFrontStats;
  /** Lets the process exit while the front still runs (see {@link EmbeddedBroker.unref}). */
  unref(): void;
  /** Disconnects, stops the embedded broker (if any) and releases every port and timer. */
  close(): Promise<void>;
}

/** Resolved {@link MqttFrontOptions}. */
export interface ResolvedMqttFrontOptions {
  broker: 'embedded' | 'mosquitto' | 'auto' | URL;
  mosquitto: MqttFrontOptions['mosquitto'];
  host: string | undefined;
  port: number | undefined;
  tls: BrokerTlsOptions | undefined;
  auth: BrokerAuthOptions | undefined;
  connectionQuotas: boolean | Partial<ConnectionQuotas> | undefined;
  concurrency: number | undefined;
  drainTimeoutMs: number | undefined;
  serviceClient: {
    clientId: string;
    username?: string;
    password?: string;
    ca?: string | Buffer;
    protocolVersion?: 4 | 5;
  };
  persistentSession: boolean;
  sessionExpirySeconds: number;
  connectTimeoutMs: number;
  responseQos: 0 | 1;
  faults: FaultOptions | undefined;
  logger: MqttLogger | undefined;
}

/** Defaults of {@link MqttFrontOptions}. */
export const DEFAULT_MQTT_FRONT_OPTIONS = Object.freeze({
  broker: 'embedded' as const,
  responseQos: 0 as const,
  connectTimeoutMs: 10_000,
  persistentSession: true,
  sessionExpirySeconds: 3600,
  serviceClientId: 'shadow-sync-service',
});

const FRONT_KEYS = new Set([
  'broker',
  'mosquitto',
  'host',
  'port',
  'tls',
  'auth',
  'connectionQuotas',
  'concurrency',
  'drainTimeoutMs',
  'serviceClient',
  'persistentSession',
  'sessionExpirySeconds',
  'connectTimeoutMs',
  'responseQos',
  'faults',
  'logger',
]);
const SERVICE_CLIENT_KEYS = new Set(['clientId', 'username', 'password', 'ca', 'protocolVersion']);

/**
 * Validates the MQTT front's options and applies the defaults (broker-specific values are validated by
 * {@link resolveBrokerOptions} when the embedded broker starts).
 *
 * @throws ShadowOptionsError for unknown keys, a broker that is neither `'embedded'` nor an `mqtt(s)://` URL,
 *   embedded-only security options combined with an external broker, or out-of-range values
 */
export function resolveMqttFrontOptions(options: MqttFrontOptions = {}): ResolvedMqttFrontOptions {
  for (const key of Object.keys(options)) {
    if (!FRONT_KEYS.has(key))
      throw new ShadowOptionsError(
        `unknown MQTT front option '${key}' (known: ${[...FRONT_KEYS].join(', ')})`,
      );
  }
  const brokerOption = options.broker ?? DEFAULT_MQTT_FRONT_OPTIONS.broker;
  let broker: ResolvedMqttFrontOptions['broker'] = 'embedded';
  if (brokerOption === 'mosquitto' || brokerOption === 'auto') {
    broker = brokerOption;
    // Checked now, before any port is bound; the binary is looked for when the front starts.
    resolveManagedMosquittoOptions({
      ...(options.mosquitto ?? {}),
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.auth === undefined ? {} : { auth: options.auth }),
    });
  } else if (options.mosquitto !== undefined)
    throw new ShadowOptionsError("MQTT option mosquitto needs broker 'mosquitto' or 'auto'");
  if (brokerOption !== 'embedded' && brokerOption !== 'mosquitto' && brokerOption !== 'auto') {
    let url: URL | undefined;
    try {
      url = new URL(String(brokerOption));
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') || url.port === '')
      throw new ShadowOptionsError(
        `MQTT broker must be 'embedded' or a URL like mqtt://127.0.0.1:1883 with a port (or 'mosquitto' / 'auto' for a managed mosquitto), got ${JSON.stringify(brokerOption)}`,
      );
    broker = url;
    if (options.auth !== undefined || options.tls !== undefined)
      throw new ShadowOptionsError(
        'MQTT options auth and tls configure the embedded broker; an external broker enforces its own (remove them or use broker: "embedded")',
      );
  }
  if (options.port !== undefined) checkPort(options.port, 'MQTT port');
  const responseQos = options.responseQos ?? DEFAULT_MQTT_FRONT_OPTIONS.responseQos;
  if (responseQos !== 0 && responseQos !== 1)
    throw new ShadowOptionsError(
      `MQTT responseQos must be 0 or 1 (AWS IoT has no QoS 2), got ${String(responseQos)}`,
    );
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_MQTT_FRONT_OPTIONS.connectTimeoutMs;
  if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 1)
    throw new ShadowOptionsError(
      `MQTT connectTimeoutMs must be a positive integer, got ${String(connectTimeoutMs)}`,
    );
  const serviceClient = options.serviceClient ?? {};
  for (const key of Object.keys(serviceClient)) {
    if (!SERVICE_CLIENT_KEYS.has(key))
      throw new ShadowOptionsError(
        `unknown MQTT serviceClient option '${key}' (known: ${[...SERVICE_CLIENT_KEYS].join(', ')})`,
      );
  }
  const quotas = options.connectionQuotas;
  // Checked now, before any port is bound (the broker resolves them again when it starts).
  if (quotas !== undefined && typeof quotas !== 'boolean') resolveConnectionQuotas(quotas);
  // Explicitly asked-for quotas that would not be applied are refused rather than ignored; left out, a managed
  // mosquitto enforces the subset it can (the 128 KB message size) and says so at start (MOSQUITTO_QUOTAS_NOTE).
  if (broker !== 'embedded' && options.connectionQuotas !== undefined && options.connectionQuotas !== false)
    throw new ShadowOptionsError(
      "MQTT option connectionQuotas is enforced by the embedded broker only (mosquitto has no per-connection subscription count, filters-per-SUBSCRIBE limit or publish rate; it enforces the 128 KB message size by itself): use broker 'embedded', or leave connectionQuotas out",
    );
  const protocolVersion = serviceClient.protocolVersion;
  if (protocolVersion !== undefined && protocolVersion !== 4 && protocolVersion !== 5)
    throw new ShadowOptionsError(
      `MQTT serviceClient protocolVersion must be 4 (MQTT 3.1.1) or 5, got ${String(protocolVersion)}`,
    );
  const persistentSession = options.persistentSession ?? DEFAULT_MQTT_FRONT_OPTIONS.persistentSession;
  if (typeof persistentSession !== 'boolean')
    throw new ShadowOptionsError(
      `MQTT persistentSession must be a boolean, got ${String(persistentSession)}`,
    );
  const sessionExpirySeconds =
    options.sessionExpirySeconds ?? DEFAULT_MQTT_FRONT_OPTIONS.sessionExpirySeconds;
  // MQTT 5 encodes the interval as a four-byte integer.
  if (
    !Number.isInteger(sessionExpirySeconds) ||
    sessionExpirySeconds < 1 ||
    sessionExpirySeconds > 0xffffffff
  )
    throw new ShadowOptionsError(
      `MQTT sessionExpirySeconds must be an integer in [1, 4294967295], got ${String(sessionExpirySeconds)}`,
    );
  // Validate the faults now, before any port is bound.
  if (options.faults !== undefined) resolveFaultOptions(options.faults);
  return {
    broker,
    mosquitto: options.mosquitto,
    host: options.host,
    port: options.port,
    tls: options.tls,
    auth: options.auth,
    connectionQuotas: options.connectionQuotas,
    concurrency: options.concurrency,
    drainTimeoutMs: options.drainTimeoutMs,
    serviceClient: {
      ...serviceClient,
      // A persistent session is found again by its client id: a stable default. A clean session gets a random one
      // so that two such services on one broker do not disconnect each other.
      clientId:
        serviceClient.clientId ??
        (persistentSession
          ? DEFAULT_MQTT_FRONT_OPTIONS.serviceClientId
          : `shadow-sync-service-${randomBytes(6).toString('hex')}`),
    },
    persistentSession,
    sessionExpirySeconds,
    connectTimeoutMs,
    responseQos,
    faults: options.faults,
    logger: options.logger,
  };
}

/** The request filters of every thing and shadow that the service subscribes to on an external broker. */
export const SHADOW_REQUEST_FILTERS: readonly string[] = Object.freeze(
  (['get', 'update', 'delete'] as const).flatMap((op) => [
    `$aws/things/+/shadow/${op}`,
    `$aws/things/+/shadow/name/+/${op}`,
  ]),
);

const SILENT: MqttLogger = Object.freeze({ warn() {} });

/**
 * Starts the MQTT side of the local shadow service in front of a shadow engine.
 *
 * @param engine - the engine that applies requests and emits the service's messages
 * @param options - see {@link MqttFrontOptions}
 * @returns the running front; `close()` releases everything
 * @throws ShadowOptionsError for invalid options; a connection error when an external broker cannot be joined
 * @example
 * const front = await startMqttFront(engine, { auth: { serviceCredentials: { username: 'svc', password: 's3cret' } } });
 * const device = mqtt.connect(front.mqttUrl, { clientId: 'lamp' }); // may use $aws/things/lamp/shadow/...
 * await front.close();
 */
export async function startMqttFront(
  engine: ShadowEngineApi,
  options: MqttFrontOptions = {},
): Promise<MqttFront> {
  const resolved = resolveMqttFrontOptions(options);
  const logger = resolved.logger ?? SILENT;
  const listeners = new Set<(publish: ClientPublish) => void>();
  const counts = { requests: 0, responses: 0, clientPublishes: 0, engineErrors: 0, ignoredQos2: 0 };

  function handleRequest(
    operation: ShadowOperation,
    target: ShadowTarget,
    payload: Buffer,
    clientId: string | undefined,
  ) {
    counts.requests++;
    const failed = (error: unknown) => {
      counts.engineErrors++;
      logger.warn(`shadow engine failed on an MQTT ${operation}: ${String(error)}`, { ...target });
    };
    try {
      engine
        .handle({
          operation,
          target,
          payload,
          origin: 'mqtt',
          ...(clientId === undefined ? {} : { clientId }),
        })
        .catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  function notify(publish: ClientPublish): void {
    for (const listener of listeners) {
      try {
        listener(publish);
      } catch (error) {
        logger.warn(`client publish listener threw: ${String(error)}`, { topic: publish.topic });
      }
    }
  }

  function received(publish: ClientPublish): void {
    counts.clientPublishes++;
    // Spec 7 (DG-app): last-will messages sent to `$`-reserved topics are ignored by the shadow service.
    if (!publish.will && publish.topic.charCodeAt(0) === 36 /* $ */) {
      const parsed = parseShadowTopic(publish.topic);
      if (parsed !== undefined && parsed.response === undefined) {
        // AWS IoT has no QoS 2 and does not act on such publishes; a retransmitted QoS 2 packet would also be
        // seen twice here (authorization runs before aedes' QoS 2 de-duplication).
        if (publish.qos === 2) {
          counts.ignoredQos2++;
          logger.warn('shadow request at QoS 2 ignored (AWS IoT supports QoS 0 and 1)', {
            topic: publish.topic,
          });
        } else handleRequest(parsed.operation, parsed.target, publish.payload, publish.clientId);
      }
    }
    notify(publish);
  }

  const transport = await openTransport(resolved, logger, received);

  const responseQos = resolved.responseQos;
  const faults = createFaultInjector<OutgoingMessage>((message) => {
    counts.responses++;
    transport.publishNow(message.topic, message.payload, responseQos);
  }, resolved.faults);
  const unsubscribe = engine.onMessage((message) => faults.submit(message));
  let closing: Promise<void> | undefined;
  let observed: Promise<void> | undefined;

  return {
    mqttUrl: transport.url,
    brokerInfo: transport.info,
    mosquitto: transport.mosquitto,
    publish(topic, payload, publishOptions = {}) {
      // With an external broker the message comes back through the `#` subscription when anyone listens.
      if (transport.embedded && listeners.size > 0) {
        notify({
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload),
          qos: publishOptions.qos ?? 0,
          retain: publishOptions.retain ?? false,
          clientId: undefined,
          will: false,
        });
      }
      return transport.publish(topic, payload, publishOptions);
    },
    onClientPublish(listener) {
      listeners.add(listener);
      observed ??= transport.observeAll();
      return () => {
        listeners.delete(listener);
      };
    },
    clientPublishesObserved: () => observed ?? Promise.resolve(),
    faults,
    stats: () => ({
      ...counts,
      broker: transport.brokerStats(),
      redeliveriesSkipped: transport.redeliveriesSkipped(),
      faults: faults.stats(),
    }),
    unref: () => transport.unref(),
    close() {
      closing ??= (async () => {
        unsubscribe();
        faults.close();
        await transport.close();
      })();
      return closing;
    },
  };
}

/** What the front needs from either broker mode. */
interface Transport {
  url: string;
  embedded: boolean;
  info: MqttBrokerInfo;
  mosquitto: ManagedMosquitto | undefined;
  redeliveriesSkipped(): number;
  publish(
    topic: string,
    payload: Uint8Array | string,
    options: { qos?: 0 | 1; retain?: boolean },
  ): Promise<void>;
  publishNow(topic: string, payload: Uint8Array, qos: 0 | 1): void;
  /** Makes sure every client publish reaches the listeners (nothing to do for the embedded broker). */
  observeAll(): Promise<void>;
  brokerStats(): BrokerStats | undefined;
  unref(): void;
  close(): Promise<void>;
}

/** The embedded aedes broker's protocols (aedes 1.2 refuses protocol level 5 in its CONNECT handler). */
const AEDES_INFO: MqttBrokerInfo = Object.freeze({
  kind: 'aedes' as const,
  protocols: Object.freeze(['3.1.1', '3.1']),
  description:
    "embedded aedes broker: MQTT 3.1.1 and 3.1 (MQTT 5 clients get CONNACK 0x84 Unsupported Protocol Version; use broker 'mosquitto' for MQTT 5)",
});

/** The embedded broker's info with the per-connection quotas it enforces, said at start. */
function aedesInfo(quotas: Readonly<ConnectionQuotas> | undefined): MqttBrokerInfo {
  const enforced =
    quotas === undefined
      ? "AWS IoT's per-connection quotas off (128 KB message size enforced)"
      : `AWS IoT's per-connection quotas enforced: ${quotas.maxSubscriptionsPerConnection} subscriptions, ${quotas.maxFiltersPerSubscribe} filters per SUBSCRIBE, ${quotas.publishesPerSecondPerConnection} publishes/s (over it: ${quotas.publishRateExceeded}), 128 KB messages`;
  return Object.freeze({ ...AEDES_INFO, description: `${AEDES_INFO.description}; ${enforced}` });
}

/**
 * What a managed mosquitto enforces of AWS IoT's per-connection quotas, said at start (description and logger):
 * its `message_size_limit` drops a payload over 128 KB (see mosquitto-config.ts); it has no per-connection
 * subscription count, filters-per-SUBSCRIBE limit or publish rate.
 */
export const MOSQUITTO_QUOTAS_NOTE =
  "of AWS IoT's per-connection quotas only the 128 KB message size is enforced (mosquitto cannot limit subscriptions per connection, filters per SUBSCRIBE or publishes per second): use broker 'embedded' to test against them";

/** Which forbidden subscriptions a managed mosquitto refuses, said at start (see mosquitto-config.ts). */
function mosquittoSubscriptionNote(mosquitto: ManagedMosquitto, policy: boolean): string {
  if (!policy) return '';
  return mosquitto.refusedSubscriptions === 'outside-device-topics'
    ? "; device policy: a subscription outside every device's topics gets a failure SUBACK, one to another thing's topics is granted and receives nothing"
    : '; device policy: every subscription is granted (mosquitto cannot refuse one here), one outside the policy receives nothing';
}

async function openTransport(
  resolved: ResolvedMqttFrontOptions,
  logger: MqttLogger,
  received: (publish: ClientPublish) => void,
): Promise<Transport> {
  const choice =
    resolved.broker === 'auto' ? (findMosquitto() === undefined ? 'embedded' : 'mosquitto') : resolved.broker;
  if (choice === 'embedded') return embeddedTransport(resolved, logger, received);
  if (choice !== 'mosquitto')
    return externalTransport(choice, resolved, logger, received, {
      kind: 'external',
      protocols: [],
      description: `external broker ${choice.href.replace(/\/$/, '')} (its own MQTT versions and policy)`,
    });
  const mosquitto = await startManagedMosquitto({
    ...(resolved.mosquitto ?? {}),
    ...(resolved.host === undefined ? {} : { host: resolved.host }),
    ...(resolved.port === undefined ? {} : { port: resolved.port }),
    ...(resolved.tls === undefined ? {} : { tls: resolved.tls }),
    ...(resolved.auth === undefined ? {} : { auth: resolved.auth }),
    logger,
  });
  logger.warn(`managed mosquitto: ${MOSQUITTO_QUOTAS_NOTE}`);
  try {
    const credentials = mosquitto.serviceCredentials;
    const joined = await externalTransport(
      new URL(mosquitto.serviceUrl),
      {
        ...resolved,
        serviceClient: {
          clientId: resolved.serviceClient.clientId,
          username: credentials.username,
          password: credentials.password,
          protocolVersion: resolved.serviceClient.protocolVersion ?? 5,
        },
      },
      logger,
      received,
      {
        kind: 'mosquitto',
        protocols: ['5', '3.1.1', '3.1'],
        description: `managed ${mosquitto.version}: MQTT 5, 3.1.1 and 3.1 on ${mosquitto.url}; ${MOSQUITTO_QUOTAS_NOTE}${mosquittoSubscriptionNote(mosquitto, resolved.auth !== undefined)}`,
      },
    );
    return {
      ...joined,
      url: mosquitto.url,
      mosquitto,
      async close() {
        await joined.close();
        await mosquitto.close();
      },
    };
  } catch (error) {
    await mosquitto.close();
    throw error;
  }
}

async function embeddedTransport(
  resolved: ResolvedMqttFrontOptions,
  logger: MqttLogger,
  received: (publish: ClientPublish) => void,
): Promise<Transport> {
  const broker: EmbeddedBroker = await startBroker({
    ...(resolved.host === undefined ? {} : { host: resolved.host }),
    ...(resolved.port === undefined ? {} : { port: resolved.port }),
    ...(resolved.tls === undefined ? {} : { tls: resolved.tls }),
    ...(resolved.auth === undefined ? {} : { auth: resolved.auth }),
    ...(resolved.connectionQuotas === undefined ? {} : { connectionQuotas: resolved.connectionQuotas }),
    ...(resolved.concurrency === undefined ? {} : { concurrency: resolved.concurrency }),
    ...(resolved.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: resolved.drainTimeoutMs }),
    logger,
    onClientPublish: received,
  });
  return {
    url: broker.url,
    embedded: true,
    info: aedesInfo(broker.quotas),
    mosquitto: undefined,
    redeliveriesSkipped: () => 0,
    publish: (topic, payload, options) => broker.publish(topic, payload, options),
    publishNow: (topic, payload, qos) => broker.publishNow(topic, payload, qos),
    observeAll: async () => {},
    brokerStats: () => broker.stats(),
    unref: () => broker.unref(),
    close: () => broker.close(),
  };
}

async function externalTransport(
  url: URL,
  resolved: ResolvedMqttFrontOptions,
  logger: MqttLogger,
  received: (publish: ClientPublish) => void,
  info: MqttBrokerInfo,
): Promise<Transport> {
  const { serviceClient } = resolved;
  const protocolVersion = serviceClient.protocolVersion ?? 4;
  const redeliveries = createRedeliveryFilter();
  const secure = url.protocol === 'mqtts:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port);
  // mqtt.js is an optional peer dependency: only loaded when an external broker is used. Where a bundler
  // inlined it as CommonJS (the `shadow-sync` bin does), the namespace has only `default`.
  const mqttModule: Partial<typeof import('mqtt')> & { default?: Partial<typeof import('mqtt')> } =
    await import('mqtt');
  const MqttClient = mqttModule.MqttClient ?? mqttModule.default?.MqttClient;
  if (MqttClient === undefined) throw new Error('mqtt.js loaded without its MqttClient export');
  // Our own stream builder so that Nagle is off before the first packet (CONNECT) is written.
  const client = new MqttClient(
    () => {
      const socket = secure
        ? tlsConnect({ host, port, ...(serviceClient.ca === undefined ? {} : { ca: serviceClient.ca }) })
        : netConnect({ host, port });
      socket.setNoDelay(true);
      return socket;
    },
    {
      clientId: serviceClient.clientId,
      clean: !resolved.persistentSession,
      protocolVersion,
      ...(protocolVersion === 5 && resolved.persistentSession
        ? { properties: { sessionExpiryInterval: resolved.sessionExpirySeconds } }
        : {}),
      reconnectPeriod: 1000,
      connectTimeout: resolved.connectTimeoutMs,
      ...(serviceClient.username === undefined ? {} : { username: serviceClient.username }),
      ...(serviceClient.password === undefined ? {} : { password: serviceClient.password }),
    },
  );
  client.on('message', (topic, payload, packet) => {
    // A broker sets RETAIN on what it forwards only when it replays a stored retained message to a new
    // subscription (MQTT 3.1.1 section 3.3.1.3); a live publish arrives with RETAIN 0. A replay is not a new
    // client publish: applying a retained request again each time the service (re)subscribes would roll the
    // shadow back to that old request.
    if (packet.retain) return;
    if (
      packet.qos === 1 &&
      redeliveries.isRedelivery({ messageId: packet.messageId, dup: packet.dup, topic, payload })
    ) {
      logger.warn('QoS 1 message resent by the broker after a lost PUBACK: already applied, skipped', {
        topic,
        messageId: packet.messageId,
      });
      return;
    }
    received({
      topic,
      payload,
      qos: packet.qos,
      retain: packet.retain,
      clientId: undefined,
      will: false,
    });
  });
  client.on('error', (error) => logger.warn(`external MQTT broker error: ${error.message}`));
  // Without a session on the broker's side nothing old can be resent: forget the packet identifiers seen.
  client.on('connect', (connack) => {
    if (!connack.sessionPresent) redeliveries.reset();
  });
  client.on('offline', () => logger.warn(`lost the MQTT broker ${url.href}; reconnecting`));

  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        // Name the broker and the login: mqtt.js says only e.g. "Connection refused: Not authorized".
        client.once('error', (error) =>
          reject(
            new Error(
              `joining the MQTT broker ${url.href} as client '${serviceClient.clientId}' ${serviceClient.username === undefined ? 'without a username' : `with username '${serviceClient.username}'`} failed: ${error.message}`,
              { cause: error },
            ),
          ),
        );
      }),
      resolved.connectTimeoutMs,
      `connecting to the MQTT broker ${url.href}`,
    );
    const granted = await withTimeout(
      client.subscribeAsync([...SHADOW_REQUEST_FILTERS], { qos: 1 }),
      resolved.connectTimeoutMs,
      `subscribing to the shadow request topics on ${url.href}`,
    );
    const refused = granted.filter((grant) => grant.qos >= 128).map((grant) => grant.topic);
    if (refused.length > 0)
      throw new Error(
        `the MQTT broker ${url.href} refused the service's subscriptions: ${refused.join(', ')}`,
      );
  } catch (error) {
    await client.endAsync(true).catch(() => {});
    throw error;
  }

  return {
    url: url.href.replace(/\/$/, ''),
    embedded: false,
    info,
    mosquitto: undefined,
    redeliveriesSkipped: () => redeliveries.skipped,
    async publish(topic, payload, options) {
      await client.publishAsync(topic, typeof payload === 'string' ? payload : Buffer.from(payload), {
        qos: options.qos ?? 0,
        retain: options.retain ?? false,
      });
    },
    publishNow(topic, payload, qos) {
      client.publish(
        topic,
        Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        { qos },
        (error) => {
          if (error) logger.warn(`publish of ${topic} to the external broker failed: ${error.message}`);
        },
      );
    },
    async observeAll() {
      // `#` does not match `$`-topics (MQTT 4.7.2), so requests are not received twice.
      try {
        await client.subscribeAsync('#', { qos: 1 });
      } catch (error) {
        logger.warn(`subscribing to # on the external broker failed: ${(error as Error).message}`);
      }
    },
    brokerStats: () => undefined,
    unref() {
      (client.stream as { unref?: () => void } | undefined)?.unref?.();
    },
    close: async () => {
      await client.endAsync();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
