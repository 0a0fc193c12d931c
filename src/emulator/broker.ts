/**
 * The local service's embedded MQTT broker: aedes on a plain TCP or TLS server, with authentication and
 * authorization in the manner of an AWS IoT policy that uses `${iot:Connection.Thing.ThingName}`.
 *
 * Identities:
 * - a client presenting the configured service credentials (username + password) is a *service* client and
 *   may use every topic (apps, rules, tests that watch every thing);
 * - any other client is a *device*: its thing name is its client id or, over TLS with client certificates,
 *   its certificate's CN (the client id must then equal the CN, as with AWS IoT's usual policy
 *   `iot:Connect` on `client/${iot:Connection.Thing.ThingName}`).
 *
 * A device may publish only to its own shadows' request topics (`get`, `update`, `delete`, classic and named:
 * AWS's reserved-topic table allows clients only "Publish" on those and only "Subscribe" on the responses),
 * subscribe only to filters inside `$aws/things/<thing>/shadow/#`, and publish/subscribe inside its telemetry
 * patterns. There is no QoS 2, like AWS IoT: a QoS 2 PUBLISH or SUBSCRIBE closes the connection (AWS sends no
 * PUBREC or SUBACK for it).
 *
 * A denied subscription gets SUBACK return code 128; a denied publish is dropped (acknowledged at QoS 1 so the
 * client does not retry forever) or, if configured, the client is disconnected as AWS does for MQTT 3.1.1.
 * Either way the denial is logged and counted, and other clients are not disturbed.
 *
 * The wildcard `+`/`#` levels of a policy pattern match like MQTT filters; a thing name can never contain `/`,
 * `+` or `#` (the core's thing-name rule), so a client id cannot widen its own policy.
 */
import { timingSafeEqual } from 'node:crypto';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { checkThingName } from '../core/limits.js';
import { ShadowOptionsError } from '../errors.js';
import { type ConnectionQuotaStats, createConnectionQuotaGuard } from './connection-quota-guard.js';
import { type ConnectionQuotas, resolveConnectionQuotas } from './connection-quotas.js';
import { MessageFifo } from './message-fifo.js';
import {
  encodeMqtt5ConnackRefusal,
  MQTT5_REFUSAL_REASON,
  UNSUPPORTED_PROTOCOL_VERSION,
} from './mqtt5-refusal.js';
import {
  guardPacketSizes,
  type PacketLimits,
  type ResolvedPacketLimits,
  resolvePacketLimits,
} from './packet-limits.js';
import { isServiceOnlyTopic } from './publish-policy.js';
import { filterWithin, topicFilterProblem } from './topic-filter.js';

/** Where the broker and the MQTT front report what they refused or could not do; silent by default. */
export interface MqttLogger {
  warn(message: string, details?: Record<string, unknown>): void;
}

/** TLS for the embedded broker (PEM strings or buffers). */
export interface BrokerTlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
  /** CA that signs client certificates. */
  ca?: string | Buffer;
  /**
   * Require and verify a client certificate (signed by `ca`); a device's thing name is then its certificate CN.
   * @defaultValue false
   */
  requestCert?: boolean;
}

/** Username and password that make a client a service client, allowed on every topic. */
export interface ServiceCredentials {
  username: string;
  password: string;
}

/** Authorization in the manner of an AWS IoT policy. */
export interface BrokerAuthOptions {
  /** The service credentials; without them every client is a device. */
  serviceCredentials?: ServiceCredentials;
  /**
   * MQTT topic filters a device may publish and subscribe to besides its shadows, with `{thingName}` replaced by
   * the device's thing name.
   * @defaultValue ['my/things/{thingName}/#']
   */
  telemetryTopics?: readonly string[];
  /**
   * What happens to a denied publish: `'drop'` (acknowledged and discarded) or `'disconnect'` (AWS IoT's MQTT 3.1.1
   * behaviour).
   * @defaultValue 'drop'
   */
  deniedPublish?: 'drop' | 'disconnect';
  /**
   * `false` turns the device policy off: every client may use every topic (an open broker), even with client
   * certificates. Only an explicit `false` does: with `tls.requestCert` the policy is on even when `auth` is
   * left out, because on AWS IoT a policy always applies to a certificate's connection and the certificate's CN
   * is the identity.
   * @defaultValue true
   */
  devicePolicy?: boolean;
}

