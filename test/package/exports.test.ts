import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

// The built package, as a user's `import` and `require` see it (`npm test` builds first; see package.json `pretest`).
const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
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
  './emulator': ['startShadowService', 'createShadowEngine', 'startMqttFront', 'openJournal'],
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
});
