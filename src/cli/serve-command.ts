/**
 * `shadow-sync serve`: runs the local shadow service until SIGINT or SIGTERM.
 *
 * Every flag maps onto one {@link ShadowServiceOptions} field and is validated by the same resolver the library
 * uses, so a bad value gets the library's message (prefixed with the flag) and exit code 2 before any port or
 * file is taken.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { resolveLimits, type ShadowLimits } from '../core/limits.js';
import type { BrokerAuthOptions, BrokerTlsOptions } from '../emulator/broker.js';
import {
  type ConnectionQuotas,
  DEFAULT_CONNECTION_QUOTAS,
  resolveConnectionQuotas,
} from '../emulator/connection-quotas.js';
import { type FaultOptions, resolveFaultOptions } from '../emulator/fault-injector.js';
import { resolveMqttFrontOptions } from '../emulator/mqtt-front.js';
import {
  resolveShadowServiceOptions,
  type ShadowServiceOptions,
  startShadowService,
} from '../emulator/start-shadow-service.js';
import { isShadowError } from '../errors.js';
import { parseCommandLine, UsageError } from './command-line.js';
import type { CliCommand, CliIo } from './run-cli.js';

const HELP = `Usage: shadow-sync serve [options]

Runs the local AWS IoT Device Shadow service and prints one line:
  <http endpoint> <mqtt url>      for example  http://127.0.0.1:4080 mqtt://127.0.0.1:1883
once both accept connections (mqtts:// with --tls-key), and on stderr which MQTT broker and versions are served.
Stops cleanly on SIGINT or SIGTERM.

Options:
  --host H                  interface to listen on (default 127.0.0.1)
  --http-port N             HTTP port, 0 = any free port (default 0)
  --mqtt-port N             MQTT port of the embedded broker or managed mosquitto, 0 = any free port (default 0)
  --broker B                embedded  aedes in this process: MQTT 3.1.1 and 3.1 (the default; MQTT 5
                                      clients are refused with CONNACK 0x84)
                            mosquitto start and configure a mosquitto: MQTT 5, 3.1.1 and 3.1 (must be
                                      installed: apt-get install mosquitto); policy and TLS flags apply
                            auto      mosquitto when installed, embedded otherwise
                            mqtt://host:port  join an external broker as a client (persistent session)
  --connection-quotas       AWS IoT's per-connection quotas, on by default with the embedded broker:
                            50 subscriptions, 8 filters per SUBSCRIBE, 100 publishes/s (mosquitto enforces
                            only the 128 KB message size, and says so at start)
  --no-connection-quotas    turn them off (e.g. to drive one connection above 100 publishes/s)
  --quota NAME=VALUE        change one connection quota (repeatable), names:
                            ${Object.keys(DEFAULT_CONNECTION_QUOTAS).join(', ')}
  --data-dir DIR            keep shadows durably in DIR (default: in memory)
  --require-sigv4 KEY:SECRET  require SigV4-signed HTTP requests made with these credentials, checked as AWS
                            does: body hash, signed host, at most 15 minutes of clock skew (403 otherwise)
  --limit NAME=VALUE        override one limit (repeatable), for example
                              --limit requestsPerSecondPerThing=1000 --limit maxStateBytes=30720
                            names: ${Object.keys(resolveLimits()).join(', ')}
  --response-qos 0|1        QoS of the service's MQTT responses (default 0)
  --faults JSON             inject faults into outgoing shadow messages, for example
                              --faults '{"seed":7,"drop":0.1,"duplicate":0.05,"delay":0.2,"delayMs":[1,50],"reorder":0.1}'
                            keys: seed, drop, duplicate, delay, delayMs, reorder, reorderWindowMs
  --no-console              do not serve the web console (by default served at <http endpoint>/console, and
                            its address printed on stderr, when listening on loopback without --require-sigv4)
  --console                 serve the web console even on another interface or with --require-sigv4 (it then
                            answers loopback clients only); it has no login of its own

MQTT device policy (embedded broker or mosquitto; like an AWS IoT policy with \${iot:Connection.Thing.ThingName}):
  --service-credentials USER:PASS  clients logging in with these may use every topic; every other client is a
                            device (client id = thing name) limited to its own shadow and telemetry topics.
                            With --broker: the login the service uses at the external broker instead.
  --telemetry-topic FILTER  a device's telemetry topic filter, {thingName} replaced (repeatable;
                            default my/things/{thingName}/#); turns the device policy on
  --denied-publish drop|disconnect  what a denied publish does (default drop)
  --no-device-policy        turn the device policy off (an open broker), also with --require-client-cert

MQTT over TLS (embedded broker or mosquitto):
  --tls-key FILE            server private key (PEM); needs --tls-cert
  --tls-cert FILE           server certificate (PEM)
  --tls-ca FILE             CA that signs client certificates (PEM)
  --require-client-cert     require a client certificate signed by --tls-ca; its CN is the thing name and the
                            client id must equal it. Turns the device policy on (as on AWS IoT, where a policy
                            always applies) unless --no-device-policy is given

  -h, --help                show this help`;

function parsePort(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > 65535)
    throw new UsageError(`${flag} must be a port number 0-65535, got '${value}'`);
  return Number(value);
}

/** Splits `LEFT<sep>RIGHT` where both sides are non-empty (the right side may contain the separator). */
function splitPair(value: string, separator: string, flag: string, shape: string): [string, string] {
  const at = value.indexOf(separator);
  if (at <= 0 || at === value.length - 1) throw new UsageError(`${flag} must be ${shape}, got '${value}'`);
  return [value.slice(0, at), value.slice(at + separator.length)];
}

