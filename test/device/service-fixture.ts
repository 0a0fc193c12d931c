/**
 * Shared fixture of the device agent tests: the real local shadow service, the real AWS SDK client over HTTP
 * and real mqtt.js clients on loopback, with Nagle disabled on every socket the tests open.
 */
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { JsonObject } from '../../src/core/document.js';
import {
  type ShadowService,
  type ShadowServiceOptions,
  startShadowService,
} from '../../src/emulator/index.js';

/** Starts the service on free loopback ports. */
export function startService(options: ShadowServiceOptions = {}): Promise<ShadowService> {
  return startShadowService({ host: '127.0.0.1', ...options });
}

/** The AWS SDK client an app would use, pointed at the local service. */
export function sdkClient(service: { httpEndpoint: string }): IoTDataPlaneClient {
  return new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
}

/** mqtt.js options for an agent in a test: fast reconnects, no Nagle once connected. */
export const agentMqttOptions: IClientOptions = { reconnectPeriod: 50, connectTimeout: 2_000 };

/** A connected mqtt.js client (an observer or a fake service publisher), with Nagle disabled. */
export async function mqttClient(
  url: string,
  clientId: string,
  options: IClientOptions = {},
): Promise<MqttClient> {
  const client = connect(url, { clientId, reconnectPeriod: 0, ...options });
  client.on('connect', () => {
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** Reads a shadow over HTTP with the SDK; `undefined` when it does not exist. */
export async function readShadow(
  client: IoTDataPlaneClient,
  thingName: string,
): Promise<
  { state: { desired?: JsonObject; reported?: JsonObject; delta?: JsonObject }; version: number } | undefined
> {
  try {
    const out = await client.send(new GetThingShadowCommand({ thingName }));
    return JSON.parse(new TextDecoder().decode(out.payload));
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

/** Writes `desired` over HTTP with the SDK (a blind update), returning the new version. */
export async function writeDesired(
  client: IoTDataPlaneClient,
  thingName: string,
  desired: JsonObject,
): Promise<number> {
  const out = await client.send(
    new UpdateThingShadowCommand({
      thingName,
      payload: new TextEncoder().encode(JSON.stringify({ state: { desired } })),
    }),
  );
  return (JSON.parse(new TextDecoder().decode(out.payload)) as { version: number }).version;
}

/** Polls until `check` returns true or throws after `timeoutMs` with `what` in the message. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 8_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Stops the service and starts it again on the same ports (and data directory): a broker restart. */
export async function restartService(
  service: ShadowService,
  options: ShadowServiceOptions,
  downMs = 0,
): Promise<ShadowService> {
  const httpPort = Number(new URL(service.httpEndpoint).port);
  const mqttPort = Number(new URL(service.mqttUrl).port);
  await service.close();
  // A real outage on purpose: agents under test reconnect on the system clock against a real service.
  if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
  return startService({ ...options, httpPort, mqttPort });
}
