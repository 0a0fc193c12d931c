/**
 * The device's reports through its split policy: which part goes to the shadow, when each shadow path was last
 * reported, and the values the policy held back (deadband, minimum interval), which are split again when they
 * become due so that no change waits past its interval even if the device reports nothing more.
 */
import type { JsonObject, JsonValue } from '../core/document.js';
import { isJsonObject } from '../core/json-value.js';
import { mergeSection } from '../core/merge.js';
import type { TimerClock } from '../mqtt-session/timer-clock.js';
import type { SplitPolicy, SplitResult } from '../split/split-policy.js';
import { MAX_TIMER_DELAY_MS } from './device-agent-options.js';

/** Splits reports and re-splits held-back values when due. */
export interface ReportSplitter {
  /** Splits `values` now; the shadow part is handed to `onShadow`. */
  split(values: JsonObject): SplitResult;
  /** Cancels the re-check timer. */
  close(): void;
}

/** What the splitter needs from the agent. */
export interface ReportSplitterSettings {
  policy: SplitPolicy;
  /** Epoch milliseconds (policy time). */
  now: () => number;
  timers: TimerClock;
  /** The `reported` section the device currently wants (the policy's deadbands compare against it). */
  lastReported: () => JsonObject | undefined;
  /** The shadow part of a split (reports and re-checks alike). */
  onShadow: (patch: JsonObject) => void;
  /** A re-check ran (the agent's work loop may have something to send). */
  onRechecked: () => void;
}

function pathValue(root: JsonObject, segments: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = root;
  for (const segment of segments) {
    if (!isJsonObject(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}

function nest(segments: readonly string[], value: JsonValue): JsonObject {
  let out: JsonValue = value;
  for (let i = segments.length - 1; i >= 0; i--) out = { [segments[i] as string]: out };
  return out as JsonObject;
}

/** A class: every agent holds one, and prototype methods cost nothing per instance where closures would. */
class Splitter implements ReportSplitter {
  private readonly lastReportedAt: Record<string, number> = {};
  private readonly withheld = new Map<string, { segments: string[]; value: JsonValue }>();
  private checkTimer: unknown;
  private checkAt = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(private readonly settings: ReportSplitterSettings) {}

  split(values: JsonObject): SplitResult {
    const { settings, lastReportedAt } = this;
    const now = settings.now();
    const result = settings.policy.split(values, {
      lastReported: settings.lastReported(),
      lastReportedAt,
      now,
    });
    if (result.shadow !== undefined) settings.onShadow(result.shadow);
    for (const path of result.reportedPaths) lastReportedAt[path] = now;
    this.track(values, result);
    return result;
  }

  private track(values: JsonObject, result: SplitResult): void {
    const { withheld, settings } = this;
    for (const [path, entry] of withheld) {
      if (pathValue(values, entry.segments) !== undefined) withheld.delete(path);
    }
    for (const path of result.withheldPaths) {
      const segments = path.split('.');
      const value = pathValue(values, segments);
      // A copy: the caller may reuse its values object.
      if (value !== undefined) withheld.set(path, { segments, value: structuredClone(value) });
    }
    if (result.nextCheckAt !== undefined && result.nextCheckAt < this.checkAt) {
      this.checkAt = result.nextCheckAt;
      if (this.checkTimer !== undefined) settings.timers.clearTimer(this.checkTimer);
      // Clamped: a longer delay would fire after 1 ms, and the re-check would re-arm it in a busy loop. A
      // re-check that comes early finds the value still held back and arms the timer again.
      this.checkTimer = settings.timers.setTimer(
        () => this.recheck(),
        Math.min(MAX_TIMER_DELAY_MS, Math.max(0, this.checkAt - settings.now())),
      );
    }
  }

  private recheck(): void {
    this.checkTimer = undefined;
    this.checkAt = Number.POSITIVE_INFINITY;
    if (this.closed || this.withheld.size === 0) return;
    let values: JsonObject | undefined;
    for (const entry of this.withheld.values())
      values = mergeSection(values, nest(entry.segments, entry.value));
    if (values === undefined) return;
    this.split(values);
    this.settings.onRechecked();
  }

  close(): void {
    this.closed = true;
    if (this.checkTimer !== undefined) this.settings.timers.clearTimer(this.checkTimer);
    this.checkTimer = undefined;
  }
}

/**
 * Creates the splitter of one agent.
 *
 * @param settings - see {@link ReportSplitterSettings}
 */
export function createReportSplitter(settings: ReportSplitterSettings): ReportSplitter {
  return new Splitter(settings);
}
