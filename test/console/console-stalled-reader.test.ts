/**
 * A page that stops reading its event stream (a stalled or frozen tab) must not make the service buffer without
 * bound: once more than 4 MiB wait for it, the console drops that stream, while readers that keep up stay served.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { type ConsoleServer, createConsoleServer } from '../../src/emulator/console/console-server.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { openSse, type SseReader } from './sse-reader.js';

let opened: { engine: ShadowEngine; consoleServer: ConsoleServer; server: Server } | undefined;
const sockets: Socket[] = [];
const readers: SseReader[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const reader of readers.splice(0)) reader.close();
  if (opened === undefined) return;
  const { engine, consoleServer, server } = opened;
  opened = undefined;
  consoleServer.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await engine.close();
});

it('drops a stream whose reader stalled past 4 MiB and keeps serving a reader that keeps up', async () => {
  // Quotas raised: the test needs a few hundred large updates quickly, which AWS's 20/s would stretch to minutes.
  const engine = createShadowEngine({
    limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 },
  });
  const consoleServer = createConsoleServer(engine, { flushMs: 1 });
  const server = createServer((req, res) => {
    if (!consoleServer.handle(req, res)) res.writeHead(404).end();
  });
  opened = { engine, consoleServer, server };
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const path = '/console/events?thing=big';

  // The stalled tab: sends its request, then never reads (the kernel's buffers fill, then the service's).
  const stalled = connect(port, '127.0.0.1');
  sockets.push(stalled);
  await once(stalled, 'connect');
  stalled.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
  stalled.pause();
  const keepingUp = await openSse(`http://127.0.0.1:${port}${path}`);
  readers.push(keepingUp);
  await keepingUp.next('snapshot');
  while (consoleServer.streams() < 2) await new Promise((resolve) => setTimeout(resolve, 5));

  // Each update is ~6 KB of state; the detail stream carries it several times (document, accepted, documents).
  const filler = 'x'.repeat(6_000);
  const maxUpdates = 4_000;
  let updates = 0;
  while (consoleServer.streams() === 2 && updates < maxUpdates) {
    updates += 1;
    const payload = new TextEncoder().encode(JSON.stringify({ state: { reported: { n: updates, filler } } }));
    const answer = await engine.handle({
      operation: 'update',
      target: { thingName: 'big' },
      payload,
      origin: 'http',
    });
    expect(answer.ok).toBe(true);
    // Every 10 updates, wait until the reader that keeps up has them: on a loaded machine the test could
    // otherwise write faster than its own reader reads, and that reader would be (rightly) dropped too.
    if (updates % 10 === 0)
      await keepingUp.next<{ state: { reported: { n: number } } }>(
        'doc',
        (d) => d.state.reported.n === updates,
      );
  }
  expect(consoleServer.streams(), `streams left after ${updates} updates`).toBe(1);

  // The stalled connection was ended by the service: once the tab reads again it gets what was sent, then the end.
  const closed = once(stalled, 'close');
  stalled.resume();
  await closed;

  // The reader that kept up still gets live documents.
  const last = updates;
  await engine.handle({
    operation: 'update',
    target: { thingName: 'big' },
    payload: new TextEncoder().encode(JSON.stringify({ state: { reported: { n: last + 1 } } })),
    origin: 'http',
  });
  const doc = await keepingUp.next<{ state: { reported: { n: number } } }>(
    'doc',
    (d) => d.state.reported.n === last + 1,
  );
  expect(doc.state.reported.n).toBe(last + 1);
  expect(consoleServer.streams()).toBe(1);
}, 60_000);
