/** Test support: a throwaway PKI made with the openssl CLI (a CA, a server certificate, client certificates). */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and its key, as PEM text and as files. */
export interface Issued {
  key: string;
  cert: string;
  keyPath: string;
  certPath: string;
}

/** Makes a CA in `dir` and issues a server certificate for 127.0.0.1 and one client certificate per CN. */
export function makePki(dir: string, clientCns: readonly string[]) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string) =>
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  key('ca');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=security-test-ca',
    '-days',
    '2',
    '-out',
    'ca.crt',
  );
  const issue = (name: string, cn: string, extensions?: string): Issued => {
    key(name);
    openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    if (extensions !== undefined) writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      ...(extensions === undefined ? [] : ['-extfile', `${name}.ext`]),
    );
    return {
      keyPath: join(dir, `${name}.key`),
      certPath: join(dir, `${name}.crt`),
      key: readFileSync(join(dir, `${name}.key`), 'utf8'),
      cert: readFileSync(join(dir, `${name}.crt`), 'utf8'),
    };
  };
  return {
    caPath: join(dir, 'ca.crt'),
    ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    server: issue('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n'),
    clients: Object.fromEntries(clientCns.map((cn) => [cn, issue(`client-${cn}`, cn)])) as Record<
      string,
      Issued
    >,
  };
}
