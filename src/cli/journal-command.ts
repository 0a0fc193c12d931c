/**
 * `shadow-sync journal repair <dir>`: the explicit repair of a data directory the service refuses to open
 * because a journal or snapshot is damaged (see `repairJournal`). It keeps a copy of every damaged file and
 * rewrites it with every valid record; `journal check <dir>` only reports.
 */
import { parseArgs } from 'node:util';
import { openJournal, type RepairedFile, repairJournal } from '../emulator/journal.js';
import { isShadowError } from '../errors.js';
import { parseCommandLine, UsageError } from './command-line.js';
import type { CliCommand, CliIo } from './run-cli.js';

const HELP = `Usage: shadow-sync journal check <data-dir>
       shadow-sync journal repair <data-dir>

check   opens the data directory of \`shadow-sync serve --data-dir\` as the service would (dropping a torn tail,
        the one change it makes) and says whether the service can start on it (exit 0) or which file is damaged
        at which byte (exit 1).
repair  for each damaged file (journal.ssj, snapshot.ssj): copies it to <file>.damaged-<time>, then rewrites it
        with every valid record in order, dropping only the bytes that belong to no valid record. Records in the
        dropped bytes are lost (their shadows fall back to their previous record): run it only after the service
        refused to start, and keep the copies. The service must not be running.

Options:
  -h, --help   show this help`;

type Parsed = { action: 'check' | 'repair'; dataDir: string };

function parse(args: string[]): Parsed | 'help' {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' } },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (parsed.values.help === true) return 'help';
  const [action, dataDir, ...extra] = parsed.positionals;
  if (action !== 'check' && action !== 'repair')
    throw new UsageError(
      `expected 'check' or 'repair', got ${action === undefined ? 'nothing' : `'${action}'`}`,
    );
  if (dataDir === undefined || dataDir === '')
    throw new UsageError(`journal ${action} needs a data directory`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  return { action, dataDir };
}

function describe(repaired: RepairedFile): string {
  if (repaired.backup === undefined) return `${repaired.file}: intact (${repaired.keptRecords} records)`;
  const ranges = repaired.dropped.map(({ start, end }) => `${start}-${end}`).join(', ');
  const bytes = repaired.dropped.reduce((sum, { start, end }) => sum + end - start, 0);
  return `${repaired.file}: kept ${repaired.keptRecords} records, dropped ${bytes} bytes (${ranges}); original copied to ${repaired.backup}`;
}

async function run(args: string[], io: CliIo): Promise<number> {
  const commandLine = parseCommandLine('journal', HELP, () => parse(args), io);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const { action, dataDir } = commandLine.options;
  try {
    if (action === 'check') {
      const journal = openJournal({ dataDir });
      // Opening truncates a torn tail (what `serve` would do too); say so.
      const { truncatedBytes } = journal.stats();
      const records = journal.recovered.length;
      await journal.close();
      io.stdout(
        `${dataDir}: the service can start (${records} shadows${truncatedBytes > 0 ? `; a torn tail of ${truncatedBytes} bytes was dropped` : ''})`,
      );
      return 0;
    }
    const report = repairJournal(dataDir);
    for (const file of [report.snapshot, report.journal]) if (file !== undefined) io.stdout(describe(file));
    if (report.snapshot === undefined && report.journal === undefined)
      io.stdout(`${dataDir}: no journal files`);
    return 0;
  } catch (error) {
    if (!isShadowError(error) && !(error instanceof Error)) throw error;
    io.stderr(`shadow-sync journal ${action}: ${error.message}`);
    return 1;
  }
}

/** The `journal` subcommand (`check`, `repair`). */
export const journalCommand: CliCommand = {
  summary: 'check or repair the data directory of a local service (journal + snapshot)',
  run,
};
