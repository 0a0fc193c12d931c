/**
 * The bounded buffer of telemetry messages a device keeps while offline. Telemetry is a stream whose newest
 * samples matter most, so when the buffer is full the oldest message is dropped, and every drop is counted.
 */

/** A bounded first-in first-out buffer that drops its oldest entry when full. */
export interface TelemetryBuffer<T> {
  /** Adds a message, dropping the oldest one when the buffer is full. */
  push(message: T): void;
  /** Removes and returns every buffered message, oldest first. */
  drain(): T[];
  /** Messages buffered now. */
  readonly size: number;
  /** Messages dropped since the buffer was created. */
  readonly dropped: number;
}

/**
 * Creates a telemetry buffer.
 *
 * @param capacity - most messages kept; 0 keeps none (every message pushed is dropped)
 */
export function createTelemetryBuffer<T>(capacity: number): TelemetryBuffer<T> {
  // A ring: pushing into a full buffer overwrites the oldest slot, so a long outage costs no array shifting.
  const slots: (T | undefined)[] = new Array(capacity);
  let head = 0;
  let size = 0;
  let dropped = 0;
  return {
    push(message) {
      if (capacity === 0) {
        dropped++;
        return;
      }
      if (size === capacity) {
        slots[head] = message;
        head = (head + 1) % capacity;
        dropped++;
        return;
      }
      slots[(head + size) % capacity] = message;
      size++;
    },
    drain() {
      const out: T[] = [];
      for (let i = 0; i < size; i++) {
        const index = (head + i) % capacity;
        out.push(slots[index] as T);
        slots[index] = undefined;
      }
      head = 0;
      size = 0;
      return out;
    },
    get size() {
      return size;
    },
    get dropped() {
      return dropped;
    },
  };
}
