#!/usr/bin/env node
/**
 * Entry point of the `shadow-sync` bin: runs {@link runCli} on the process arguments.
 */
import { runCli } from './run-cli.js';

runCli(process.argv.slice(2), {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`shadow-sync: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