/** A publish made by a connected client (or its will), as the broker received it. */
export interface ClientPublish {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** The publisher's MQTT client id (undefined when unknown, e.g. behind an external broker). */
  clientId: string | undefined;
  /** True when this is the client's last-will message. */
  will: boolean;
}

/** Options of {@link startBroker}. */
export interface BrokerOptions {
  /**
   * Interface to bind.
   * @defaultValue '127.0.0.1'
   */
  host?: string;
  /**
   * Port to bind; 0 picks a free port.
   * @defaultValue 0
   */
  port?: number;
  /** Serve MQTT over TLS (`mqtts://`). */
  tls?: BrokerTlsOptions;
  /**
   * Enforce the per-thing policy. Without it the broker is open (every client may use every topic), except with
   * `tls.requestCert`: client certificates always come with the policy unless `auth.devicePolicy` is `false`.
   */
  auth?: BrokerAuthOptions;
  /**
   * aedes `concurrency`: messages the broker routes at once. The default 100 lets a burst of pipelined shadow
   * updates (each fans out into 3-4 responses) queue behind a subscriber whose socket is momentarily full;
   * 1000 keeps fast clients flowing through such bursts, while `drainTimeoutMs` bounds a frozen one.
   * @defaultValue 1000
   */
  concurrency?: number;
  /**
   * aedes `drainTimeout`: how long a subscriber's full socket may block delivery before that subscriber is
   * disconnected. aedes' 60 s default lets one stuck test client stall everyone for a minute; 10 s is far above
   * any loopback hiccup yet short enough that other clients recover.
   * @defaultValue 10000
   */
  drainTimeoutMs?: number;
  /**
   * AWS IoT's per-connection quotas ({@link ConnectionQuotas}): on with AWS's values by default, like the
   * per-thing quotas; an object changes some values, `false` turns them off (a throughput benchmark that drives
   * one connection far above 100 publishes/s, a test of something else).
   * @defaultValue true (AWS's values, {@link DEFAULT_CONNECTION_QUOTAS})
   */
  connectionQuotas?: boolean | Partial<ConnectionQuotas>;
  /**
   * Clock of the publish-rate quota, in milliseconds.
   * @defaultValue performance.now
   */
  clock?: () => number;
  /** Receives denials and errors; silent by default. */
  logger?: MqttLogger;
  /**
   * MQTT packet size limits: AWS IoT's 128 KB message size and a small limit before authentication; a packet
   * over a limit closes the connection before it is buffered (see packet-limits.ts).
   * @defaultValue DEFAULT_PACKET_LIMITS
   */
  packetLimits?: PacketLimits;
  /**
   * Called for every authorized client publish (and will), synchronously, in the order the broker received
   * them, before they are routed to subscribers.
   */
  onClientPublish?: (publish: ClientPublish) => void;
}

/** Counters of the broker. */
export interface BrokerStats {
  /** Clients connected now. */
  connectedClients: number;
  /** Connections accepted (authenticated) since start. */
  acceptedConnections: number;
  /** Connections refused by authentication (bad password, bad client id, CN mismatch). */
  rejectedConnections: number;
  deniedPublishes: number;
  deniedSubscriptions: number;
  /** Authorized client publishes seen. */
  clientPublishes: number;
  /** Refusals of the per-connection quotas; undefined when they are not enforced. */
  connectionQuotas: ConnectionQuotaStats | undefined;
  /** Connections closed because a packet was over a size limit. */
  oversizedPackets: number;
}

/** A running embedded broker. */
export interface EmbeddedBroker {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The aedes instance (for benchmarks and advanced wiring). */
  readonly aedes: Aedes;
  /** The per-connection quotas enforced, or undefined when they are off (`connectionQuotas: false`). */
  readonly quotas: Readonly<ConnectionQuotas> | undefined;
  /** Publishes a message as the service, bypassing authorization. */
  publish(
    topic: string,
    payload: Uint8Array | string,
    options?: { qos?: 0 | 1; retain?: boolean },
  ): Promise<void>;
  /** Like {@link EmbeddedBroker.publish} without waiting (the hot path of shadow responses). */
  publishNow(topic: string, payload: Uint8Array, qos: 0 | 1): void;
  stats(): BrokerStats;
  /**
   * Lets the process exit while the broker still runs (benchmarks, tools that manage their own lifetime): the
   * listening socket, the broker's timers and every connection accepted from now on stop keeping Node alive.
   */
  unref(): void;
  /** Disconnects every client and releases the port. */
  close(): Promise<void>;
}

