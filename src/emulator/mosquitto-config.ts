/**
 * The configuration the local service writes for a mosquitto broker it manages: a mosquitto.conf with two
 * listeners, a password file and the ACL files that express the device policy of {@link BrokerAuthOptions} in
 * mosquitto's own terms. Pure: it returns file contents; {@link startManagedMosquitto} writes and runs them.
 *
 * Listeners (`per_listener_settings true`, so each has its own authentication and ACLs):
 * - the *service listener*, only for the service's own privileged client (and tools given its credentials):
 *   password login, every topic;
 * - the *device listener*, the URL devices and apps use: without a policy every client may use every topic
 *   (like the open aedes broker); with a policy, ACL `pattern` lines put each device on its own shadow request
 *   topics (publish), its shadow topics (receive) and its telemetry patterns, with `%c` (client id = thing name)
 *   or, over TLS with required client certificates, `%u` (the certificate CN, through
 *   `use_identity_as_username`; `use_username_as_clientid` then makes the client id the CN too).
 *
 * Refused subscriptions: mosquitto 2.0's ACL file never refuses a SUBSCRIBE (its check returns success for every
 * subscription and reads the ACL only when it delivers). Its dynamic-security plugin can refuse one, but it has no
 * `%c`/`%u` substitution and identifies clients by username only (devices without one share its anonymous group;
 * a certificate CN it does not list is left to the ACL file). So, when the plugin is installed and the devices
 * log in without certificates, the device listener loads it with one role for the anonymous group
 * ({@link dynamicSecurityJson}): a subscription outside the *shape* of every device's topics (`#`,
 * `$aws/things/+/jobs/#`, a misspelt `$aws/thing/...`) gets a failure SUBACK (MQTT 5 0x87 Not authorized, MQTT
 * 3.1.1 0x80), as on AWS IoT; a subscription to *another* thing's shadow or telemetry is still granted and then
 * receives nothing (the ACL file's `%c` patterns filter delivery). The plugin runs before the ACL file, defers
 * every publish check to it and every subscription it does not decide, so the rest of the policy is unchanged.
 *
 * What mosquitto cannot express, compared with the embedded broker's policy (written down where users will look,
 * the README): a subscription to another thing's topics (or, with certificates, any subscription outside the
 * policy) is granted in the SUBACK and simply receives nothing; a client id that is not a valid thing
 * name is accepted (its patterns then match no shadow); over TLS a client id different from the CN is replaced
 * by the CN instead of being refused. A denied publish is dropped; an MQTT 5 client gets PUBACK reason code
 * 0x87 (Not authorized) for it at QoS 1, which is the code AWS IoT lists for refused CONNECT, PUBLISH, SUBSCRIBE
 * and DISCONNECT in its MQTT 5 reason-code table (developer guide, "MQTT reason codes",
 * https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-reason-codes).
 */
import { createHash, randomBytes } from 'node:crypto';

/** Input of {@link mosquittoConfig}. */
export interface MosquittoConfigInput {
  /** Interface both listeners bind. */
  host: string;
  /** Port of the device listener. */
  port: number;
  /** Port of the service listener. */
  servicePort: number;
  /** Directory the files live in (absolute). */
  dir: string;
  /** The privileged login of the service listener. */
  service: { username: string; password: string };
  /**
   * The device policy; undefined makes the device listener open (every client, every topic).
   * `serviceCredentials` there also log in on the device listener and get every topic.
   */
  policy?: {
    telemetryTopics: readonly string[];
    serviceCredentials?: { username: string; password: string };
  };
  /**
   * Path of mosquitto's dynamic-security plugin: with a policy and devices identified by client id, the device
   * listener loads it to refuse subscriptions outside every device's topics (see the module comment).
   */
  dynamicSecurityPlugin?: string;
  /** TLS of the device listener (file names inside `dir`). */
  tls?: { keyFile: string; certFile: string; caFile?: string; requireCertificate: boolean };
  /** Keep sessions and queued messages across restarts in `dir`. */
  persistence: boolean;
  /** mosquitto `max_packet_size` in bytes. */
  maxPacketBytes: number;
  /**
   * mosquitto `message_size_limit`: the largest PUBLISH payload accepted (AWS IoT's 128 KB message size); a
   * larger one is dropped, never routed to the service (see {@link mosquittoConfig}).
   */
  maxPayloadBytes: number;
  /** mosquitto `max_queued_messages` per offline persistent session. */
  maxQueuedMessages: number;
  /**
   * mosquitto `user`: started as root, mosquitto switches to the `mosquitto` user, which cannot read the
   * service's private temporary directory; the manager passes `root` then.
   */
  runAsUser?: string;
  /** Salt of the password hashes (random when omitted; tests pin it). */
  salt?: Buffer;
}

