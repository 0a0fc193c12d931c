/** HTTP agents for the benchmarks: keep-alive, Nagle off on every socket, optionally unref'd. */
import { Agent } from 'node:http';
import { createConnection, type Socket } from 'node:net';

/**
 * A keep-alive agent whose sockets have Nagle disabled (a delayed small write costs 40-80 ms per round trip).
 *
 * @param maxSockets - sockets per host
 * @param unref - let the process exit while sockets are open
 */
export function benchAgent(maxSockets: number, unref = false): Agent {
  const agent = new Agent({ keepAlive: true, maxSockets });
  agent.createConnection = (options, callback) => {
    const socket: Socket = createConnection(options as never, callback as never);
    socket.setNoDelay(true);
    if (unref) socket.unref();
    return socket;
  };
  return agent;
}
