/**
 * The shadow client every shadow-writing Lambda uses: the AWS transport over an `IoTDataPlaneClient` pointed at
 * the account's IoT data endpoint (`IOT_DATA_ENDPOINT`, from `aws iot describe-endpoint --endpoint-type
 * iot:Data-ATS`; CloudFormation has no attribute for it, so the template takes it as a parameter).
 */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { createShadowClient, type ShadowClient, type ShadowClientOptions } from '../../src/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { requireEnvironment } from './environment.js';

/**
 * Engine options of every Lambda's shadow client. `useKnownDocuments` is off: a warm Lambda instance would
 * otherwise start a round from the document it remembers from its previous invocation, while other instances,
 * the device and other Lambdas wrote meanwhile without the HTTP transport hearing of it. A stale base is caught
 * by a 409 only when the round WRITES; an intent that decides "nothing to do" on the stale document (a value
 * already desired, a cleanup that finds nothing settled) is skipped without a write, and the caller gets a
 * wrong answer (a lost update: see test/examples/lambda-races.test.ts). Reading first costs one GET per
 * invocation.
 *
 * `maxElapsedMs` stays below the functions' timeout in the template (15 s), so a handler answers 409 or 429
 * when its retries run out instead of being killed mid-retry.
 */
export const LAMBDA_SHADOW_CLIENT_OPTIONS = Object.freeze({
  useKnownDocuments: false,
  maxElapsedMs: 10_000,
}) satisfies Readonly<Omit<ShadowClientOptions, 'transport'>>;

/**
 * Creates the shadow client of a Lambda handler over an IoT data plane client, with
 * {@link LAMBDA_SHADOW_CLIENT_OPTIONS}.
 *
 * @param client - an `IoTDataPlaneClient` (AWS, or the local service's HTTP endpoint)
 * @param options - further engine options
 */
export function lambdaShadowClient(
  client: IoTDataPlaneClient,
  options: Omit<ShadowClientOptions, 'transport'> = {},
): ShadowClient {
  return createShadowClient({ ...LAMBDA_SHADOW_CLIENT_OPTIONS, ...options, transport: awsTransport(client) });
}

/**
 * Creates a Lambda's shadow client from `IOT_DATA_ENDPOINT` (a host name or an https URL).
 *
 * @param environment - where to read the variable from
 * @throws Error when `IOT_DATA_ENDPOINT` is not set
 */
export function shadowsFromEnvironment(environment: NodeJS.ProcessEnv = process.env): ShadowClient {
  const endpoint = requireEnvironment('IOT_DATA_ENDPOINT', environment);
  const url =
    endpoint.startsWith('https://') || endpoint.startsWith('http://') ? endpoint : `https://${endpoint}`;
  // One attempt per request: the update engine retries (awsTransport refuses a client with retries of its own).
  return lambdaShadowClient(new IoTDataPlaneClient({ endpoint: url, maxAttempts: 1 }));
}