/** File name → content, all inside {@link MosquittoConfigInput.dir}. */
export type MosquittoFiles = Record<string, string>;

/**
 * One password file line in mosquitto's `$6$` format: SHA-512 over the password followed by the salt, both
 * salt and digest base64-encoded (what `mosquitto_passwd -H sha512` writes), so no mosquitto tool is needed.
 */
export function mosquittoPasswordLine(username: string, password: string, salt: Buffer): string {
  const digest = createHash('sha512').update(password, 'utf8').update(salt).digest();
  return `${username}:$6$${salt.toString('base64')}$${digest.toString('base64')}`;
}

/** The request topics a device may publish to, as ACL topics with `identity` (`%c` or `%u`) for the thing. */
function devicePublishTopics(identity: string): string[] {
  return ['get', 'update', 'delete'].flatMap((op) => [
    `$aws/things/${identity}/shadow/${op}`,
    `$aws/things/${identity}/shadow/name/+/${op}`,
  ]);
}

/**
 * The ACL lines of the device listener: the device policy of the embedded broker as mosquitto patterns.
 *
 * @param identity - `'%c'` (client id is the thing name) or `'%u'` (certificate CN through
 *   `use_identity_as_username`)
 * @param telemetryTopics - telemetry filters with `{thingName}`
 * @param serviceUsername - a user that gets every topic on this listener (the service credentials), if any
 */
export function deviceAclLines(
  identity: '%c' | '%u',
  telemetryTopics: readonly string[],
  serviceUsername?: string,
): string[] {
  const lines: string[] = [];
  // `pattern` lines apply to every client; `user` sections add to them. The wildcard `#` does not match
  // `$`-topics in mosquitto's ACL check either, hence the second line.
  if (serviceUsername !== undefined)
    lines.push(`user ${serviceUsername}`, 'topic readwrite #', 'topic readwrite $aws/#', '');
  for (const topic of devicePublishTopics(identity)) lines.push(`pattern write ${topic}`);
  lines.push(`pattern read $aws/things/${identity}/shadow/#`);
  for (const pattern of telemetryTopics)
    lines.push(`pattern readwrite ${pattern.replaceAll('{thingName}', identity)}`);
  return lines;
}

/** A telemetry filter as a subscription shape: every level that names the thing becomes `+`. */
function telemetryShape(pattern: string): string {
  return pattern
    .split('/')
    .map((level) => (level.includes('{thingName}') ? '+' : level))
    .join('/');
}

/**
 * The dynamic-security plugin's configuration for the device listener: devices (clients without a username)
 * are its anonymous group, whose one role allows subscribing inside `$aws/things/+/shadow/#` and the telemetry
 * shapes and refuses every other filter; publishes and deliveries are left to the ACL file (default access
 * false = the plugin defers), so are clients with a username (the service user, certificate CNs).
 *
 * @param telemetryTopics - telemetry filters with `{thingName}`
 * @returns the JSON text of the plugin's `config_file`
 */
export function dynamicSecurityJson(telemetryTopics: readonly string[]): string {
  const allowed = ['$aws/things/+/shadow/#', ...telemetryTopics.map(telemetryShape)];
  return `${JSON.stringify(
    {
      defaultACLAccess: {
        publishClientSend: false,
        publishClientReceive: false,
        subscribe: false,
        unsubscribe: true,
      },
      clients: [],
      groups: [{ groupname: 'devices', roles: [{ rolename: 'device-subscriptions' }] }],
      roles: [
        {
          rolename: 'device-subscriptions',
          acls: [
            ...[...new Set(allowed)].map((topic) => ({
              acltype: 'subscribePattern',
              topic,
              priority: 2,
              allow: true,
            })),
            // Lowest priority: whatever no allow above matched is refused (a failure SUBACK).
            { acltype: 'subscribePattern', topic: '#', priority: 1, allow: false },
          ],
        },
      ],
      anonymousGroup: 'devices',
    },
    null,
    2,
  )}\n`;
}

