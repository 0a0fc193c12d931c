/**
 * A mosquitto broker started, configured and stopped by the local service, for MQTT 5 (and 3.1.1) devices: the
 * embedded aedes broker speaks only MQTT 3.1.1 and 3.1. The configuration comes from {@link mosquittoConfig}
 * (device policy as ACL patterns, TLS with client certificates, a privileged service listener); the process
 * runs from a temporary directory that `close()` removes.
 *
 * mosquitto is a Debian package (`apt-get install mosquitto`; `scripts/ensure-mosquitto.mjs` installs it for
 * the tests). {@link findMosquitto} looks on PATH and in the sbin directories where Debian puts it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ShadowOptionsError } from '../errors.js';
import {
  type BrokerAuthOptions,
  type BrokerTlsOptions,
  checkPort,
  DEFAULT_BROKER_OPTIONS,
  type MqttLogger,
  resolveBrokerOptions,
  type ServiceCredentials,
} from './broker.js';
import { mosquittoConfig } from './mosquitto-config.js';

/** Options of {@link startManagedMosquitto}. */
export interface ManagedMosquittoOptions {
  /**
   * Interface both listeners bind.
   * @defaultValue '127.0.0.1'
   */
  host?: string;
  /**
   * Port of the device listener; 0 picks a free port.
   * @defaultValue 0
   */
  port?: number;
  /** TLS of the device listener; with `requestCert` a device's thing name is its certificate CN. */
  tls?: BrokerTlsOptions;
  /**
   * The device policy (as for the embedded broker); without it the device listener is open. `deniedPublish:
   * 'disconnect'` is refused: mosquitto drops a denied publish (MQTT 5 clients get PUBACK 0x87).
   */
  auth?: BrokerAuthOptions;
  /**
   * Keep sessions and queued QoS 1 messages across `restart()` (mosquitto saves them when it stops).
   * @defaultValue true
   */
  persistence?: boolean;
  /**
   * mosquitto `max_packet_size`: AWS IoT's 128 KB message payload plus room for the topic and properties.
   * @defaultValue 132096
   */
  maxPacketBytes?: number;
  /**
   * mosquitto `message_size_limit`: largest PUBLISH payload accepted, AWS IoT's 128 KB message size. A larger
   * payload is dropped and never reaches the shadow service (MQTT 3.1.1 QoS 1: acknowledged; MQTT 5 QoS 1:
   * PUBACK 0x95, on which mqtt.js ends the connection; see mosquitto-config.ts).
   * @defaultValue 131072
   */
  maxPayloadBytes?: number;
  /**
   * QoS 1 messages kept for an offline persistent session (mosquitto's default of 1000 would drop a burst
   * sent while the service reconnects).
   * @defaultValue 100000
   */
  maxQueuedMessages?: number;
  /**
   * Start mosquitto again when it exits without being asked to (after `restartDelayMs`); the service's client
   * reconnects by itself. Sessions saved by mosquitto survive a crash only up to its last save.
   * @defaultValue true
   */
  autoRestart?: boolean;
  /**
   * Delay before an automatic restart, in ms.
   * @defaultValue 200
   */
  restartDelayMs?: number;
  /**
   * mosquitto's dynamic-security plugin (`mosquitto_dynamic_security.so`, shipped with Debian's mosquitto), used
   * with a policy and devices identified by client id to refuse subscriptions outside every device's topics with
   * a failure SUBACK (see mosquitto-config.ts); `false` to do without (such subscriptions are then granted and
   * receive nothing).
   * @defaultValue found by {@link findDynamicSecurityPlugin}
   */
  dynamicSecurityPlugin?: string | false;
  /**
   * The mosquitto executable.
   * @defaultValue found by {@link findMosquitto}
   */
  binary?: string;
  /**
   * How long to wait for both listeners to accept connections.
   * @defaultValue 10000
   */
  startTimeoutMs?: number;
  /** Receives the broker's unexpected exits; silent by default. */
  logger?: MqttLogger;
}

