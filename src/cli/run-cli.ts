/**
 * The `shadow-sync` command line: a table of subcommands, so new ones (such as `demo`) are one entry each.
 */
import { readFileSync } from 'node:fs';
import { demoCommand } from './demo-command.js';
import { journalCommand } from './journal-command.js';
import { serveCommand } from './serve-command.js';

/** Where a command writes; the real CLI passes the process streams, tests may capture. */
export interface CliIo {
  stdout(line: string): void;
  stderr(line: string): void;
}

/** One subcommand: a one-line summary for the help text and its runner, which resolves to an exit code. */
export interface CliCommand {
  summary: string;
  run(args: string[], io: CliIo): Promise<number>;
}

/** Every subcommand by name. */
export const CLI_COMMANDS: Readonly<Record<string, CliCommand>> = Object.freeze({
  serve: serveCommand,
  demo: demoCommand,
  journal: journalCommand,
});

function usage(): string {
  const lines = Object.entries(CLI_COMMANDS).map(
    ([name, command]) => `  ${name.padEnd(10)} ${command.summary}`,
  );
  return [
    'Usage: shadow-sync <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Options:',
    '  --help, -h     show this help',
    '  --version, -v  print the version of shadow-sync',
    '',
    'Run `shadow-sync <command> --help` for its options.',
  ].join('\n');
}

/**
 * The package's version, read from its package.json when asked. This module sits two directories below the
 * package root both in the sources (`src/cli/`) and in the published bin's chunks (`dist/bin/`).
 */
function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/**
 * Runs the CLI with the arguments after the program name.
 *
 * @param argv - for example `['serve', '--http-port', '8080']`
 * @param io - output streams
 * @returns the process exit code (0 success, 2 usage error, 1 failure)
 * @example process.exitCode = await runCli(process.argv.slice(2), { stdout: console.log, stderr: console.error });
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    io.stdout(packageVersion());
    return 0;
  }
  const command = CLI_COMMANDS[name];
  if (command === undefined) {
    io.stderr(`shadow-sync: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return command.run(rest, io);
}
