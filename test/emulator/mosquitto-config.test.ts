import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveManagedMosquittoOptions } from '../../src/emulator/managed-mosquitto.js';
import {
  deviceAclLines,
  mosquittoConfig,
  mosquittoPasswordLine,
} from '../../src/emulator/mosquitto-config.js';
import { isShadowError } from '../../src/errors.js';

const BASE = {
  host: '127.0.0.1',
  port: 1883,
  servicePort: 1884,
  dir: '/tmp/x',
  service: { username: 'svc', password: 'pw' },
  persistence: false,
  maxPacketBytes: 132_096,
  maxPayloadBytes: 131_072,
  maxQueuedMessages: 100_000,
  salt: Buffer.alloc(12, 1),
};

describe('mosquitto configuration generated from the device policy', () => {
  it('writes the device policy as ACL patterns on the client id', () => {
    expect(deviceAclLines('%c', ['my/things/{thingName}/#', 'fleet/{thingName}/events'])).toEqual([
      'pattern write $aws/things/%c/shadow/get',
      'pattern write $aws/things/%c/shadow/name/+/get',
      'pattern write $aws/things/%c/shadow/update',
      'pattern write $aws/things/%c/shadow/name/+/update',
      'pattern write $aws/things/%c/shadow/delete',
      'pattern write $aws/things/%c/shadow/name/+/delete',
      'pattern read $aws/things/%c/shadow/#',
      'pattern readwrite my/things/%c/#',
      'pattern readwrite fleet/%c/events',
    ]);
    expect(deviceAclLines('%u', [], 'ops').slice(0, 4)).toEqual([
      'user ops',
      'topic readwrite #',
      'topic readwrite $aws/#',
      '',
    ]);
  });

  it('an open broker has no ACL on the device listener; the service listener always needs the password', () => {
    const files = mosquittoConfig(BASE);
    expect(Object.keys(files).sort()).toEqual(['mosquitto.conf', 'service.acl', 'service.passwd']);
    const conf = files['mosquitto.conf'] ?? '';
    expect(conf).toContain('per_listener_settings true');
    expect(conf).toContain(
      'listener 1884 127.0.0.1\nallow_anonymous false\npassword_file /tmp/x/service.passwd',
    );
    expect(conf).toContain('listener 1883 127.0.0.1\nallow_anonymous true\n');
    expect(conf).toContain('max_packet_size 132096');
    // AWS IoT's 128 KB on the payload alone: a larger one is dropped (never applied), see mosquitto-config.ts.
    expect(conf).toContain('message_size_limit 131072');
    expect(conf).toContain('set_tcp_nodelay true');
    expect(conf).toContain('persistent_client_expiration 1h');
    expect(files['service.passwd']).toBe(`${mosquittoPasswordLine('svc', 'pw', BASE.salt)}\n`);
  });

  it('with client certificates the CN is the identity and the password file is not used on the device listener', () => {
    const files = mosquittoConfig({
      ...BASE,
      policy: { telemetryTopics: ['t/{thingName}'], serviceCredentials: { username: 'ops', password: 'p' } },
      tls: { keyFile: 'k', certFile: 'c', caFile: 'ca', requireCertificate: true },
    });
    const conf = files['mosquitto.conf'] ?? '';
    expect(conf).toContain(
      'require_certificate true\nuse_identity_as_username true\nuse_username_as_clientid true',
    );
    expect(files['devices.passwd']).toBeUndefined();
    expect(files['devices.acl']).toContain('pattern readwrite t/%u');
    expect(files['devices.acl']).toContain('user ops');
  });

  it('loads the dynamic-security plugin before the ACL file for devices known by client id, never with certificates', () => {
    const policy = { telemetryTopics: ['my/things/{thingName}/#', 'fleet/{thingName}-x/events'] };
    const files = mosquittoConfig({ ...BASE, policy, dynamicSecurityPlugin: '/usr/lib/dynsec.so' });
    expect(files['mosquitto.conf']).toContain(
      'plugin /usr/lib/dynsec.so\nplugin_opt_config_file /tmp/x/devices-dynsec.json\nacl_file /tmp/x/devices.acl\n',
    );
    const dynsec = JSON.parse(files['devices-dynsec.json'] ?? '{}');
    expect(dynsec.anonymousGroup).toBe('devices');
    // Publishes and deliveries stay with the ACL file: the plugin defers them.
    expect(dynsec.defaultACLAccess).toEqual({
      publishClientSend: false,
      publishClientReceive: false,
      subscribe: false,
      unsubscribe: true,
    });
    expect(dynsec.roles[0].acls).toEqual([
      { acltype: 'subscribePattern', topic: '$aws/things/+/shadow/#', priority: 2, allow: true },
      { acltype: 'subscribePattern', topic: 'my/things/+/#', priority: 2, allow: true },
      { acltype: 'subscribePattern', topic: 'fleet/+/events', priority: 2, allow: true },
      { acltype: 'subscribePattern', topic: '#', priority: 1, allow: false },
    ]);
    const withCerts = mosquittoConfig({
      ...BASE,
      policy,
      dynamicSecurityPlugin: '/usr/lib/dynsec.so',
      tls: { keyFile: 'k', certFile: 'c', caFile: 'ca', requireCertificate: true },
    });
    expect(withCerts['mosquitto.conf']).not.toContain('plugin');
    expect(withCerts['devices-dynsec.json']).toBeUndefined();
    expect(
      mosquittoConfig({ ...BASE, dynamicSecurityPlugin: '/usr/lib/dynsec.so' })['mosquitto.conf'],
    ).not.toContain('plugin');
  });

  it("password lines match mosquitto_passwd's own $6$ (SHA-512) lines for the same salt", () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadow-sync-passwd-'));
    try {
      const file = join(dir, 'passwd');
      execFileSync('mosquitto_passwd', ['-H', 'sha512', '-c', '-b', file, 'svc', 'pw s3cret'], {
        stdio: 'pipe',
      });
      const line = readFileSync(file, 'utf8').trim();
      const salt = Buffer.from(line.split('$')[2] ?? '', 'base64');
      expect(mosquittoPasswordLine('svc', 'pw s3cret', salt)).toBe(line);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [
      { auth: { deniedPublish: 'disconnect' as const } },
      "deniedPublish 'disconnect' cannot be enforced by mosquitto",
    ],
    [{ auth: { telemetryTopics: ['a/%c/b'] } }, 'cannot go into a mosquitto ACL'],
    [{ auth: { serviceCredentials: { username: 'a b', password: 'x' } } }, 'must not contain spaces'],
    [{ maxPacketBytes: 0 }, 'maxPacketBytes must be a positive integer'],
    [{ maxPayloadBytes: 1.5 }, 'maxPayloadBytes must be a positive integer'],
    [{ dynamicSecurityPlugin: '' }, 'dynamicSecurityPlugin must be a file path or false'],
    [{ colour: 'red' }, "unknown managed mosquitto option 'colour'"],
  ])('rejects %j', (options, message) => {
    let error: unknown;
    try {
      resolveManagedMosquittoOptions(options as never);
    } catch (e) {
      error = e;
    }
    expect(isShadowError(error)).toBe(true);
    expect((error as Error).message).toContain(message);
  });
});