/** Health of a managed mosquitto. */
export interface ManagedMosquittoHealth {
  /** The process is running. */
  running: boolean;
  pid: number | undefined;
  /** Restarts made by `restart()` or automatically after an unexpected exit. */
  restarts: number;
  /** Exit code (or signal) of the last exit not asked for by `restart()`/`close()`, if any. */
  unexpectedExit: string | undefined;
}

/** A running managed mosquitto. */
export interface ManagedMosquitto {
  /** `mqtt://host:port` (or `mqtts://`) of the device listener. */
  readonly url: string;
  /** `mqtt://host:port` of the service listener. */
  readonly serviceUrl: string;
  /** The login of the service listener (the given service credentials, or generated ones). */
  readonly serviceCredentials: ServiceCredentials;
  /** `mosquitto version x.y.z` as the binary reports it. */
  readonly version: string;
  /** The generated configuration directory. */
  readonly dir: string;
  /**
   * Which forbidden subscriptions get a failure SUBACK: `'outside-device-topics'` (the dynamic-security plugin is
   * loaded: a filter outside the shape of every device's topics is refused, one to another thing's topics is
   * granted and receives nothing) or `'none'` (no policy, devices with certificates, or no plugin: every
   * subscription is granted, delivery is filtered).
   */
  readonly refusedSubscriptions: 'outside-device-topics' | 'none';
  health(): ManagedMosquittoHealth;
  /** What mosquitto printed so far (errors, warnings, notices). */
  log(): string;
  /** Stops the process (mosquitto saves its sessions when persistence is on) and starts it again. */
  restart(): Promise<void>;
  /** Stops the process and removes its directory. */
  close(): Promise<void>;
}

/** Defaults of {@link ManagedMosquittoOptions}. */
export const DEFAULT_MANAGED_MOSQUITTO_OPTIONS = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  persistence: true,
  autoRestart: true,
  restartDelayMs: 200,
  maxPacketBytes: 128 * 1024 + 1024,
  maxPayloadBytes: 128 * 1024,
  maxQueuedMessages: 100_000,
  startTimeoutMs: 10_000,
});

const KEYS = new Set([
  'host',
  'port',
  'tls',
  'auth',
  'persistence',
  'autoRestart',
  'restartDelayMs',
  'maxPacketBytes',
  'maxPayloadBytes',
  'maxQueuedMessages',
  'binary',
  'dynamicSecurityPlugin',
  'startTimeoutMs',
  'logger',
]);

const SILENT: MqttLogger = Object.freeze({ warn() {} });

/** A broker that keeps crashing is left stopped (and reported) rather than restarted in a loop. */
const MAX_AUTO_RESTARTS_PER_MINUTE = 5;

/**
 * mosquitto's dynamic-security plugin on this machine, where Debian/Ubuntu (per architecture), other Linux
 * distributions and Homebrew install it.
 *
 * @returns the path, or undefined when it is not installed
 */
export function findDynamicSecurityPlugin(): string | undefined {
  const triplet = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf' }[
    process.arch as 'x64' | 'arm64' | 'arm'
  ];
  const dirs = [
    ...(triplet === undefined ? [] : [`/usr/lib/${triplet}`]),
    '/usr/lib',
    '/usr/lib64',
    '/usr/local/lib',
    '/opt/homebrew/lib',
  ];
  return firstInDirs(dirs, 'mosquitto_dynamic_security.so', constants.R_OK);
}

/**
 * The mosquitto executable on this machine: PATH first, then `/usr/sbin`, `/usr/local/sbin`, `/sbin` (Debian
 * installs it in `/usr/sbin`, often not on a non-root PATH).
 *
 * @returns the path, or undefined when mosquitto is not installed
 */
export function findMosquitto(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  return firstInDirs(dirs, 'mosquitto', constants.X_OK);
}

/** The first `dir/name` accessible with `mode`, in the order of `dirs` (empty entries skipped). */
function firstInDirs(dirs: readonly string[], name: string, mode: number): string | undefined {
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, mode);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