/** Broker options with defaults applied. */
export interface ResolvedBrokerOptions {
  host: string;
  port: number;
  tls: BrokerTlsOptions | undefined;
  auth: Required<Omit<BrokerAuthOptions, 'serviceCredentials' | 'devicePolicy'>> & {
    serviceCredentials?: ServiceCredentials;
  };
  open: boolean;
  concurrency: number;
  drainTimeoutMs: number;
  connectionQuotas: Readonly<ConnectionQuotas> | undefined;
  clock: () => number;
  logger: MqttLogger;
  onClientPublish: ((publish: ClientPublish) => void) | undefined;
  packetLimits: ResolvedPacketLimits;
}

const SILENT: MqttLogger = Object.freeze({ warn() {} });

/** Defaults of {@link BrokerOptions}. */
export const DEFAULT_BROKER_OPTIONS = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  concurrency: 1000,
  drainTimeoutMs: 10_000,
  telemetryTopics: Object.freeze(['my/things/{thingName}/#']),
  deniedPublish: 'drop' as const,
});

const BROKER_KEYS = new Set([
  'host',
  'port',
  'tls',
  'auth',
  'concurrency',
  'drainTimeoutMs',
  'connectionQuotas',
  'clock',
  'logger',
  'onClientPublish',
  'packetLimits',
]);
const AUTH_KEYS = new Set(['serviceCredentials', 'telemetryTopics', 'deniedPublish', 'devicePolicy']);
const TLS_KEYS = new Set(['key', 'cert', 'ca', 'requestCert']);

function rejectUnknown(value: object, known: Set<string>, what: string): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key))
      throw new ShadowOptionsError(`unknown ${what} option '${key}' (known: ${[...known].join(', ')})`);
  }
}

/**
 * Validates a port number (0 = any free port).
 *
 * @throws ShadowOptionsError when `port` is not an integer in [0, 65535]
 */
export function checkPort(port: unknown, what: string): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new ShadowOptionsError(`${what} must be an integer in [0, 65535], got ${String(port)}`);
  return port;
}

/**
 * Validates broker options and applies the defaults.
 *
 * @throws ShadowOptionsError for unknown keys, bad ports, bad limits, invalid topic patterns or incomplete TLS
 */
