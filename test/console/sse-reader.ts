/**
 * Test support: reads a Server-Sent Events stream over node:http (Nagle off) and lets a test wait for the next
 * event of a type that satisfies a predicate.
 */
import { type ClientRequest, request } from 'node:http';

/** One event received. */
export interface SseEvent {
  event: string;
  data: unknown;
}

/** An open stream. */
export interface SseReader {
  /** Every event received so far. */
  readonly events: SseEvent[];
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  /** Resolves with the first event (already received or future) of `type` for which `match` holds. */
  next<T = unknown>(type: string, match?: (data: T) => boolean, timeoutMs?: number): Promise<T>;
  close(): void;
}

/** Opens `url` as an event stream; resolves once the response headers arrived. */
export function openSse(url: string): Promise<SseReader> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const waiters = new Set<() => void>();
    let req: ClientRequest;
    let buffer = '';
    req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`event stream answered ${res.statusCode}`));
        res.resume();
        return;
      }
      const ended = new Promise<void>((done) => {
        res.once('end', done);
        res.once('close', done);
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data !== '') events.push({ event, data: JSON.parse(data) });
        }
        for (const wake of [...waiters]) wake();
      });
      resolve({
        events,
        ended,
        next<T>(type: string, match: (data: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
          let from = 0;
          return new Promise<T>((done, fail) => {
            const check = (): boolean => {
              for (; from < events.length; from++) {
                const e = events[from] as SseEvent;
                if (e.event === type && match(e.data as T)) {
                  from++;
                  done(e.data as T);
                  return true;
                }
              }
              return false;
            };
            if (check()) return;
            const timer = setTimeout(() => {
              waiters.delete(wake);
              fail(
                new Error(
                  `no '${type}' event matched within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.event))}`,
                ),
              );
            }, timeoutMs);
            const wake = () => {
              if (check()) {
                clearTimeout(timer);
                waiters.delete(wake);
              }
            };
            waiters.add(wake);
          });
        },
        close() {
          req.destroy();
        },
      });
    });
    req.on('socket', (socket) => socket.setNoDelay(true));
    req.on('error', reject);
    req.end();
  });
}