/**
 * Builds every file of a managed mosquitto.
 *
 * @returns `mosquitto.conf`, `service.passwd`, `service.acl` and, with a policy, `devices.acl` (and
 *   `devices.passwd` when service credentials log in on the device listener)
 */
export function mosquittoConfig(input: MosquittoConfigInput): MosquittoFiles {
  const salt = input.salt ?? randomBytes(12);
  const path = (name: string) => `${input.dir}/${name}`;
  const files: MosquittoFiles = {};
  files['service.passwd'] =
    `${mosquittoPasswordLine(input.service.username, input.service.password, salt)}\n`;
  files['service.acl'] = `user ${input.service.username}\ntopic readwrite #\ntopic readwrite $aws/#\n`;
  const conf = [
    '# Generated by shadow-sync: a mosquitto managed by the local shadow service.',
    'per_listener_settings true',
    ...(input.runAsUser === undefined ? [] : [`user ${input.runAsUser}`]),
    `persistence ${input.persistence}`,
    ...(input.persistence ? [`persistence_location ${input.dir}/`] : []),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    // Nagle off on every accepted socket (see DESIGN: 88 ms -> 0.35 ms per round trip on loopback).
    'set_tcp_nodelay true',
    `max_packet_size ${input.maxPacketBytes}`,
    // AWS IoT's 128 KB message size, on the payload alone (max_packet_size counts the topic and properties too,
    // so it cannot draw the line at exactly 128 KB). mosquitto 2.0 drops a larger payload (handle_publish.c:
    // not routed, so never applied to a shadow): a QoS 0 one silently, a QoS 1 one with a plain PUBACK over MQTT
    // 3.1.1 (the connection stays) and, over MQTT 5, a PUBACK with reason code 0x95, which MQTT 5 does not allow
    // in a PUBACK, so strict clients such as mqtt.js end the connection on it. AWS IoT closes the connection on
    // an oversized message, as the embedded broker does; a packet above max_packet_size is closed here too.
    `message_size_limit ${input.maxPayloadBytes}`,
    `max_queued_messages ${input.maxQueuedMessages}`,
    // AWS IoT ends a persistent session an hour after its client disconnected (its default expiry): MQTT 3.1.1
    // sessions here too (MQTT 5 clients set their own session expiry interval).
    'persistent_client_expiration 1h',
    '',
    '# The service listener: the service itself, with its privileged login.',
    `listener ${input.servicePort} ${input.host}`,
    'allow_anonymous false',
    `password_file ${path('service.passwd')}`,
    `acl_file ${path('service.acl')}`,
    '',
    '# The device listener.',
    `listener ${input.port} ${input.host}`,
  ];
  if (input.tls !== undefined) {
    conf.push(`keyfile ${path(input.tls.keyFile)}`, `certfile ${path(input.tls.certFile)}`);
    if (input.tls.caFile !== undefined) conf.push(`cafile ${path(input.tls.caFile)}`);
    if (input.tls.requireCertificate)
      conf.push('require_certificate true', 'use_identity_as_username true', 'use_username_as_clientid true');
  }
  conf.push('allow_anonymous true');
  const policy = input.policy;
  if (policy !== undefined) {
    const identity = input.tls?.requireCertificate === true ? '%u' : '%c';
    const credentials = policy.serviceCredentials;
    // With certificates the CN is the username and the password file is not consulted (mosquitto's
    // use_identity_as_username); an app then gets every topic with a certificate whose CN is the service user.
    if (credentials !== undefined && input.tls?.requireCertificate !== true) {
      files['devices.passwd'] =
        `${mosquittoPasswordLine(credentials.username, credentials.password, salt)}\n`;
      conf.push(`password_file ${path('devices.passwd')}`);
    }
    files['devices.acl'] =
      `${deviceAclLines(identity, policy.telemetryTopics, credentials?.username).join('\n')}\n`;
    // The plugin first: mosquitto asks plugins before the ACL file, in the order they were loaded.
    if (input.dynamicSecurityPlugin !== undefined && identity === '%c') {
      files['devices-dynsec.json'] = dynamicSecurityJson(policy.telemetryTopics);
      conf.push(
        `plugin ${input.dynamicSecurityPlugin}`,
        `plugin_opt_config_file ${path('devices-dynsec.json')}`,
      );
    }
    conf.push(`acl_file ${path('devices.acl')}`);
  }
  files['mosquitto.conf'] = `${conf.join('\n')}\n`;
  return files;
}
