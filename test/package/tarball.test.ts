/**
 * The package as a new user gets it: `npm pack` once, install the tarball ALONE into an empty project outside
 * the repository (so nothing resolves from the repository's node_modules), then:
 * - the bare install holds only shadow-sync and its runtime dependencies (no broker, no schema library);
 * - the bin runs from it: `--help`, `--version`, `serve` (answers the real data-plane API), `demo`;
 * - with the peers an app brings (AWS SDK, mqtt) linked in: errors thrown through EVERY entry point, from ES
 *   modules and from CommonJS, are `instanceof` the classes `shadow-sync` exports;
 * - a TypeScript consumer type-checks under moduleResolution node10, node16 (ESM and CJS files) and bundler;
 * - the README's quick start runs as written;
 * - an esbuild Lambda bundle made from the installed package stays in budget and loads as CommonJS.
 * Needs `dist/` (`npm test` builds first) and the npm registry or cache for the runtime dependencies.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error a plain .mjs script without declarations (it is also the CI size check)
import { LAMBDA_BUNDLE_BUDGET_BYTES, measureLambdaBundle } from '../../scripts/check-bundle-size.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const env = {
  ...process.env,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  NODE_NO_WARNINGS: '1',
};

let work: string;
let app: string;
let bin: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'shadow-sync-tarball-'));
  const { stdout } = await run(NPM, ['pack', '--silent', '--pack-destination', work], { cwd: ROOT, env });
  const tarball = join(work, stdout.trim().split('\n').at(-1) as string);
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, env });
  bin = join(app, 'node_modules/.bin/shadow-sync');
}, 120_000);

afterAll(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** Links a package of the repository's node_modules into the app, as the app's own dependency would be. */
function linkFromRepository(name: string): void {
  const target = join(app, 'node_modules', name);
  mkdirSync(join(target, '..'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules', name), target, 'dir');
}

describe('the packed tarball installed alone', () => {
  it('installs no broker, no schema library, no MQTT client, no AWS SDK', () => {
    const top = readdirSync(join(app, 'node_modules')).filter((name) => !name.startsWith('.'));
    expect(top.sort()).toEqual(['@standard-schema', 'shadow-sync']);
  });

  it('the bin answers --help and --version', async () => {
    const help = await run(process.execPath, [bin, '--help'], { cwd: app, env });
    expect(help.stdout).toContain('serve');
    expect(help.stdout).toContain('demo');
    const version = await run(process.execPath, [bin, '--version'], { cwd: app, env });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.each([
    ['the embedded broker', []],
    // The bin bundles mqtt.js as CommonJS: the service's own client must load from that bundle too.
    ['a managed mosquitto (MQTT 5)', ['--broker', 'mosquitto']],
  ])(
    '`serve` with %s starts the local service, answers the data-plane API and stops on SIGTERM',
    async (_, flags) => {
      const child = spawn(process.execPath, [bin, 'serve', ...flags], {
        cwd: app,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        err += chunk;
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const endpoint = await new Promise<string>((resolve, reject) => {
        const timer = setInterval(() => {
          const match = /^(http:\/\/\S+) mqtt:\/\/\S+$/m.exec(out);
          if (match !== null) {
            clearInterval(timer);
            resolve(match[1] as string);
          } else if (child.exitCode !== null) {
            clearInterval(timer);
            reject(new Error(`serve exited: ${err}`));
          }
        }, 20);
      });
      const response = await fetch(`${endpoint}/things/lamp/shadow`);
      expect(response.status).toBe(404);
      expect(response.headers.get('x-amzn-errortype')).toBe('ResourceNotFoundException');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    },
    60_000,
  );

  it('`demo --duration 3` runs the reference system and loses no update', async () => {
    const { stdout } = await run(
      process.execPath,
      [bin, 'demo', '--duration', '3', '--devices', '10', '--plain'],
      {
        cwd: app,
        env,
        timeout: 90_000,
      },
    );
    expect(stdout).toContain('no update was lost');
  }, 120_000);

  describe('with the peers an app brings', () => {
    beforeAll(() => {
      for (const name of ['@aws-sdk/client-iot-data-plane', 'mqtt', '@types/node']) linkFromRepository(name);
      for (const file of ['throw-through-entries.mjs', 'throw-through-entries.cjs'])
        copyFileSync(join(FIXTURES, file), join(app, file));
      for (const name of ['consumer.ts', 'consumer.mts', 'consumer.cts'])
        copyFileSync(join(FIXTURES, 'consumer.ts.fixture'), join(app, name));
    });

    for (const script of ['throw-through-entries.mjs', 'throw-through-entries.cjs']) {
      it(`${script}: an error from any entry is an instance of the class shadow-sync exports`, async () => {
        const { stdout } = await run(process.execPath, [script], { cwd: app, env });
        const cases = JSON.parse(stdout) as {
          name: string;
          error: string;
          instanceOfClass: boolean;
          instanceOfBase: boolean;
        }[];
        expect(cases).toHaveLength(8);
        for (const result of cases)
          expect(result, result.name).toMatchObject({ instanceOfClass: true, instanceOfBase: true });
      }, 60_000);
    }

    const profiles: Record<string, { module: string; moduleResolution: string; files: string[] }> = {
      node10: { module: 'commonjs', moduleResolution: 'node10', files: ['consumer.ts'] },
      node16: { module: 'node16', moduleResolution: 'node16', files: ['consumer.mts', 'consumer.cts'] },
      bundler: { module: 'esnext', moduleResolution: 'bundler', files: ['consumer.ts'] },
    };
    for (const [profile, settings] of Object.entries(profiles)) {
      it(`TypeScript with moduleResolution ${profile} resolves every entry point and its types`, async () => {
        const config = join(app, `tsconfig.${profile}.json`);
        writeFileSync(
          config,
          JSON.stringify({
            compilerOptions: {
              module: settings.module,
              moduleResolution: settings.moduleResolution,
              target: 'es2022',
              strict: true,
              noEmit: true,
              // Library checks of the AWS SDK's declarations cost 15 s per profile here; what they would catch in
              // ours (an import of a package that is not installed) is checked by exports.test.ts.
              skipLibCheck: true,
              types: ['node'],
              ...(profile === 'node10' ? { ignoreDeprecations: '5.0' } : {}),
            },
            files: settings.files,
          }),
        );
        const result = await run(process.execPath, [TSC, '-p', config], { cwd: app, env }).catch(
          (error: { stdout?: string }) => ({ stdout: `tsc failed:\n${error.stdout ?? String(error)}` }),
        );
        expect(result.stdout).toBe('');
      }, 90_000);
    }

    it("the README's quick start runs as written against the installed package", async () => {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const quickStart = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
        .map((match) => match[1] as string)
        .find((code) => code.includes('startShadowService()'));
      expect(quickStart).toBeDefined();
      // It has no type annotations: as an .mjs file it is exactly what `npx tsx quick-start.mts` runs.
      writeFileSync(join(app, 'quick-start.mjs'), quickStart as string);
      const { stdout } = await run(process.execPath, ['quick-start.mjs'], { cwd: app, env, timeout: 30_000 });
      expect(stdout.trim()).toBe("2 { count: 1, power: 'on' }");
    }, 60_000);

    it('an esbuild Lambda bundle of the installed package stays in budget and loads as CommonJS', async () => {
      const sizes = (await measureLambdaBundle(app)) as Record<'esm' | 'cjs', number>;
      expect(sizes.esm).toBeLessThanOrEqual(LAMBDA_BUNDLE_BUDGET_BYTES);
      expect(sizes.cjs).toBeLessThanOrEqual(LAMBDA_BUNDLE_BUDGET_BYTES);
      // Many Lambda toolchains bundle an ES-module handler to CommonJS: the result must load (no import.meta).
      const { build } = await import('esbuild');
      await build({
        stdin: {
          contents:
            "export { createShadowClient } from 'shadow-sync'; export { awsTransport } from 'shadow-sync/aws';",
          resolveDir: app,
          loader: 'js',
        },
        bundle: true,
        platform: 'node',
        format: 'cjs',
        external: ['@aws-sdk/*'],
        outfile: join(app, 'lambda.cjs'),
        logLevel: 'silent',
      });
      const { stdout } = await run(
        process.execPath,
        [
          '-e',
          "const m = require('./lambda.cjs'); console.log(typeof m.createShadowClient, typeof m.awsTransport)",
        ],
        { cwd: app, env },
      );
      expect(stdout.trim()).toBe('function function');
    }, 60_000);
  });
});
