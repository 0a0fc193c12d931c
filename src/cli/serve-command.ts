/**
 * `shadow-sync serve`: runs the local shadow service until SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { type ShadowServiceOptions, startShadowService } from '../emulator/start-shadow-service.js';
import type { CliCommand, CliIo } from './run-cli.js';

const HELP = `Usage: shadow-sync serve [options]

Runs the local AWS IoT Device Shadow service and prints one line:
  <http endpoint> <mqtt url>      for example  http://127.0.0.1:4080 mqtt://127.0.0.1:1883
once both accept connections. Stops cleanly on SIGINT or SIGTERM.

Options:
  --host H                  interface to listen on (default 127.0.0.1)
  --http-port N             HTTP port, 0 = any free port (default 0)
  --mqtt-port N             embedded MQTT broker port, 0 = any free port (default 0)
  --broker URL              join an external broker (mqtt://host:port) instead of the embedded one
  --data-dir DIR            keep shadows durably in DIR (default: in memory)
  --require-sigv4 KEY:SECRET  require SigV4-signed HTTP requests made with these credentials
  -h, --help                show this help`;

function parsePort(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > 65535)
    throw new UsageError(`${flag} must be a port number 0-65535, got '${value}'`);
  return Number(value);
}

class UsageError extends Error {}

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
  const httpPort = parsePort(values['http-port'], '--http-port');
  if (httpPort !== undefined) options.httpPort = httpPort;
  const mqttPort = parsePort(values['mqtt-port'], '--mqtt-port');
  if (mqttPort !== undefined) options.mqttPort = mqttPort;
  if (values.broker !== undefined) options.broker = values.broker;
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir'];
  const sig = values['require-sigv4'];
  if (sig !== undefined) {
    const colon = sig.indexOf(':');
    if (colon <= 0 || colon === sig.length - 1)
      throw new UsageError(`--require-sigv4 must be ACCESS_KEY:SECRET`);
    options.requireSigV4 = { accessKeyId: sig.slice(0, colon), secretAccessKey: sig.slice(colon + 1) };
  }
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
      help: { type: 'boolean', short: 'h' },
    },
  });
}

async function serve(args: string[], io: CliIo): Promise<number> {
  let options: ShadowServiceOptions | 'help';
  try {
    options = optionsFrom(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`shadow-sync serve: ${error.message}\n\n${HELP}`);
    return 2;
  }
  if (options === 'help') {
    io.stdout(HELP);
    return 0;
  }
  const service = await startShadowService(options);
  io.stdout(`${service.httpEndpoint} ${service.mqttUrl}`);
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
