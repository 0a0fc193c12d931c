import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

// The built package, as a user's `import` and `require` see it (`npm test` builds first; see package.json `pretest`).
const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  typesVersions: Record<string, Record<string, string[]>>;
  exports: Record<
    string,
    { import?: { types: string; default: string }; require?: { types: string; default: string } }
  >;
};
const require = createRequire(`${root}package.json`);

/** Entry point → names every build of it must export. */
const expected: Record<string, string[]> = {
  '.': [
    'applyUpdate',
    'computeDelta',
    'DEFAULT_LIMITS',
    'ShadowError',
    'isShadowError',
    'errorFromRejection',
  ],
  './aws': ['awsTransport', 'mapAwsError'],
  './mqtt': ['mqttTransport'],
  './device': [
    'createDeviceAgent',
    'DEVICE_AGENT_DEFAULTS',
    'resolveDeviceAgentOptions',
    'createTelemetryBuffer',
  ],
  './emulator': [
    'startShadowService',
    'createShadowEngine',
    'startMqttFront',
    'openJournal',
    'inProcessRequestHandler',
  ],
};

describe('built package', () => {
  for (const [entry, names] of Object.entries(expected)) {
    const conditions = pkg.exports[entry];
    it(`${entry}: exports map lists types first and the files exist`, () => {
      expect(conditions).toBeDefined();
      for (const condition of [conditions?.import, conditions?.require]) {
        expect(condition).toBeDefined();
        expect(Object.keys(condition ?? {})[0]).toBe('types');
        expect(existsSync(`${root}${condition?.types}`)).toBe(true);
        expect(existsSync(`${root}${condition?.default}`)).toBe(true);
      }
    });

    it(`${entry}: import() and require() give the same named exports`, async () => {
      const esm = (await import(pathToFileURL(`${root}${conditions?.import?.default}`).href)) as Record<
        string,
        unknown
      >;
      const cjs = require(`${root}${conditions?.require?.default}`) as Record<string, unknown>;
      for (const name of names) {
        expect(esm[name], `ESM ${entry} ${name}`).toBeDefined();
        expect(cjs[name], `CJS ${entry} ${name}`).toBeDefined();
      }
      expect(Object.keys(esm).sort()).toEqual(Object.keys(cjs).sort());
    });
  }

  it('an error from the CJS build is recognised by the ESM guard (brand survives two copies)', async () => {
    const esm = (await import(
      pathToFileURL(`${root}dist/index.js`).href
    )) as typeof import('../../src/index.js');
    const cjs = require(`${root}dist/index.cjs`) as typeof import('../../src/index.js');
    const error = new cjs.ShadowNotFoundError('missing', { thingName: 'lamp' });
    expect(error instanceof esm.ShadowNotFoundError).toBe(false);
    expect(esm.isShadowError(error)).toBe(true);
    expect(esm.isShadowNotFoundError(error)).toBe(true);
  });

  it('declarations import only packages a user has: dependencies, peers, node builtins', () => {
    const allowed = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)]);
    const imported = new Set<string>();
    for (const file of readdirSync(`${root}dist`, { recursive: true, encoding: 'utf8' })) {
      if (!/\.d\.c?ts$/.test(file)) continue;
      const text = readFileSync(`${root}dist/${file}`, 'utf8');
      for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const specifier = match[1] as string;
        if (specifier.startsWith('.')) continue;
        const name = specifier.startsWith('@')
          ? specifier.split('/').slice(0, 2).join('/')
          : specifier.split('/')[0];
        imported.add(name as string);
      }
    }
    const unknown = [...imported].filter(
      (name) => !allowed.has(name) && !name.startsWith('node:') && !builtinModules.includes(name),
    );
    expect(unknown).toEqual([]);
  });

  it('typesVersions maps every subpath of exports (moduleResolution node10) to a file that exists', () => {
    const subpaths = Object.keys(pkg.exports).filter((key) => key !== '.' && key !== './package.json');
    const mapped = pkg.typesVersions['*'] ?? {};
    expect(Object.keys(mapped).sort()).toEqual(subpaths.map((key) => key.slice(2)).sort());
    for (const files of Object.values(mapped))
      for (const file of files) expect(existsSync(`${root}${file}`)).toBe(true);
  });

  it('one copy of the error classes: every entry of a format shares them (shared chunks, ESM and CJS)', async () => {
    const esm = (await import(
      pathToFileURL(`${root}dist/index.js`).href
    )) as typeof import('../../src/index.js');
    const esmAws = (await import(
      pathToFileURL(`${root}dist/aws.js`).href
    )) as typeof import('../../src/transports/aws.js');
    const cjs = require(`${root}dist/index.cjs`) as typeof import('../../src/index.js');
    const cjsAws = require(`${root}dist/aws.cjs`) as typeof import('../../src/transports/aws.js');
    const sdkError = { name: 'ThrottlingException', message: 'Rate exceeded' };
    expect(esmAws.mapAwsError(sdkError, { thingName: 't' })).toBeInstanceOf(esm.ShadowThrottledError);
    expect(cjsAws.mapAwsError(sdkError, { thingName: 't' })).toBeInstanceOf(cjs.ShadowThrottledError);
  });
});
