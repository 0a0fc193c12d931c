/**
 * Size limits on MQTT packets, enforced where the bytes arrive (at the packet parser of each connection), so
 * that memory never grows with a length a client merely declares.
 *
 * aedes' parser (mqtt-packet) keeps every byte of a packet until the whole declared length has arrived: a
 * CONNECT declared at 255 MB from an unauthenticated socket, or a 200 MB PUBLISH, was buffered whole. The guard
 * wraps the parser's `parse`: after each chunk it looks at the packet being assembled (its type and declared
 * remaining length, known from the fixed header) and closes the connection as soon as the packet cannot fit:
 *
 * - before the client is authenticated (CONNECT not yet accepted), every packet is limited to
 *   `maxConnectBytes` and the bytes held for it likewise: nobody unauthenticated makes the broker hold more;
 * - after that, a PUBLISH payload is limited to AWS IoT's message size, 128 KB (spec 6, "Message size"); the
 *   payload size is exact as soon as the topic length (the first two bytes after the fixed header) is in;
 *   any other packet is limited to `maxPacketBytes`.
 *
 * AWS IoT answers an MQTT 3.1.1 protocol or limit violation by closing the connection (3.1.1 has no way to
 * reject a PUBLISH); the guard does the same. At most one socket read (about 64 KB) is held beyond a limit.
 */
import type { Client } from 'aedes';
import { ShadowOptionsError } from '../errors.js';

/** Limits of {@link guardPacketSizes}. */
export interface PacketLimits {
  /**
   * Largest packet (remaining length) accepted before the client is authenticated. A CONNECT carries a client
   * id (≤ 128 bytes for a thing name), a username and password and an optional will.
   * @defaultValue 8192
   */
  maxConnectBytes?: number;
  /**
   * Largest PUBLISH payload accepted: AWS IoT's 128 KB message size.
   * @defaultValue 131072
   */
  maxPublishPayloadBytes?: number;
  /**
   * Largest packet of any other kind (SUBSCRIBE, UNSUBSCRIBE, ...) after authentication.
   * @defaultValue 65536
   */
  maxPacketBytes?: number;
}

/** Defaults of {@link PacketLimits}. */
export const DEFAULT_PACKET_LIMITS = Object.freeze({
  maxConnectBytes: 8 * 1024,
  maxPublishPayloadBytes: 128 * 1024,
  maxPacketBytes: 64 * 1024,
});

/** {@link PacketLimits} with defaults applied. */
export type ResolvedPacketLimits = Readonly<Required<PacketLimits>>;

/**
 * Validates packet limits and applies the defaults.
 *
 * @throws ShadowOptionsError for an unknown key or a value that is not a positive integer
 */
export function resolvePacketLimits(limits: PacketLimits = {}): ResolvedPacketLimits {
  const known = Object.keys(DEFAULT_PACKET_LIMITS);
  for (const key of Object.keys(limits))
    if (!known.includes(key))
      throw new ShadowOptionsError(`unknown packet limit '${key}' (known: ${known.join(', ')})`);
  const resolved = { ...DEFAULT_PACKET_LIMITS, ...limits };
  for (const [key, value] of Object.entries(resolved))
    if (!Number.isSafeInteger(value) || value < 1 || value > 268_435_455)
      throw new ShadowOptionsError(
        `packet limit ${key} must be an integer in [1, 268435455], got ${String(value)}`,
      );
  return Object.freeze(resolved);
}

/** The parts of mqtt-packet's parser the guard reads (not in its type declarations). */
interface ParserState {
  parse(buf: Buffer): number;
  packet: { cmd?: string; length: number; qos?: number };
  _list: { length: number; readUInt16BE(offset: number): number };
  _stateCounter: number;
}

/** What {@link guardPacketSizes} found wrong, for the log. */
export interface PacketLimitViolation {
  /** The packet type (`connect`, `publish`, ...), or `undefined` when the fixed header was not complete. */
  cmd: string | undefined;
  /** The declared remaining length, or the PUBLISH payload size, in bytes. */
  size: number;
  limit: number;
  authenticated: boolean;
}

/** The remaining length declared by the fixed header at the start of `buf`, if it is complete there. */
function declaredLength(buf: Buffer): number | undefined {
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4 && i < buf.length; i++) {
    const byte = buf[i] as number;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return value;
    multiplier *= 128;
  }
  return undefined;
}

/** State index of mqtt-packet's parser while it collects a packet's body (`_parsePayload`). */
const PAYLOAD_STATE = 2;

/**
 * Applies the size limits to one aedes client: wraps its parser so that a packet over a limit closes the
 * connection before it is buffered.
 *
 * @param client - the client `aedes.handle(socket)` returned
 * @param limits - resolved limits
 * @param onViolation - told about every connection closed for a limit (logging, counters)
 */
export function guardPacketSizes(
  client: Client,
  limits: ResolvedPacketLimits,
  onViolation: (violation: PacketLimitViolation) => void,
): void {
  const parser = (client as unknown as { _parser: ParserState })._parser;
  const parse = parser.parse.bind(parser);
  let violated = false;
  const cut = (violation: PacketLimitViolation): number => {
    violated = true;
    onViolation(violation);
    // Drop what was collected at once (the socket may take a moment to close) and refuse what follows.
    (parser as { _list: unknown })._list = { length: 0, readUInt16BE: () => 0 };
    client.conn.destroy();
    return 0;
  };
  parser.parse = (buf: Buffer): number => {
    if (violated) return 0;
    // Unauthenticated: a packet whose fixed header is in this chunk is judged before the parser sees it, so an
    // oversized CONNECT is refused whether it arrives whole or in pieces.
    if (client.connected !== true && parser._stateCounter === 0 && parser._list.length === 0) {
      const declared = declaredLength(buf);
      if (declared !== undefined && declared > limits.maxConnectBytes)
        return cut({ cmd: undefined, size: declared, limit: limits.maxConnectBytes, authenticated: false });
    }
    const held = parse(buf);
    const authenticated = client.connected === true;
    const packet = parser.packet;
    const collecting = parser._stateCounter === PAYLOAD_STATE && packet.length >= 0;
    if (!authenticated) {
      if (collecting && packet.length > limits.maxConnectBytes)
        return cut({ cmd: packet.cmd, size: packet.length, limit: limits.maxConnectBytes, authenticated });
      // Bytes of a fixed header that never completes, or of packets queued behind an unanswered CONNECT.
      if (held > limits.maxConnectBytes + 5)
        return cut({ cmd: packet.cmd, size: held, limit: limits.maxConnectBytes, authenticated });
      return held;
    }
    if (!collecting) return held;
    if (packet.cmd === 'publish') {
      // The smallest the payload can be: the whole body less the longest topic and the packet id.
      const idBytes = (packet.qos ?? 0) > 0 ? 2 : 0;
      const topicBytes = parser._list.length >= 2 ? parser._list.readUInt16BE(0) : 65_535;
      const payload = packet.length - 2 - topicBytes - idBytes;
      if (payload > limits.maxPublishPayloadBytes)
        return cut({ cmd: 'publish', size: payload, limit: limits.maxPublishPayloadBytes, authenticated });
      return held;
    }
    if (packet.length > limits.maxPacketBytes)
      return cut({ cmd: packet.cmd, size: packet.length, limit: limits.maxPacketBytes, authenticated });
    return held;
  };
}
