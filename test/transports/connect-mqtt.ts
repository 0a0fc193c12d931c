/** Test support: a real mqtt.js client on loopback with Nagle disabled (see DESIGN.md: 40-80 ms per round trip otherwise). */
import type { Socket } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';

/**
 * Connects an mqtt.js client and disables Nagle on its socket.
 *
 * @param url - `mqtt://127.0.0.1:<port>`
 * @param clientId - the MQTT client id (a thing name for device-like clients)
 */
export async function connectMqtt(
  url: string,
  clientId: string,
  login: { username: string; password: string } | undefined = undefined,
): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, {
    clientId,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...login,
  });
  (client.stream as Socket).setNoDelay?.(true);
  return client;
}