export function resolveBrokerOptions(options: BrokerOptions = {}): ResolvedBrokerOptions {
  rejectUnknown(options, BROKER_KEYS, 'broker');
  const host = options.host ?? DEFAULT_BROKER_OPTIONS.host;
  if (typeof host !== 'string' || host === '')
    throw new ShadowOptionsError('broker host must be a non-empty string');
  const port = checkPort(options.port ?? DEFAULT_BROKER_OPTIONS.port, 'broker port');
  const concurrency = options.concurrency ?? DEFAULT_BROKER_OPTIONS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new ShadowOptionsError(`broker concurrency must be a positive integer, got ${String(concurrency)}`);
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_BROKER_OPTIONS.drainTimeoutMs;
  if (!Number.isInteger(drainTimeoutMs) || drainTimeoutMs < 1)
    throw new ShadowOptionsError(
      `broker drainTimeoutMs must be a positive integer, got ${String(drainTimeoutMs)}`,
    );
  if (options.tls !== undefined) {
    rejectUnknown(options.tls, TLS_KEYS, 'broker tls');
    if (!options.tls.key || !options.tls.cert)
      throw new ShadowOptionsError('broker tls needs both key and cert');
    if (options.tls.requestCert === true && !options.tls.ca)
      throw new ShadowOptionsError('broker tls requestCert needs the ca that signs client certificates');
  }
  const auth = options.auth ?? {};
  rejectUnknown(auth, AUTH_KEYS, 'broker auth');
  const telemetryTopics = auth.telemetryTopics ?? DEFAULT_BROKER_OPTIONS.telemetryTopics;
  if (!Array.isArray(telemetryTopics))
    throw new ShadowOptionsError('broker auth telemetryTopics must be an array of topic filters');
  for (const pattern of telemetryTopics) {
    const problem =
      typeof pattern === 'string'
        ? topicFilterProblem(pattern.replaceAll('{thingName}', 't'))
        : 'not a string';
    if (problem !== undefined)
      throw new ShadowOptionsError(
        `broker auth telemetry topic ${JSON.stringify(pattern)} is invalid: ${problem}`,
      );
  }
  const deniedPublish = auth.deniedPublish ?? DEFAULT_BROKER_OPTIONS.deniedPublish;
  if (deniedPublish !== 'drop' && deniedPublish !== 'disconnect')
    throw new ShadowOptionsError(
      `broker auth deniedPublish must be 'drop' or 'disconnect', got ${String(deniedPublish)}`,
    );
  if (auth.devicePolicy !== undefined && typeof auth.devicePolicy !== 'boolean')
    throw new ShadowOptionsError(
      `broker auth devicePolicy must be a boolean, got ${String(auth.devicePolicy)}`,
    );
  const credentials = auth.serviceCredentials;
  if (
    credentials !== undefined &&
    (typeof credentials.username !== 'string' ||
      typeof credentials.password !== 'string' ||
      credentials.username === '')
  )
    throw new ShadowOptionsError(
      'broker auth serviceCredentials need a non-empty username and a password string',
    );
  return {
    host,
    port,
    tls: options.tls,
    auth: {
      telemetryTopics: [...telemetryTopics],
      deniedPublish,
      ...(credentials === undefined ? {} : { serviceCredentials: { ...credentials } }),
    },
    // With client certificates the policy applies unless it is explicitly turned off (see devicePolicy).
    open:
      options.auth === undefined ? options.tls?.requestCert !== true : options.auth.devicePolicy === false,
    concurrency,
    drainTimeoutMs,
    connectionQuotas:
      options.connectionQuotas === false
        ? undefined
        : resolveConnectionQuotas(
            typeof options.connectionQuotas === 'object' ? options.connectionQuotas : {},
          ),
    clock: options.clock ?? (() => performance.now()),
    logger: options.logger ?? SILENT,
    onClientPublish: options.onClientPublish,
    packetLimits: resolvePacketLimits(options.packetLimits),
  };
}

/** The core's thing-name rule (spec 6); a valid name also never contains an MQTT wildcard or separator. */
function validThingName(name: string): boolean {
  return checkThingName(name) === undefined;
}

