/**
 * Answers HTTP requests Node's parser cannot read (the server's `clientError` event) the way the rest of the
 * data plane answers errors: a status, `x-amzn-errortype` and a `{"__type","message"}` body, which the AWS SDK
 * maps to its modelled exceptions (spec 8.3). Node's default is a bare `400 Bad Request` / `431` with no body,
 * which the SDK can only report as an unknown error.
 *
 * The status stays what HTTP says (431 for headers that are too large, 400 for everything else); the error
 * type is `InvalidRequestException`, the data plane's 400-class type for a request it cannot accept.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Node's parser error codes worth naming in the message; anything else is "malformed". */
const REASONS: Readonly<Record<string, { status: number; text: string; message: string }>> = Object.freeze({
  HPE_HEADER_OVERFLOW: {
    status: 431,
    text: 'Request Header Fields Too Large',
    message: 'The request headers are too large',
  },
  HPE_INVALID_CONTENT_LENGTH: {
    status: 400,
    text: 'Bad Request',
    message: 'The Content-Length header is not valid',
  },
  HPE_UNEXPECTED_CONTENT_LENGTH: {
    status: 400,
    text: 'Bad Request',
    message: 'Content-Length and Transfer-Encoding must not both be present',
  },
});

/**
 * The server's `clientError` listener: writes AWS's error shape and closes the connection. Timeouts and resets
 * (nothing to answer, or nobody to answer to) just close it.
 *
 * @param error - Node's parser error (its `code` names the problem)
 * @param socket - the connection the bad bytes came from
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
    socket.destroy();
    return;
  }
  const reason = REASONS[error.code ?? ''] ?? {
    status: 400,
    text: 'Bad Request',
    message: `The request is not valid HTTP/1.1 (${error.code ?? 'parse error'})`,
  };
  const body = JSON.stringify({ __type: 'InvalidRequestException', message: reason.message });
  socket.end(
    `HTTP/1.1 ${reason.status} ${reason.text}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'x-amzn-errortype: InvalidRequestException\r\n' +
      'Connection: close\r\n\r\n' +
      body,
  );
}

/**
 * The server's `checkExpectation` listener (an `Expect` header other than `100-continue`): Node's default is a
 * bare 417; this adds AWS's error shape.
 */
export function answerUnsupportedExpectation(req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({
    __type: 'InvalidRequestException',
    message: `Unsupported Expect header: ${JSON.stringify(req.headers.expect ?? '')}`,
  });
  res.writeHead(417, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-amzn-errortype': 'InvalidRequestException',
    connection: 'close',
  });
  res.end(body);
}
