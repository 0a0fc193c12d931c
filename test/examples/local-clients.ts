/** Test support: the real AWS SDK client (Nagle off, keep-alive) and a shadow client on the local service. */
import { Agent } from 'node:http';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { lambdaShadowClient } from '../../examples/lambdas/shadows-from-environment.js';
import type { ShadowClient, ShadowClientOptions } from '../../src/index.js';

/** An SDK client and its agent; `close()` releases both. */
export interface LocalSdk {
  client: IoTDataPlaneClient;
  /** A shadow client configured as the Lambdas' (`lambdaShadowClient`). */
  shadows(options?: Omit<ShadowClientOptions, 'transport'>): ShadowClient;
  close(): void;
}

/**
 * Creates the real AWS SDK client against the local service's HTTP endpoint.
 *
 * @param endpoint - `service.httpEndpoint`
 */
export function localSdk(endpoint: string): LocalSdk {
  const agent = new Agent({ keepAlive: true, noDelay: true } as ConstructorParameters<typeof Agent>[0]);
  const client = new IoTDataPlaneClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    requestHandler: { httpAgent: agent },
    maxAttempts: 1, // the update engine does the retrying
  });
  return {
    client,
    shadows: (options = {}) => lambdaShadowClient(client, options),
    close() {
      client.destroy();
      agent.destroy();
    },
  };
}
