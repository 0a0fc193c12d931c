/**
 * Test support: MQTT 3.1.1 packets written byte by byte (no client library in the way, so tests can declare any
 * length and break any rule) and a raw TCP connection that records what the broker sends back.
 */
import { connect, type Socket } from 'node:net';

/** The MQTT "remaining length" varint (1-4 bytes; values up to 268,435,455). */
export function remainingLength(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return Buffer.from(bytes);
}

function utf8(text: string | Buffer): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A complete CONNECT (clean session, keepalive 60 s). */
export function connectPacket(
  clientId: string,
  options: { username?: string; password?: string; will?: { topic: string; payload: Buffer } } = {},
): Buffer {
  let flags = 0x02;
  const tail: Buffer[] = [utf8(clientId)];
  if (options.will !== undefined) {
    flags |= 0x04;
    tail.push(utf8(options.will.topic), utf8(options.will.payload));
  }
  if (options.username !== undefined) {
    flags |= 0x80;
    tail.push(utf8(options.username));
  }
  if (options.password !== undefined) {
    flags |= 0x40;
    tail.push(utf8(options.password));
  }
  const body = Buffer.concat([utf8('MQTT'), Buffer.from([4, flags, 0, 60]), ...tail]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

/** A PUBLISH (packet id 1 when qos > 0). */
export function publishPacket(
  topic: string | Buffer,
  payload: Buffer | string,
  options: { qos?: 0 | 1 | 2; retain?: boolean; packetId?: number } = {},
): Buffer {
  const qos = options.qos ?? 0;
  const header = 0x30 | (qos << 1) | (options.retain === true ? 1 : 0);
  const id = Buffer.alloc(qos > 0 ? 2 : 0);
  if (qos > 0) id.writeUInt16BE(options.packetId ?? 1);
  const body = Buffer.concat([utf8(typeof topic === 'string' ? topic : topic), id, Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([header]), remainingLength(body.length), body]);
}

/** A SUBSCRIBE for one filter. */
export function subscribePacket(filter: string, qos: 0 | 1 | 2, packetId = 1): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(packetId);
  const body = Buffer.concat([id, utf8(filter), Buffer.from([qos])]);
  return Buffer.concat([Buffer.from([0x82]), remainingLength(body.length), body]);
}

/** A PUBREL for a packet id (QoS 2 step 3). */
export function pubrelPacket(packetId: number): Buffer {
  const body = Buffer.alloc(2);
  body.writeUInt16BE(packetId);
  return Buffer.concat([Buffer.from([0x62, 2]), body]);
}

/** A raw connection to the broker. */
export interface RawConnection {
  readonly socket: Socket;
  /** Every byte received so far. */
  received(): Buffer;
  /** Resolves once the broker (or the network) closed the connection. */
  readonly closed: Promise<void>;
  /** Resolves once at least `count` bytes arrived (or the connection closed). */
  bytes(count: number): Promise<Buffer>;
  /** Writes, resolving false once the connection is gone instead of throwing. */
  write(data: Buffer): Promise<boolean>;
  destroy(): void;
}

/** Opens a raw TCP connection to `host:port`. */
export function rawConnect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host, noDelay: true });
    const chunks: Buffer[] = [];
    let size = 0;
    let gone = false;
    const waiters: (() => void)[] = [];
    const wake = () => {
      for (const waiter of waiters.splice(0)) waiter();
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      wake();
    });
    const closed = new Promise<void>((done) =>
      socket.once('close', () => {
        gone = true;
        wake();
        done();
      }),
    );
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed,
        async bytes(count) {
          while (size < count && !gone) await new Promise<void>((wait) => waiters.push(wait));
          return Buffer.concat(chunks);
        },
        write(data) {
          if (gone || socket.destroyed) return Promise.resolve(false);
          return new Promise((done) => {
            socket.write(data, (error) => done(error === undefined || error === null));
          });
        },
        destroy: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}
