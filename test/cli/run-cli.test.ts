import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run-cli.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (line: string) => out.push(line), stderr: (line: string) => err.push(line) },
    out,
    err,
  };
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

describe('shadow-sync command line', () => {
  it('--version and -v print the package version and exit 0', async () => {
    for (const flag of ['--version', '-v']) {
      const { io, out, err } = capture();
      expect(await runCli([flag], io)).toBe(0);
      expect(out).toEqual([version]);
      expect(err).toEqual([]);
    }
  });

  it('--help lists every command and the global flags, exit 0; no arguments prints it with exit 2', async () => {
    const help = capture();
    expect(await runCli(['--help'], help.io)).toBe(0);
    for (const word of ['serve', 'demo', '--version', '--help']) expect(help.out.join('\n')).toContain(word);
    const bare = capture();
    expect(await runCli([], bare.io)).toBe(2);
    expect(bare.out).toEqual(help.out);
  });

  it('an unknown command is a usage error naming it', async () => {
    const { io, err } = capture();
    expect(await runCli(['serv'], io)).toBe(2);
    expect(err.join('\n')).toContain("unknown command 'serv'");
  });
});