/** Runs a library resolver and turns its ShadowOptionsError into a usage error naming the flag. */
function validated<T>(flag: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (isShadowError(error)) throw new UsageError(`${flag}: ${error.message}`);
    throw error;
  }
}

function parseLimits(entries: readonly string[]): Partial<ShadowLimits> {
  const limits: Record<string, number> = {};
  for (const entry of entries) {
    const [name, value] = splitPair(entry, '=', '--limit', 'NAME=VALUE');
    if (!/^\d+$/.test(value))
      throw new UsageError(`--limit ${name} must be a non-negative integer, got '${value}'`);
    if (name in limits) throw new UsageError(`--limit ${name} is given twice`);
    limits[name] = Number(value);
  }
  // The core's resolver names unknown limits and out-of-range values.
  validated('--limit', () => resolveLimits(limits));
  return limits as Partial<ShadowLimits>;
}

function parseQuotas(entries: readonly string[]): Partial<ConnectionQuotas> {
  const quotas: Record<string, number | string> = {};
  for (const entry of entries) {
    const [name, value] = splitPair(entry, '=', '--quota', 'NAME=VALUE');
    if (name in quotas) throw new UsageError(`--quota ${name} is given twice`);
    quotas[name] = /^\d+$/.test(value) ? Number(value) : value;
  }
  validated('--quota', () => resolveConnectionQuotas(quotas as Partial<ConnectionQuotas>));
  return quotas as Partial<ConnectionQuotas>;
}

function parseFaults(json: string): FaultOptions {
  let faults: unknown;
  try {
    faults = JSON.parse(json);
  } catch (error) {
    throw new UsageError(
      `--faults must be a JSON object, for example '{"seed":7,"drop":0.1}': ${(error as Error).message}`,
    );
  }
  if (typeof faults !== 'object' || faults === null || Array.isArray(faults))
    throw new UsageError(`--faults must be a JSON object, for example '{"seed":7,"drop":0.1}', got ${json}`);
  validated('--faults', () => resolveFaultOptions(faults as FaultOptions));
  return faults as FaultOptions;
}

function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag}: cannot read '${path}': ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

type ParsedValues = ReturnType<typeof parse>['values'];

