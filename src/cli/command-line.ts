/**
 * What every subcommand does with its arguments before running: parse them, answer `--help`, and turn a bad
 * command line into its message, the command's usage text and exit code 2.
 */
import type { CliIo } from './run-cli.js';

/** A bad command line: reported with the usage text and exit code 2. */
export class UsageError extends Error {}

/**
 * Parses a subcommand's arguments.
 *
 * @param command - the subcommand's name, for the error line
 * @param help - its usage text
 * @param parse - turns the arguments into options or `'help'`; throws {@link UsageError} for a bad command line
 * @returns the options, or the exit code when the command must not run (0 after `--help`, 2 after a usage error)
 */
export function parseCommandLine<T>(
  command: string,
  help: string,
  parse: () => T | 'help',
  io: CliIo,
): { options: T } | { exitCode: number } {
  let parsed: T | 'help';
  try {
    parsed = parse();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`shadow-sync ${command}: ${error.message}\n\n${help}`);
    return { exitCode: 2 };
  }
  if (parsed === 'help') {
    io.stdout(help);
    return { exitCode: 0 };
  }
  return { options: parsed };
}
