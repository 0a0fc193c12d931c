/**
 * Quick start: an app changes a device's desired state through the real AWS SDK, against the local shadow
 * service, while other writers race it. No update is lost and no request is sent when nothing changes.
 *
 * Run: `npx tsx examples/quick-start.ts`
 */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { startShadowService } from '../src/emulator/index.js';
import { createShadowClient, isShadowNotFoundError, type ShadowEvent } from '../src/index.js';
import { awsTransport } from '../src/transports/aws.js';

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

    // Five independent clients (as five Lambdas would be) increment one counter at once: versioned writes
    // conflict, the library re-reads, re-runs the intent and retries with jittered backoff.
    const writers = Array.from({ length: 5 }, () =>
      createShadowClient({ transport: awsTransport(iot), onEvent }),
    );
    await Promise.all(
      writers.map((writer) =>
        writer
          .shadow('aircon-1')
          .update((current) => ({ desired: { changes: Number(current?.state.desired?.changes ?? 0) + 1 } })),
      ),
    );

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
