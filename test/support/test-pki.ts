/**
 * Test support: a throwaway PKI made with the openssl CLI (a CA, a server certificate for localhost/127.0.0.1,
 * client certificates whose CN is a thing name) in a temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A key and its certificate, PEM. */
export interface TestPem {
  key: string;
  cert: string;
}

/** A CA, a server certificate and client certificates for the given common names. */
export interface TestPki {
  ca: string;
  server: TestPem;
  clients: Record<string, TestPem>;
  /** A certificate with the first CN but signed by another CA. */
  rogue: TestPem;
}

/**
 * Makes the PKI (EC P-256 keys, valid two days).
 *
 * @param clientNames - CNs of the client certificates
 */
export function makeTestPki(clientNames: readonly string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'shadow-sync-pki-'));
  try {
    const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    const ca = (name: string) => {
      openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
      openssl(
        'req',
        '-x509',
        '-new',
        '-key',
        `${name}.key`,
        '-subj',
        `/CN=${name}`,
        '-days',
        '2',
        '-out',
        `${name}.crt`,
      );
    };
    let serial = 0;
    const issue = (cn: string, issuer: string, extensions?: string): TestPem => {
      const name = `leaf${serial++}`;
      openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
      openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
      const ext = extensions === undefined ? [] : ['-extfile', `${name}.ext`];
      if (extensions !== undefined) writeFileSync(join(dir, `${name}.ext`), extensions);
      openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${issuer}.crt`,
        '-CAkey',
        `${issuer}.key`,
        '-CAcreateserial',
        '-days',
        '2',
        '-out',
        `${name}.crt`,
        ...ext,
      );
      return { key: read(`${name}.key`), cert: read(`${name}.crt`) };
    };
    ca('test-ca');
    ca('rogue-ca');
    return {
      ca: read('test-ca.crt'),
      server: issue('localhost', 'test-ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\n'),
      clients: Object.fromEntries(clientNames.map((cn) => [cn, issue(cn, 'test-ca')])),
      rogue: issue(clientNames[0] ?? 'rogue', 'rogue-ca'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
