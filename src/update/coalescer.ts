/**
 * The per-shadow queue behind coalescing. Calls that arrive while a round is running (or in the same
 * tick as the first one) wait and form the next round, so N concurrent callers on one shadow cost about
 * one request per round instead of N competing requests that conflict with each other.
 */

/** How a {@link Coalescer} forms and runs rounds. */
export interface CoalescerSettings<C> {
  /** When false, every call is its own round and rounds run concurrently. */
  coalesce: boolean;
  /** Removes the calls of the next round from the front of `pending` and returns them (at least one). */
  takeRound(pending: C[]): C[];
  /** Runs one round; must settle every call it was given and never reject. */
  runRound(calls: C[]): Promise<void>;
}

/** A queue that turns calls into rounds. */
export interface Coalescer<C> {
  /** Queues a call; it runs in the next round that has room for it. */
  push(call: C): void;
  /** Puts calls back at the front of the queue (for calls a round handed back). */
  requeue(calls: C[]): void;
  /** Calls queued or running. */
  size(): number;
}

/**
 * Creates a {@link Coalescer}.
 *
 * @param settings - round formation and execution
 */
export function createCoalescer<C>(settings: CoalescerSettings<C>): Coalescer<C> {
  const pending: C[] = [];
  let running = 0;
  let draining = false;

  const drain = async (): Promise<void> => {
    while (pending.length > 0) {
      const round = settings.takeRound(pending);
      running += round.length;
      try {
        await settings.runRound(round);
      } finally {
        running -= round.length;
      }
    }
    draining = false;
  };

  const start = (): void => {
    if (draining) return;
    draining = true;
    // Start on a microtask so that calls made in the same synchronous burst share the first round.
    queueMicrotask(() => {
      void drain();
    });
  };

  return {
    push(call) {
      if (!settings.coalesce) {
        running++;
        void settings.runRound([call]).finally(() => {
          running--;
        });
        return;
      }
      pending.push(call);
      start();
    },
    requeue(calls) {
      if (!settings.coalesce) {
        for (const call of calls) this.push(call);
        return;
      }
      pending.unshift(...calls);
      start();
    },
    size() {
      return pending.length + running;
    },
  };
}
