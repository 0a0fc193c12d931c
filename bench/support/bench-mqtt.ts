/**
 * mqtt.js clients for the benchmarks: plain TCP to a loopback broker, Nagle off from the first byte (a delayed
 * small write costs 40-80 ms per round trip), and optionally unref'd so a finished suite can exit.
 */
import { connect, type Socket } from 'node:net';
import { type IClientOptions, MqttClient } from 'mqtt';

/** Options of {@link connectBenchClient}. */
export interface BenchClientOptions {
  /** Let the process exit while the client is connected. @defaultValue false */
  unref?: boolean;
  /** Further mqtt.js options. */
  mqtt?: IClientOptions;
}

/** Builds an mqtt.js client for `mqtt://host:port` without waiting for its CONNACK. */
export function buildBenchClient(
  url: string,
  clientId: string,
  options: BenchClientOptions = {},
): MqttClient {
  const { hostname, port } = new URL(url);
  return new MqttClient(
    () => {
      const socket: Socket = connect({ host: hostname, port: Number(port) });
      socket.setNoDelay(true);
      if (options.unref === true) socket.unref();
      return socket;
    },
    { clientId, protocolVersion: 4, clean: true, keepalive: 0, reconnectPeriod: 0, ...options.mqtt },
  );
}

/**
 * Connects an mqtt.js client and waits for its CONNACK.
 *
 * @throws the client's error when the connection fails
 */
export async function connectBenchClient(
  url: string,
  clientId: string,
  options: BenchClientOptions = {},
): Promise<MqttClient> {
  const client = buildBenchClient(url, clientId, options);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}