const SHADOW_REQUEST = /^\$aws\/things\/([^/]+)\/shadow\/(?:name\/[^/+#]+\/)?(?:get|update|delete)$/;

/** Publishes to this topic are discarded: denied publishes are rerouted here when they are dropped. */
const DENIED_SINK = '$shadow-sync/denied';

type Identity = { kind: 'service' } | { kind: 'device'; thingName: string };
/** What the broker uses of aedes' untyped `mq` (an mqemitter, whose queue fields are replaced). */
type MqRouter = {
  on(topic: string, listener: (packet: unknown, done: () => void) => void): void;
  _messageQueue: unknown;
  _messageCallbacks: unknown;
};

/**
 * Decides whether a device may publish to a topic under the policy.
 *
 * @param thingName - the device's thing name
 * @param topic - the topic name of the publish
 * @param telemetryTopics - allowed telemetry patterns with `{thingName}`
 */
export function devicePublishAllowed(
  thingName: string,
  topic: string,
  telemetryTopics: readonly string[],
): boolean {
  const request = SHADOW_REQUEST.exec(topic);
  if (request !== null) return request[1] === thingName;
  return telemetryTopics.some((pattern) => filterWithin(topic, pattern.replaceAll('{thingName}', thingName)));
}

/**
 * Decides whether a device may subscribe to a topic filter under the policy.
 *
 * @param thingName - the device's thing name
 * @param filter - the subscription filter
 * @param telemetryTopics - allowed telemetry patterns with `{thingName}`
 */
export function deviceSubscribeAllowed(
  thingName: string,
  filter: string,
  telemetryTopics: readonly string[],
): boolean {
  if (filterWithin(filter, `$aws/things/${thingName}/shadow/#`)) return true;
  return telemetryTopics.some((pattern) =>
    filterWithin(filter, pattern.replaceAll('{thingName}', thingName)),
  );
}

function authError(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

function sameSecret(given: Buffer | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const want = Buffer.from(expected, 'utf8');
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * Starts the embedded broker.
 *
 * @param options - see {@link BrokerOptions}
 * @returns the running broker; call `close()` to release it
 * @throws ShadowOptionsError for invalid options; the listen error when the port is taken
 * @example
 * const broker = await startBroker({ auth: { serviceCredentials: { username: 'svc', password: 'secret' } } });
 * console.log(broker.url); // mqtt://127.0.0.1:41234
 * await broker.close();
 */
export async function startBroker(options: BrokerOptions = {}): Promise<EmbeddedBroker> {
  const resolved = resolveBrokerOptions(options);
  const { logger, auth } = resolved;
  const identities = new WeakMap<Client, Identity>();
  const counts = {
    acceptedConnections: 0,
    rejectedConnections: 0,
    deniedPublishes: 0,
    deniedSubscriptions: 0,
    clientPublishes: 0,
    oversizedPackets: 0,
  };
  const onClientPublish = resolved.onClientPublish;
  const quotas =
    resolved.connectionQuotas === undefined
      ? undefined
      : createConnectionQuotaGuard(resolved.connectionQuotas, resolved.clock, logger);

  // Clients whose CONNECT carried an empty client id (aedes then makes one up before `authenticate`).
  const emptyClientIds = new WeakSet<Client>();
  const aedes = await Aedes.createBroker({
    concurrency: resolved.concurrency,
    drainTimeout: resolved.drainTimeoutMs,
    preConnect(client, packet, done) {
      quotas?.connected(client);
      if (packet.clientId === '') emptyClientIds.add(client);
      // aedes answers MQTT 5 in MQTT 3.1.1's format, which MQTT 5 clients cannot decode: refuse it in theirs.
      if (packet.protocolVersion !== 5) return done(null, true);
      logger.warn(`mqtt connection refused: MQTT 5 is not supported by the embedded broker`, {
        clientId: packet.clientId,
      });
      const refusal = encodeMqtt5ConnackRefusal(UNSUPPORTED_PROTOCOL_VERSION, MQTT5_REFUSAL_REASON);
      (client.conn as Socket).write(refusal, () => done(new Error('MQTT 5 refused (CONNACK 0x84)'), false));
    },
    authenticate(client, username, password, done) {
      const identity = identify(client, username, password);
      if (identity instanceof Error) {
        counts.rejectedConnections++;
        logger.warn(`mqtt connection refused: ${identity.message}`, { clientId: client.id });
        done(identity, false);
        return;
      }
      identities.set(client, identity);
      counts.acceptedConnections++;
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      if (client === null) return done(null);
      // A shadow service that joined this broker as its external broker answers on the response topics, which
      // only the service credentials may publish: on AWS IoT those answers come from inside the service, not
      // from a client connection, so they do not count against a connection's publish rate.
      const serviceAnswer =
        !resolved.open && identities.get(client)?.kind === 'service' && isServiceOnlyTopic(packet.topic);
      if (quotas !== undefined && !serviceAnswer && !quotas.publish(client)) {
        const onRate = resolved.connectionQuotas?.publishRateExceeded;
        if (onRate === 'disconnect') return done(new Error('publish rate above the per-connection quota'));
        packet.topic = DENIED_SINK;
        packet.retain = false;
        // aedes acknowledges by the packet's QoS after this hook: at QoS 0 it sends no PUBACK, as AWS IoT does
        // for a throttled publish (see connection-quotas.ts).
        if (onRate === 'unacknowledged') packet.qos = 0;
        return done(null);
      }
      if (packet.topic.startsWith('$SYS/')) return done(new Error('$SYS/ topics are reserved'));
      // AWS IoT "does not support publishing and subscribing with QoS 2. The AWS IoT message broker does not send
      // a PUBACK or SUBACK when QoS 2 is requested" (developer guide, MQTT differences from the specification).
      // A 3.1.1 client would wait for its PUBREC forever; closing the connection before any PUBREC tells it at
      // once, and the message is neither routed nor applied (never acknowledged and then ignored).
      if (packet.qos === 2) return done(new Error('QoS 2 is not supported (AWS IoT supports QoS 0 and 1)'));
      // MQTT 3.1.1 1.5.3: a topic name with U+0000 is a protocol violation; close the connection.
      if (packet.topic.includes('\u0000')) return done(new Error('topic name contains U+0000'));
      // A PUBLISH that arrived whole in one read (the parser guard sees it only while it is incomplete).
      if (packet.payload.length > resolved.packetLimits.maxPublishPayloadBytes) {
        counts.oversizedPackets++;
        return done(new Error(`payload of ${packet.payload.length} bytes is over the message size limit`));
      }
      const identity = identities.get(client);
      // Response topics are the shadow service's alone (see publish-policy.ts). A client holding the service
      // credentials is the service (a shadow-sync service joining this broker as its external broker answers
      // there); on an open broker nobody has proven that, so nobody may publish them.
      const allowed =
        (identity?.kind === 'service' && (!resolved.open || !isServiceOnlyTopic(packet.topic))) ||
        (identity?.kind === 'device' &&
          devicePublishAllowed(identity.thingName, packet.topic, auth.telemetryTopics));
      if (!allowed) {
        counts.deniedPublishes++;
        logger.warn('mqtt publish denied', { clientId: client.id, topic: packet.topic });
        if (auth.deniedPublish === 'disconnect')
          return done(new Error(`publish to ${packet.topic} not authorized`));
        packet.topic = DENIED_SINK;
        packet.retain = false;
        return done(null);
      }
      // AWS IoT retains messages on ordinary topics only, never on its reserved `$aws/` topics: a retained request
      // is processed like any other but neither stored nor replayed to later subscribers (a replay would apply it
      // again and roll the shadow back).
      if (packet.retain && packet.topic.startsWith('$aws/')) packet.retain = false;
      counts.clientPublishes++;
      if (onClientPublish !== undefined) {
        const payload = packet.payload;
        onClientPublish({
          topic: packet.topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos: packet.qos,
          retain: packet.retain,
          clientId: client.id,
          will: packet === (client as Client & { will?: unknown }).will,
        });
      }
      done(null);
    },
    authorizeSubscribe(client, subscription, done) {
      // AWS IoT sends no SUBACK when QoS 2 is requested (see the QoS 2 publish above); a client would wait for it
      // until its own timeout. Closing the connection at once, as for a QoS 2 publish, says the same sooner;
      // nothing of the packet is granted. The service's own clients never ask for QoS 2.
      if (subscription.qos === 2)
        return done(new Error('QoS 2 is not supported (AWS IoT supports QoS 0 and 1)'), null);
      const identity = identities.get(client);
      const allowed =
        identity?.kind === 'service' ||
        (identity?.kind === 'device' &&
          deviceSubscribeAllowed(identity.thingName, subscription.topic, auth.telemetryTopics));
      const verdict = allowed && quotas !== undefined ? quotas.subscribe(client, subscription) : 'grant';
      if (verdict === 'disconnect') return done(new Error('too many topic filters in one SUBSCRIBE'), null);
      if (allowed && verdict === 'grant') return done(null, subscription);
      if (verdict === 'refuse') return done(null, null);
      counts.deniedSubscriptions++;
      logger.warn('mqtt subscription denied', { clientId: client.id, topic: subscription.topic });
      done(null, null);
    },
    authorizeForward(_client, packet) {
      return packet.topic === DENIED_SINK ? null : packet;
    },
  });
  // mqemitter (aedes' router) completes a message nobody subscribes to synchronously, and once `concurrency`
  // deliveries are in flight it starts each queued message from the completion of the previous one: thousands of
  // unsubscribed messages in a row (update/documents nobody follows, requests the service takes in
  // authorizePublish) recurse until the stack overflows (seen as aedes' nextBatch at 5,000+ device agents). A
  // listener of every topic that completes on the next microtask gives each message a fresh stack.
  const router = (aedes as unknown as { mq: MqRouter }).mq;
  router.on('#', (_packet, done) => queueMicrotask(done));
  // Its queue beyond `concurrency` is two arrays drained with shift(): O(n) per message (see message-fifo.ts).
  router._messageQueue = new MessageFifo();
  router._messageCallbacks = new MessageFifo();

  function identify(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Identity | AuthenticateError {
    const conn = client.conn as Socket | TLSSocket;
    const cert =
      'getPeerCertificate' in conn && resolved.tls?.requestCert === true
        ? conn.getPeerCertificate()
        : undefined;
    if (resolved.open) return { kind: 'service' };
    const credentials = auth.serviceCredentials;
    if (credentials !== undefined && username === credentials.username) {
      if (sameSecret(password, credentials.password)) return { kind: 'service' };
      return authError('bad service password', 4);
    }
    if (cert !== undefined && cert !== null && Object.keys(cert).length > 0) {
      const cn = cert.subject?.CN;
      const thingName = Array.isArray(cn) ? cn[0] : cn;
      if (typeof thingName !== 'string' || !validThingName(thingName))
        return authError(`certificate CN ${JSON.stringify(thingName)} is not a valid thing name`, 5);
      if (client.id !== thingName)
        return authError(`client id '${client.id}' does not match certificate CN '${thingName}'`, 5);
      return { kind: 'device', thingName };
    }
    // A device is its client id: a made-up one would be a thing nobody named (AWS IoT's policy variable
    // `${iot:ClientId}` needs a client id too). 2 = identifier rejected.
    if (emptyClientIds.has(client)) return authError('an empty client id is not a thing name', 2);
    if (!validThingName(client.id))
      return authError(`client id '${client.id}' is not a valid thing name ([a-zA-Z0-9:_-], 1-128)`, 2);
    return { kind: 'device', thingName: client.id };
  }

  if (quotas !== undefined)
    aedes.on('unsubscribe', (filters, client) => quotas.unsubscribed(client, filters));
  aedes.on('clientError', (client, error) => {
    logger.warn(`mqtt client error: ${error.message}`, { clientId: client.id });
  });
  aedes.on('connectionError', (client, error) => {
    logger.warn(`mqtt connection error: ${error.message}`, { clientId: client.id });
  });

  let unrefSockets = false;
  const onSocket = (socket: Socket) => {
    socket.setNoDelay(true);
    if (unrefSockets) socket.unref();
    guardPacketSizes(aedes.handle(socket), resolved.packetLimits, (violation) => {
      counts.oversizedPackets++;
      logger.warn('mqtt connection closed: packet over the size limit', { ...violation });
    });
  };
  const server: Server =
    resolved.tls === undefined
      ? createNetServer(onSocket)
      : createTlsServer(
          {
            key: resolved.tls.key,
            cert: resolved.tls.cert,
            ...(resolved.tls.ca === undefined ? {} : { ca: resolved.tls.ca }),
            requestCert: resolved.tls.requestCert === true,
            rejectUnauthorized: resolved.tls.requestCert === true,
          },
          onSocket,
        );
  // Every accepted TCP connection, so close() can end those aedes does not know yet: a connection that has not
  // sent CONNECT (aedes waits up to its 30 s connect timeout) or a TLS handshake in progress (up to 120 s).
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  if (resolved.tls !== undefined) {
    server.on('tlsClientError', (error: Error) => logger.warn(`mqtt tls handshake failed: ${error.message}`));
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(resolved.port, resolved.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw error;
  }
  const address = server.address() as AddressInfo;
  const scheme = resolved.tls === undefined ? 'mqtt' : 'mqtts';
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;

  return {
    url: `${scheme}://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    aedes,
    quotas: resolved.connectionQuotas,
    publish(topic, payload, publishOptions = {}) {
      return new Promise<void>((resolve, reject) => {
        aedes.publish(
          {
            cmd: 'publish',
            topic,
            payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload),
            qos: publishOptions.qos ?? 0,
            retain: publishOptions.retain ?? false,
            dup: false,
          },
          (error) => (error ? reject(error) : resolve()),
        );
      });
    },
    publishNow(topic, payload, qos) {
      aedes.publish(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.isBuffer(payload)
            ? payload
            : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
          qos,
          retain: false,
          dup: false,
        },
        (error) => {
          if (error) logger.warn(`mqtt publish of ${topic} failed: ${error.message}`);
        },
      );
    },
    stats: () => ({ connectedClients: aedes.connectedClients, ...counts, connectionQuotas: quotas?.stats() }),
    unref() {
      unrefSockets = true;
      server.unref();
      const timers = aedes as unknown as Record<
        '_heartbeatInterval' | '_clearWillInterval',
        NodeJS.Timeout | undefined
      >;
      timers._heartbeatInterval?.unref();
      timers._clearWillInterval?.unref();
    },
    close() {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await serverClosed;
      })();
      return closing;
    },
  };
}
