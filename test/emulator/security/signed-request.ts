/**
 * Test helpers: signs requests with the AWS SDK's own SigV4 signer (`@smithy/signature-v4`) and sends them, or
 * tampered copies of them, over raw node:http so that nothing between the signer and the socket repairs them.
 */
import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';

export const CREDENTIALS = Object.freeze({ accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' });

/** SHA-256 in the shape the signer wants (`new Sha256(secret?)`, `update`, `digest`), on node:crypto. */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash =
      secret === undefined
        ? createHash('sha256')
        : createHmac(
            'sha256',
            typeof secret === 'string'
              ? secret
              : Buffer.from(ArrayBuffer.isView(secret) ? secret.buffer : secret),
          );
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(
      typeof data === 'string'
        ? Buffer.from(data, 'utf8')
        : ArrayBuffer.isView(data)
          ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
          : Buffer.from(data),
    );
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
}

/** A request as signed: method, path (already encoded), query, headers (lower-case) and body. */
export interface SignedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Signs a request the way `IoTDataPlaneClient` does (service `iotdata`, header form).
 *
 * @param port - the front's port (the `host` header signed is `127.0.0.1:<port>` unless `withHost` is false)
 */
export async function signRequest(
  port: number,
  request: {
    method: string;
    path: string;
    query?: Record<string, string>;
    headers?: Record<string, string>;
    body?: Buffer | string;
    signingDate?: Date;
    withHost?: boolean;
    credentials?: { accessKeyId: string; secretAccessKey: string };
  },
): Promise<SignedRequest> {
  const body = Buffer.from(request.body ?? '');
  const signer = new SignatureV4({
    credentials: request.credentials ?? CREDENTIALS,
    region: 'us-east-1',
    service: 'iotdata',
    sha256: NodeSha256,
  });
  const headers: Record<string, string> = { ...(request.headers ?? {}) };
  if (request.withHost !== false) headers.host = `127.0.0.1:${port}`;
  if (body.length > 0) headers['content-length'] = String(body.length);
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      port,
      path: request.path,
      query: request.query ?? {},
      headers,
      body,
    },
    request.signingDate === undefined ? {} : { signingDate: request.signingDate },
  );
  return {
    method: request.method,
    path: request.path,
    query: request.query ?? {},
    headers: signed.headers as Record<string, string>,
    body,
  };
}

/** The answer of {@link send}. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * Sends a (possibly tampered) signed request over a fresh node:http connection.
 *
 * @param override - replaces the body and/or headers of the signed request
 */
export function send(
  port: number,
  signed: SignedRequest,
  override: { body?: Buffer | string; headers?: Record<string, string | undefined> } = {},
): Promise<RawAnswer> {
  const body = override.body === undefined ? signed.body : Buffer.from(override.body);
  const headers: Record<string, string> = { ...signed.headers };
  if (body.length > 0 || 'content-length' in headers) headers['content-length'] = String(body.length);
  for (const [name, value] of Object.entries(override.headers ?? {})) {
    if (value === undefined) delete headers[name];
    else headers[name] = value;
  }
  const query = new URLSearchParams(signed.query).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: signed.method,
        path: query === '' ? signed.path : `${signed.path}?${query}`,
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
