/**
 * A walkthrough of shadow-sync's pure core on the seed's air conditioner: the service's merge rules,
 * the delta a device receives, the minimal patch an app sends, and a version conflict.
 * Every value printed is computed by the same functions the local shadow service runs.
 *
 * Run: `npx tsx examples/core-walkthrough.ts`
 */
import {
  type ApplyUpdateResult,
  applyUpdate,
  diffState,
  getDocument,
  type ShadowRecord,
  type ShadowTarget,
  toJsonPatch,
} from '../src/index.js';

const target: ShadowTarget = { thingName: 'aircon-1' };
const start = Date.UTC(2026, 10, 29, 9, 0, 0);
let clock = start;

function show(title: string, value: unknown): void {
  console.log(`\n${title}\n  ${JSON.stringify(value)}`);
}

function update(prior: ShadowRecord | undefined, request: unknown): ApplyUpdateResult {
  clock += 1000;
  return applyUpdate(prior, request, { target, now: clock });
}

function accepted(result: ApplyUpdateResult): Extract<ApplyUpdateResult, { ok: true }> {
  if (!result.ok) throw new Error(`unexpected rejection: ${result.rejection.message}`);
  return result;
}

/** Runs the walkthrough and returns the final document's version. */
export function runCoreWalkthrough(): number {
  console.log('shadow-sync core walkthrough: one air conditioner, its app and its device');

  // 1. The device reports its state; the shadow is created at version 1.
  const created = accepted(
    update(undefined, {
      state: { reported: { power: 'off', mode: 'cool', targetTemp: 24, temperature: 27.5, humidity: 48 } },
    }),
  );
  show('1. device reports -> update/accepted', created.accepted);

  // 2. The app wants the unit on at 22 degrees. It states the target; the core computes the minimal patch.
  const current = created.shadow;
  const wanted = { ...current.state, desired: { power: 'on', targetTemp: 22 } };
  const patch = diffState(current.state, wanted);
  show('2. app intent -> minimal update section (diffState)', patch);
  const afterApp = accepted(update(current, { state: patch, version: current.version }));
  show('   update/delta the device receives (only what differs from reported)', afterApp.delta);

  // 3. Meanwhile the device reports telemetry against the old version: the app's next versioned write conflicts.
  const afterTelemetry = accepted(update(afterApp.shadow, { state: { reported: { temperature: 27.1 } } }));
  const stale = update(afterTelemetry.shadow, {
    state: { desired: { mode: 'dry' } },
    version: afterApp.shadow.version,
  });
  show('3. versioned write with a stale version -> rejected', stale.ok ? stale.accepted : stale.rejection);

  // 4. The device applies the delta and reports it; desired == reported, so no delta remains.
  const applied = accepted(
    update(afterTelemetry.shadow, { state: { reported: { power: 'on', targetTemp: 22 } } }),
  );
  show('4. device reports what it applied -> delta', applied.delta ?? 'none (desired matches reported)');

  // 5. null deletes a key, arrays are whole values, and JSON Patch views describe the change for audit logs.
  const cleaned = accepted(
    update(applied.shadow, {
      state: { desired: { power: null }, reported: { schedule: ['07:00', '18:30'] } },
    }),
  );
  show(
    '5. null deletes, arrays replace -> JSON Patch of the change',
    toJsonPatch(applied.shadow.state, cleaned.shadow.state),
  );

  const document = getDocument(cleaned.shadow, { target, now: clock });
  show('   GET: the final document', document.ok ? document.body : document.rejection);
  return cleaned.shadow.version;
}

if (import.meta.url === `file://${process.argv[1]}`) runCoreWalkthrough();
