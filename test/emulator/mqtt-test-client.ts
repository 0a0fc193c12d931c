/**
 * Test support for the MQTT tests: a real mqtt.js client with Nagle disabled on its socket and a small inbox
 * that lets a test wait for the next message on a topic.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ErrorWithSubackPacket, type IClientOptions, type IPublishPacket, MqttClient } from 'mqtt';

/** One message a test client received. */
export interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  /** The payload parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

/** Options of {@link connectTestClient}. */
export interface TestClientOptions {
  clientId: string;
  username?: string;
  password?: string;
  /** TLS material for `mqtts://` URLs. */
  tls?: { ca: string; key?: string; cert?: string };
  /** Extra mqtt.js options (will, clean, ...). */
  extra?: Partial<IClientOptions>;
}

/** A connected test client. */
export interface TestClient {
  readonly client: MqttClient;
  /** Every message received so far, in order. */
  readonly received: Received[];
  /** Subscribes and returns the SUBACK return codes, in order (128 = refused). */
  subscribe(filters: string | string[], qos?: 0 | 1): Promise<number[]>;
  publish(topic: string, payload: string | Buffer | object, qos?: 0 | 1, retain?: boolean): Promise<void>;
  /** Removes and returns the oldest unread message on `topic` (waiting up to `timeoutMs`). */
  take(topic: string, timeoutMs?: number): Promise<Received>;
  /** Waits until `count` unread messages on `topic` exist, then removes and returns them. */
  takeMany(topic: string, count: number, timeoutMs?: number): Promise<Received[]>;
  /** Unread messages on `topic`, without removing them. */
  unread(topic: string): Received[];
  /** Resolves true if nothing arrives on `topic` within `ms`. */
  quiet(topic: string, ms: number): Promise<boolean>;
  close(): Promise<void>;
}

function parse(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Builds (but does not await) an mqtt.js client whose socket has Nagle disabled. */
export function buildMqttClient(url: string, options: TestClientOptions): MqttClient {
  const parsed = new URL(url);
  const host = parsed.hostname;
  const port = Number(parsed.port);
  const secure = parsed.protocol === 'mqtts:';
  return new MqttClient(
    () => {
      const socket = secure
        ? tlsConnect({
            host,
            port,
            ca: options.tls?.ca,
            ...(options.tls?.key === undefined ? {} : { key: options.tls.key, cert: options.tls.cert }),
            servername: 'localhost',
          })
        : netConnect({ host, port });
      socket.setNoDelay(true);
      return socket;
    },
    {
      clientId: options.clientId,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
      ...options.extra,
    },
  );
}

/**
 * Connects a real mqtt.js client and waits for CONNACK.
 *
 * @throws the connection error (for example a refused CONNACK) when the broker refuses it
 */
export async function connectTestClient(url: string, options: TestClientOptions): Promise<TestClient> {
  const client = buildMqttClient(url, options);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', (error) => {
      client.end(true);
      reject(error);
    });
    client.once('close', () => reject(new Error(`connection of ${options.clientId} closed before CONNACK`)));
  });
  const received: Received[] = [];
  const read = new Set<Received>();
  let wake: (() => void)[] = [];
  client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
    received.push({ topic, payload, qos: packet.qos, retain: packet.retain, json: parse(payload) });
    const waiting = wake;
    wake = [];
    for (const fn of waiting) fn();
  });
  const unread = (topic: string) => received.filter((m) => m.topic === topic && !read.has(m));

  async function takeMany(topic: string, count: number, timeoutMs = 5000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const available = unread(topic);
      if (available.length >= count) {
        const taken = available.slice(0, count);
        for (const m of taken) read.add(m);
        return taken;
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `${options.clientId}: timed out waiting for ${count} message(s) on ${topic} (have ${available.length}; all topics: ${[
            ...new Set(received.map((m) => m.topic)),
          ].join(', ')})`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  return {
    client,
    received,
    async subscribe(filters, qos = 1) {
      try {
        return (await client.subscribeAsync(filters, { qos })).map((grant) => grant.qos);
      } catch (error) {
        // mqtt.js rejects when any filter is refused; the SUBACK still lists every return code.
        if (error instanceof ErrorWithSubackPacket && error.packet.cmd === 'suback')
          return (error.packet.granted as unknown[]).map((code) =>
            typeof code === 'number' ? code : (code as { qos: number }).qos,
          );
        throw error;
      }
    },
    async publish(topic, payload, qos = 1, retain = false) {
      const body =
        typeof payload === 'string' || Buffer.isBuffer(payload)
          ? payload
          : Buffer.from(JSON.stringify(payload));
      await client.publishAsync(topic, body, { qos, retain });
    },
    take: async (topic, timeoutMs) => (await takeMany(topic, 1, timeoutMs))[0] as Received,
    takeMany,
    unread,
    async quiet(topic, ms) {
      const before = unread(topic).length;
      await new Promise((resolve) => setTimeout(resolve, ms));
      return unread(topic).length === before;
    },
    async close() {
      await client.endAsync(true);
    },
  };
}
