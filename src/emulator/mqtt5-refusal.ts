/**
 * How the embedded aedes broker answers an MQTT 5 client. aedes 1.2 parses an MQTT 5 CONNECT but refuses
 * protocol level 5 with an MQTT 3.1.1-shaped CONNACK (return code 1, two bytes); a strict MQTT 5 client (the AWS
 * IoT Device SDK v2's CRT client) cannot decode that ("AWS_ERROR_MQTT5_DECODE_PROTOCOL_ERROR") and the user sees
 * a protocol error instead of the reason. MQTT 5 section 3.2.2.2 gives the answer an MQTT 5 client reads: a
 * CONNACK with reason code 0x84 (Unsupported Protocol Version), which may carry a Reason String (property 0x1F)
 * saying what to do instead; the server then closes the connection.
 */

/** CONNACK reason code 0x84: Unsupported Protocol Version (MQTT 5 section 3.2.2.2). */
export const UNSUPPORTED_PROTOCOL_VERSION = 0x84;

/** The reason string the embedded broker sends to an MQTT 5 client. */
export const MQTT5_REFUSAL_REASON =
  "this local shadow service runs the embedded aedes broker, which speaks MQTT 3.1.1 and 3.1 only; start it with broker 'mosquitto' (shadow-sync serve --broker mosquitto) for MQTT 5";

function variableByteInteger(value: number): Buffer {
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

/**
 * Encodes an MQTT 5 CONNACK that refuses the connection.
 *
 * @param reasonCode - the CONNACK reason code (>= 0x80)
 * @param reasonString - a human-readable reason (Reason String property); omitted when empty
 */
export function encodeMqtt5ConnackRefusal(reasonCode: number, reasonString = ''): Buffer {
  const text = Buffer.from(reasonString, 'utf8').subarray(0, 65_535);
  const properties =
    text.length === 0
      ? Buffer.alloc(0)
      : Buffer.concat([Buffer.from([0x1f, text.length >> 8, text.length & 0xff]), text]);
  const variable = Buffer.concat([
    Buffer.from([0x00, reasonCode]),
    variableByteInteger(properties.length),
    properties,
  ]);
  return Buffer.concat([Buffer.from([0x20]), variableByteInteger(variable.length), variable]);
}