function positiveInteger(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new ShadowOptionsError(
      `managed mosquitto ${what} must be a positive integer, got ${String(value)}`,
    );
  return value;
}

/** {@link ManagedMosquittoOptions} validated, with defaults applied. */
export interface ResolvedManagedMosquittoOptions {
  host: string;
  port: number;
  tls: BrokerTlsOptions | undefined;
  auth: BrokerAuthOptions | undefined;
  persistence: boolean;
  autoRestart: boolean;
  restartDelayMs: number;
  maxPacketBytes: number;
  maxPayloadBytes: number;
  maxQueuedMessages: number;
  binary: string | undefined;
  dynamicSecurityPlugin: string | false | undefined;
  startTimeoutMs: number;
  logger: MqttLogger;
}

/**
 * Validates managed-mosquitto options and applies the defaults (without looking for the binary).
 *
 * @throws ShadowOptionsError for unknown keys, bad values, incomplete TLS or a policy mosquitto cannot enforce
 */
export function resolveManagedMosquittoOptions(
  options: ManagedMosquittoOptions = {},
): ResolvedManagedMosquittoOptions {
  for (const key of Object.keys(options))
    if (!KEYS.has(key))
      throw new ShadowOptionsError(
        `unknown managed mosquitto option '${key}' (known: ${[...KEYS].join(', ')})`,
      );
  // The same checks as the embedded broker's for host, port, TLS and the policy.
  resolveBrokerOptions({
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.auth === undefined ? {} : { auth: options.auth }),
  });
  if (options.auth?.deniedPublish === 'disconnect')
    throw new ShadowOptionsError(
      "deniedPublish 'disconnect' cannot be enforced by mosquitto (it drops a denied publish; MQTT 5 clients get PUBACK 0x87): use the embedded broker or 'drop'",
    );
  for (const pattern of options.auth?.telemetryTopics ?? [])
    if (/[\r\n]/.test(pattern) || pattern.includes('%'))
      throw new ShadowOptionsError(
        `telemetry topic ${JSON.stringify(pattern)} cannot go into a mosquitto ACL (no line breaks or '%')`,
      );
  const plugin = options.dynamicSecurityPlugin;
  if (
    plugin !== undefined &&
    plugin !== false &&
    (typeof plugin !== 'string' || plugin === '' || /[\r\n]/.test(plugin))
  )
    throw new ShadowOptionsError(
      `managed mosquitto dynamicSecurityPlugin must be a file path or false, got ${JSON.stringify(plugin)}`,
    );
  const credentials = options.auth?.serviceCredentials;
  if (credentials !== undefined && /[\s:]/.test(credentials.username))
    throw new ShadowOptionsError('service username for mosquitto must not contain spaces or ":"');
  return {
    host: options.host ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.host,
    port: checkPort(options.port ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.port, 'mosquitto port'),
    tls: options.tls,
    auth: options.auth,
    persistence: options.persistence ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.persistence,
    autoRestart: options.autoRestart ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.autoRestart,
    restartDelayMs: positiveInteger(
      options.restartDelayMs ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.restartDelayMs,
      'restartDelayMs',
    ),
    maxPacketBytes: positiveInteger(
      options.maxPacketBytes ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.maxPacketBytes,
      'maxPacketBytes',
    ),
    maxPayloadBytes: positiveInteger(
      options.maxPayloadBytes ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.maxPayloadBytes,
      'maxPayloadBytes',
    ),
    maxQueuedMessages: positiveInteger(
      options.maxQueuedMessages ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.maxQueuedMessages,
      'maxQueuedMessages',
    ),
    binary: options.binary,
    dynamicSecurityPlugin: plugin,
    startTimeoutMs: positiveInteger(
      options.startTimeoutMs ?? DEFAULT_MANAGED_MOSQUITTO_OPTIONS.startTimeoutMs,
      'startTimeoutMs',
    ),
    logger: options.logger ?? SILENT,
  };
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function versionOf(binary: string): string {
  const probe = spawnSync(binary, ['-h'], { encoding: 'utf8' });
  const line = `${probe.stdout ?? ''}${probe.stderr ?? ''}`
    .split('\n')
    .find((l) => l.startsWith('mosquitto'));
  return line?.trim() ?? 'mosquitto (unknown version)';
}

