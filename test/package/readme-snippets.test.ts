/**
 * The README's TypeScript runs as written: every ```ts block is type-checked, as its own ES module, against the
 * real API (the package's entry points mapped to their sources, so no build is needed), with the project's strict
 * settings. A block that uses names it does not define (values that depend on the reader's program) declares them
 * in an HTML comment right before it, invisible on the rendered page: `<!-- snippet-prelude: declare const x: T; -->`.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const snippets = [
  ...readme.matchAll(/(?:<!--\s*snippet-prelude:([\s\S]*?)-->\s*\n)?```ts\n([\s\S]*?)```/g),
].map((match) => ({
  prelude: match[1]?.trim() ?? '',
  code: match[2] as string,
  line: readme.slice(0, match.index).split('\n').length + 1,
}));

const ENTRIES: Record<string, string> = {
  'shadow-sync': 'src/index.ts',
  'shadow-sync/aws': 'src/transports/aws.ts',
  'shadow-sync/mqtt': 'src/transports/mqtt.ts',
  'shadow-sync/device': 'src/device/index.ts',
  'shadow-sync/emulator': 'src/emulator/index.ts',
};

describe('README snippets', () => {
  it('the README has TypeScript snippets (quick start, testing your Lambdas, ...)', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(5);
  });

  it('every snippet type-checks against the real API', () => {
    const dir = join(ROOT, 'node_modules/.cache/readme-snippets');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const files = snippets.map((snippet, index) => {
      const file = join(dir, `snippet-${index + 1}-line-${snippet.line}.ts`);
      writeFileSync(file, `${snippet.prelude}\n${snippet.code}\nexport {};\n`);
      return file;
    });
    const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
    const paths = Object.fromEntries(
      Object.entries(ENTRIES).map(([name, file]) => [name, [join(ROOT, file)]]),
    );
    const program = ts.createProgram(files, { ...options, noEmit: true, paths });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((diagnostic) => diagnostic.file === undefined || files.includes(diagnostic.file.fileName))
      .map((diagnostic) => {
        const where =
          diagnostic.file === undefined || diagnostic.start === undefined
            ? ''
            : `${diagnostic.file.fileName.split('/').at(-1)}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line + 1}: `;
        return `${where}${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
  }, 120_000);
});