function tlsFrom(values: ParsedValues): BrokerTlsOptions | undefined {
  const keyPath = values['tls-key'];
  const certPath = values['tls-cert'];
  const caPath = values['tls-ca'];
  const requireCert = values['require-client-cert'] === true;
  if (keyPath === undefined && certPath === undefined) {
    if (caPath !== undefined) throw new UsageError('--tls-ca needs --tls-key and --tls-cert');
    if (requireCert) throw new UsageError('--require-client-cert needs --tls-key, --tls-cert and --tls-ca');
    return undefined;
  }
  if (keyPath === undefined) throw new UsageError('--tls-cert needs --tls-key');
  if (certPath === undefined) throw new UsageError('--tls-key needs --tls-cert');
  // Without a CA Node would check client certificates against the public roots, never what a test PKI wants.
  if (requireCert && caPath === undefined) throw new UsageError('--require-client-cert needs --tls-ca');
  const tls: BrokerTlsOptions = { key: readPem('--tls-key', keyPath), cert: readPem('--tls-cert', certPath) };
  if (caPath !== undefined) tls.ca = readPem('--tls-ca', caPath);
  if (requireCert) tls.requestCert = true;
  return tls;
}

/** Turns the command's arguments into service options. */
function optionsFrom(args: string[]): ShadowServiceOptions | 'help' {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const values = parsed.values;
  if (values.help === true) return 'help';
  const options: ShadowServiceOptions = {};
  if (values.host !== undefined) options.host = values.host;
  if (values.console === true && values['no-console'] === true)
    throw new UsageError('--console and --no-console contradict each other');
  options.console = values['no-console'] === true ? false : values.console === true ? true : 'loopback';
  const httpPort = parsePort(values['http-port'], '--http-port');
  if (httpPort !== undefined) options.httpPort = httpPort;
  const mqttPort = parsePort(values['mqtt-port'], '--mqtt-port');
  if (mqttPort !== undefined) options.mqttPort = mqttPort;
  const managed = values.broker === 'embedded' || values.broker === 'mosquitto' || values.broker === 'auto';
  const external = values.broker !== undefined && !managed;
  if (values.broker !== undefined) {
    if (external && mqttPort !== undefined)
      throw new UsageError('--mqtt-port sets the embedded broker and cannot be combined with --broker');
    options.broker = values.broker;
  }
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir'];
  const sig = values['require-sigv4'];
  if (sig !== undefined) {
    const colon = sig.indexOf(':');
    if (colon <= 0 || colon === sig.length - 1)
      throw new UsageError(`--require-sigv4 must be ACCESS_KEY:SECRET`);
    options.requireSigV4 = { accessKeyId: sig.slice(0, colon), secretAccessKey: sig.slice(colon + 1) };
  }
  if (values.limit !== undefined && values.limit.length > 0) options.limits = parseLimits(values.limit);
  if (values.faults !== undefined) options.faults = parseFaults(values.faults);
  const quotaEntries = values.quota ?? [];
  if (values['no-connection-quotas'] === true) {
    if (values['connection-quotas'] === true || quotaEntries.length > 0)
      throw new UsageError('--no-connection-quotas cannot be combined with --connection-quotas or --quota');
    options.connectionQuotas = false;
  } else if (values['connection-quotas'] === true || quotaEntries.length > 0)
    options.connectionQuotas = parseQuotas(quotaEntries);

  const mqtt: NonNullable<ShadowServiceOptions['mqtt']> = {};
  const qos = values['response-qos'];
  if (qos !== undefined) {
    if (qos !== '0' && qos !== '1')
      throw new UsageError(`--response-qos must be 0 or 1 (AWS IoT has no QoS 2), got '${qos}'`);
    mqtt.responseQos = qos === '0' ? 0 : 1;
  }

  const credentials =
    values['service-credentials'] === undefined
      ? undefined
      : splitPair(values['service-credentials'], ':', '--service-credentials', 'USER:PASS');
  const telemetry = values['telemetry-topic'] ?? [];
  const denied = values['denied-publish'];
  if (denied !== undefined && denied !== 'drop' && denied !== 'disconnect')
    throw new UsageError(`--denied-publish must be drop or disconnect, got '${denied}'`);
  if (external) {
    // An external broker enforces its own policy and TLS; the service only logs in to it.
    for (const flag of ['telemetry-topic', 'denied-publish', 'tls-key', 'tls-cert', 'tls-ca'] as const)
      if (values[flag] !== undefined)
        throw new UsageError(`--${flag} configures the embedded broker and cannot be combined with --broker`);
    for (const flag of ['require-client-cert', 'no-device-policy'] as const)
      if (values[flag] === true)
        throw new UsageError(`--${flag} configures the embedded broker and cannot be combined with --broker`);
    if (credentials !== undefined)
      mqtt.serviceClient = { username: credentials[0], password: credentials[1] };
  } else if (values['no-device-policy'] === true) {
    // Explicitly open: every client may use every topic, whatever TLS asks of it.
    if (credentials !== undefined || telemetry.length > 0 || denied !== undefined)
      throw new UsageError(
        '--no-device-policy turns the device policy off and cannot be combined with --service-credentials, --telemetry-topic or --denied-publish',
      );
    options.auth = { devicePolicy: false };
    const tls = tlsFrom(values);
    if (tls !== undefined) options.tls = tls;
  } else {
    if (credentials !== undefined || telemetry.length > 0 || denied !== undefined) {
      const auth: BrokerAuthOptions = {};
      if (credentials !== undefined)
        auth.serviceCredentials = { username: credentials[0], password: credentials[1] };
      if (telemetry.length > 0) auth.telemetryTopics = telemetry;
      if (denied !== undefined) auth.deniedPublish = denied;
      options.auth = auth;
    }
    const tls = tlsFrom(values);
    if (tls !== undefined) options.tls = tls;
  }
  if (Object.keys(mqtt).length > 0) options.mqtt = mqtt;

  // Everything the front checks before binding (broker URL, auth with an external broker, ...), checked now.
  validated('serve', () => resolveShadowServiceOptions(options));
  validated('serve', () =>
    resolveMqttFrontOptions({
      ...mqtt,
      ...(options.broker === undefined ? {} : { broker: options.broker }),
      ...(options.auth === undefined ? {} : { auth: options.auth }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(options.connectionQuotas === undefined ? {} : { connectionQuotas: options.connectionQuotas }),
    }),
  );
  return options;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: 'string' },
      'http-port': { type: 'string' },
      'mqtt-port': { type: 'string' },
      broker: { type: 'string' },
      'data-dir': { type: 'string' },
      'require-sigv4': { type: 'string' },
      limit: { type: 'string', multiple: true },
      'response-qos': { type: 'string' },
      'connection-quotas': { type: 'boolean' },
      'no-connection-quotas': { type: 'boolean' },
      quota: { type: 'string', multiple: true },
      faults: { type: 'string' },
      'service-credentials': { type: 'string' },
      'telemetry-topic': { type: 'string', multiple: true },
      'denied-publish': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-ca': { type: 'string' },
      'require-client-cert': { type: 'boolean' },
      console: { type: 'boolean' },
      'no-console': { type: 'boolean' },
      'no-device-policy': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

async function serve(args: string[], io: CliIo): Promise<number> {
  const commandLine = parseCommandLine('serve', HELP, () => optionsFrom(args), io);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const options = commandLine.options;
  let service: Awaited<ReturnType<typeof startShadowService>>;
  try {
    service = await startShadowService(options);
  } catch (error) {
    // Options the resolvers above cannot see (a broker TLS key that does not parse, ...) are still usage errors.
    if (!isShadowError(error) || error.code !== 'OPTIONS') throw error;
    io.stderr(`shadow-sync serve: ${error.message}\n\n${HELP}`);
    return 2;
  }
  io.stdout(`${service.httpEndpoint} ${service.mqttUrl}`);
  io.stderr(`shadow-sync serve: MQTT via ${service.mqtt.brokerInfo.description}`);
  if (service.consoleUrl !== undefined) io.stderr(`shadow-sync serve: web console at ${service.consoleUrl}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  // A second signal while closing means "stop now".
  const force = () => process.exit(1);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await service.close();
  process.off('SIGINT', force);
  process.off('SIGTERM', force);
  io.stderr(`shadow-sync serve: stopped on ${signal}`);
  return 0;
}

/** The `serve` subcommand. */
export const serveCommand: CliCommand = {
  summary: 'run the local shadow service (HTTP data plane + MQTT)',
  run: serve,
};