/**
 * Starts a mosquitto configured for the local shadow service.
 *
 * @param options - see {@link ManagedMosquittoOptions}
 * @returns the running broker; `close()` stops it and removes its files
 * @throws ShadowOptionsError for invalid options or when mosquitto is not installed; Error when it does not start
 * @example
 * const broker = await startManagedMosquitto({ auth: { telemetryTopics: ['my/things/{thingName}/#'] } });
 * // devices: mqtt.connect(broker.url, { clientId: 'lamp', protocolVersion: 5 })
 * await broker.close();
 */
export async function startManagedMosquitto(
  options: ManagedMosquittoOptions = {},
): Promise<ManagedMosquitto> {
  const resolved = resolveManagedMosquittoOptions(options);
  const binary = resolved.binary ?? findMosquitto();
  if (binary === undefined)
    throw new ShadowOptionsError(
      "the mosquitto broker is not installed (Debian/Ubuntu: apt-get install mosquitto; macOS: brew install mosquitto); use broker 'embedded' for aedes (MQTT 3.1.1)",
    );
  const version = versionOf(binary);
  // The plugin only matters with a policy whose devices are known by client id (see mosquitto-config.ts).
  const dynamicSecurityPlugin =
    resolved.auth === undefined || resolved.auth.devicePolicy === false || resolved.tls?.requestCert === true
      ? undefined
      : resolved.dynamicSecurityPlugin === false
        ? undefined
        : (resolved.dynamicSecurityPlugin ?? findDynamicSecurityPlugin());
  const { host, logger } = resolved;
  const dir = mkdtempSync(join(tmpdir(), 'shadow-sync-mosquitto-'));
  const service = resolved.auth?.serviceCredentials ?? {
    username: `shadow-sync-${randomBytes(4).toString('hex')}`,
    password: randomBytes(18).toString('base64url'),
  };
  let child: ChildProcess | undefined;
  let output = '';
  let restarts = 0;
  let unexpectedExit: string | undefined;
  let expectingExit = false;
  let launchedOnce = false;
  let closed = false;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  let relaunch: (() => void) | undefined;
  const autoRestartTimes: number[] = [];
  const killOnExit = () => child?.kill('SIGKILL');

  const launch = async (port: number, servicePort: number): Promise<void> => {
    const started = spawn(binary, ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    const append = (chunk: Buffer) => {
      // Bounded: a long-running broker must not grow the service's memory with its log.
      output = (output + chunk.toString('utf8')).slice(-64 * 1024);
    };
    started.stdout?.on('data', append);
    started.stderr?.on('data', append);
    started.once('exit', (code, signal) => {
      if (!expectingExit) {
        unexpectedExit = signal ?? `exit code ${String(code)}`;
        logger.warn(`mosquitto exited unexpectedly (${unexpectedExit})`, { log: output.slice(-2000) });
        const now = Date.now();
        while (autoRestartTimes.length > 0 && (autoRestartTimes[0] as number) < now - 60_000)
          autoRestartTimes.shift();
        if (
          launchedOnce &&
          !closed &&
          resolved.autoRestart &&
          autoRestartTimes.length >= MAX_AUTO_RESTARTS_PER_MINUTE
        )
          logger.warn(
            `mosquitto crashed ${MAX_AUTO_RESTARTS_PER_MINUTE} times within a minute: not restarting it again`,
          );
        else if (launchedOnce && !closed && resolved.autoRestart) {
          autoRestartTimes.push(now);
          restartTimer = setTimeout(() => relaunch?.(), resolved.restartDelayMs);
          restartTimer.unref();
        }
      }
    });
    const deadline = Date.now() + resolved.startTimeoutMs;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null)
        throw new Error(`mosquitto exited at start (${started.exitCode ?? started.signalCode}): ${output}`);
      if ((await accepts(host, port)) && (await accepts(host, servicePort))) return;
      if (Date.now() > deadline)
        throw new Error(
          `mosquitto did not accept connections on ${host}:${port} and :${servicePort}: ${output}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  const stopProcess = async (): Promise<void> => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    expectingExit = true;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    expectingExit = false;
  };

  let port = resolved.port;
  let servicePort = 0;
  process.once('exit', killOnExit);
  try {
    // A port picked here may be taken again before mosquitto binds it: try a few pairs.
    for (let attempt = 0; ; attempt++) {
      port = resolved.port === 0 ? await freePort(host) : resolved.port;
      servicePort = await freePort(host);
      const tlsFiles: Record<string, string> = {};
      if (resolved.tls !== undefined) {
        tlsFiles['server.key'] = String(resolved.tls.key);
        tlsFiles['server.crt'] = String(resolved.tls.cert);
        if (resolved.tls.ca !== undefined) tlsFiles['ca.crt'] = String(resolved.tls.ca);
      }
      const files = mosquittoConfig({
        host,
        port,
        servicePort,
        dir,
        service,
        ...(resolved.auth === undefined
          ? {}
          : {
              policy: {
                telemetryTopics: resolved.auth.telemetryTopics ?? DEFAULT_BROKER_OPTIONS.telemetryTopics,
                ...(resolved.auth.serviceCredentials === undefined
                  ? {}
                  : { serviceCredentials: resolved.auth.serviceCredentials }),
              },
            }),
        ...(resolved.tls === undefined
          ? {}
          : {
              tls: {
                keyFile: 'server.key',
                certFile: 'server.crt',
                ...(resolved.tls.ca === undefined ? {} : { caFile: 'ca.crt' }),
                requireCertificate: resolved.tls.requestCert === true,
              },
            }),
        ...(dynamicSecurityPlugin === undefined ? {} : { dynamicSecurityPlugin }),
        persistence: resolved.persistence,
        maxPacketBytes: resolved.maxPacketBytes,
        maxPayloadBytes: resolved.maxPayloadBytes,
        maxQueuedMessages: resolved.maxQueuedMessages,
        ...(process.getuid?.() === 0 ? { runAsUser: 'root' } : {}),
      });
      for (const [name, content] of Object.entries({ ...files, ...tlsFiles }))
        writeFileSync(join(dir, name), content, { mode: 0o600 });
      try {
        await launch(port, servicePort);
        break;
      } catch (error) {
        await stopProcess();
        if (attempt >= 2 || !/Address already in use/i.test(output)) throw error;
        output = '';
      }
    }
  } catch (error) {
    process.off('exit', killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  launchedOnce = true;
  // At most MAX_AUTO_RESTARTS_PER_MINUTE automatic restarts a minute; a failed one is logged.
  relaunch = () => {
    restartTimer = undefined;
    if (closed) return;
    restarts++;
    launch(port, servicePort).then(
      () => logger.warn('mosquitto restarted after an unexpected exit'),
      (error: unknown) => logger.warn(`mosquitto could not be restarted: ${String(error)}`),
    );
  };
  const scheme = resolved.tls === undefined ? 'mqtt' : 'mqtts';
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `${scheme}://${urlHost}:${port}`,
    serviceUrl: `mqtt://${urlHost}:${servicePort}`,
    serviceCredentials: { ...service },
    version,
    dir,
    refusedSubscriptions: dynamicSecurityPlugin === undefined ? 'none' : 'outside-device-topics',
    health: () => ({
      running: child !== undefined && child.exitCode === null && child.signalCode === null,
      pid: child?.pid,
      restarts,
      unexpectedExit,
    }),
    log: () => output,
    async restart() {
      if (closing !== undefined) throw new Error('the managed mosquitto is closed');
      clearTimeout(restartTimer);
      restartTimer = undefined;
      await stopProcess();
      restarts++;
      await launch(port, servicePort);
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(restartTimer);
        await stopProcess();
        process.off('exit', killOnExit);
        rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
