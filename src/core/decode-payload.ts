/**
 * Turns the raw bytes of a shadow request into a JSON value, with the service's 415 / 400 rejections
 * (spec 5.3 steps 1 and 2).
 */
import type { Rejection } from './document.js';

/** The result of {@link decodeRequestPayload}: the parsed JSON value, or the rejection to send. */
export type DecodeResult = { ok: true; value: unknown } | { ok: false; rejection: Rejection };

/** 415 for bytes that are not UTF-8 (AWS's text, including its "documented" typo). */
export const UNSUPPORTED_ENCODING_REJECTION: Readonly<Rejection> = /* @__PURE__ */ Object.freeze({
  code: 415,
  message: 'Unsupported documented encoding; supported encoding is UTF-8',
  errorType: 'UnsupportedDocumentEncodingException',
});

/**
 * 400 for a payload that is empty or does not parse. AWS does not document the text for an empty MQTT
 * `/update` payload (spec 7); `Invalid JSON` is the documented message for unparsable input.
 */
export const INVALID_JSON_REJECTION: Readonly<Rejection> = /* @__PURE__ */ Object.freeze({
  code: 400,
  message: 'Invalid JSON',
  errorType: 'InvalidRequestException',
});

// fatal: a malformed sequence throws instead of turning into U+FFFD. A leading BOM is dropped (ignoreBOM false).
const decoder = new TextDecoder('utf-8', { fatal: true });

// A surrogate code unit without its partner cannot be encoded as UTF-8.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Decodes and parses a request payload.
 *
 * @param payload - the raw bytes as received (HTTP body, MQTT payload), or an already decoded string
 * @returns `{ ok: true, value }` with the parsed JSON (any JSON type: the caller checks the shape), or
 *   `{ ok: false, rejection }`: 415 `Unsupported documented encoding; supported encoding is UTF-8`
 *   (UnsupportedDocumentEncodingException) for invalid UTF-8 (or a string with a lone surrogate), 400
 *   `Invalid JSON` (InvalidRequestException) for an empty, blank or unparsable payload
 * @example decodeRequestPayload(new TextEncoder().encode('{"state":null}')) // { ok: true, value: { state: null } }
 */
export function decodeRequestPayload(payload: Uint8Array | string): DecodeResult {
  let text: string;
  if (typeof payload === 'string') {
    if (LONE_SURROGATE.test(payload)) return { ok: false, rejection: { ...UNSUPPORTED_ENCODING_REJECTION } };
    text = payload;
  } else {
    try {
      text = decoder.decode(payload);
    } catch {
      return { ok: false, rejection: { ...UNSUPPORTED_ENCODING_REJECTION } };
    }
  }
  try {
    // JSON.parse rejects '' and whitespace-only text, so the empty payload needs no special case.
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, rejection: { ...INVALID_JSON_REJECTION } };
  }
}
