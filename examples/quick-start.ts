/**
 * Quick start: an app changes a device's desired state through the real AWS SDK, against the local shadow
 * service, while independent writers race it under AWS's per-thing quota. No update is lost and no request is
 * sent when nothing changes.
 *
 * Run: `npx tsx examples/quick-start.ts`
 */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { startShadowService } from '../src/emulator/index.js';
import { createShadowClient, isShadowNotFoundError, type ShadowEvent } from '../src/index.js';
import { awsTransport } from '../src/transports/aws.js';

/** Independent writers of the quick start, and the increments each makes. */
export const WRITERS = 5;
export const INCREMENTS_EACH = 4;

/** What the quick start observed, for its test. */
export interface QuickStartResult {
  counter: number;
  version: number;
  skipped: boolean;
  conflictsResolved: number;
}

/** Runs the quick start against a fresh local service and returns what it observed. */
export async function runQuickStart(log: (line: string) => void = console.log): Promise<QuickStartResult> {
  const service = await startShadowService();
  try {
    // The same client you would give the endpoint of AWS IoT Core (`<prefix>-ats.iot.<region>.amazonaws.com`).
    const iot = new IoTDataPlaneClient({
      endpoint: service.httpEndpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 1, // shadow-sync retries itself, with full jitter and within the per-thing quota
    });
    let conflictsResolved = 0;
    const onEvent = (event: ShadowEvent): void => {
      if (event.type === 'conflict') conflictsResolved++;
    };
    const shadows = createShadowClient({ transport: awsTransport(iot), onEvent });
    const aircon = shadows.shadow('aircon-1');

    // Read-modify-write: the intent sees the current document (undefined before the shadow exists).
    await aircon.update(() => ({ desired: { power: 'on', targetTemp: 22 } }));

    // Five independent writers (as five Lambdas would be: each its own SDK client and its own shadow-sync
    // client, sharing nothing) increment one counter four times each, at once, under AWS's per-thing quota
    // (20 requests/s): versioned writes conflict and the service throttles; with default options the library
    // re-reads, re-runs the intent, paces each client to its share of the quota, and every update lands.
    const lambdas = Array.from({ length: WRITERS }, () => {
      const ownIot = new IoTDataPlaneClient({
        endpoint: service.httpEndpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        maxAttempts: 1,
      });
      return { ownIot, shadows: createShadowClient({ transport: awsTransport(ownIot), onEvent }) };
    });
    try {
      await Promise.all(
        lambdas.map(async ({ shadows: own }) => {
          for (let i = 0; i < INCREMENTS_EACH; i++) {
            await own.shadow('aircon-1').update((current) => ({
              desired: { changes: Number(current?.state.desired?.changes ?? 0) + 1 },
            }));
          }
        }),
      );
    } finally {
      for (const { ownIot } of lambdas) ownIot.destroy();
    }

    // A blind merge needs no read and cannot conflict; a change already in place sends nothing.
    await aircon.merge({ reported: { power: 'on', targetTemp: 22 } });
    const noop = await aircon.update(() => ({ desired: { power: 'on' } }));

    const document = await aircon.get();
    const counter = Number(document.state.desired?.changes);
    log(`desired: ${JSON.stringify(document.state.desired)}`);
    log(`delta: ${JSON.stringify(document.state.delta ?? {})} (targetTemp and power are in sync)`);
    log(
      `version ${document.version}; ${conflictsResolved} conflicts resolved; no-op update skipped: ${noop.skipped}`,
    );

    await aircon.delete();
    await aircon.get().catch((error: unknown) => {
      if (!isShadowNotFoundError(error)) throw error;
      log(`after delete: ${error.message}`);
    });
    return { counter, version: document.version, skipped: noop.skipped, conflictsResolved };
  } finally {
    await service.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runQuickStart();
