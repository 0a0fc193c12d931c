import { defineConfig, type Options } from 'tsup';

type TsupPlugin = NonNullable<Options['plugins']>[number];

/**
 * esbuild turns `require()` calls of bundled CommonJS code (aedes and its tree in the local service, mqtt.js
 * and the AWS SDK in the bin) into a shim that throws "Dynamic require of ... is not supported" in an ES
 * module. Those calls only ask for Node's built-in modules (everything else is bundled, see
 * `test/package/bundle-requires.test.ts`), so the chunk that defines the shim gets a `require` backed by
 * `process.getBuiltinModule` (Node 20.16+). Not `createRequire(import.meta.url)`: that chunk holds esbuild's
 * helpers, which every entry imports, and an app bundling the main entry to CommonJS (the default of many
 * Lambda toolchains) has no `import.meta`. (Prepended on line 1: source maps shift by a few columns there.)
 */
const esmRequire: TsupPlugin = {
  name: 'esm-require',
  renderChunk(code, info) {
    if (this.format !== 'esm' || !info.path.endsWith('.js')) return undefined;
    if (!code.includes('Dynamic require of')) return undefined;
    return {
      code: `const require = (id) => process.getBuiltinModule(id); ${code}`,
    };
  },
};

const shared: Options = {
  target: 'node20',
  platform: 'node',
  plugins: [esmRequire],
  esbuildOptions(options) {
    // readable-stream (aedes, mqtt.js and their trees) is a copy of Node's own streams for old runtimes: on
    // Node 20 the built-in module is the same API, and the copy was a third of the bundled local service.
    options.alias = { ...options.alias, 'readable-stream': 'node:stream' };
  },
};

export default defineConfig([
  {
    ...shared,
    // The library entries. Code splitting in BOTH formats: every module two entries use (the error classes
    // above all) lives in one shared chunk per format, so `instanceof` holds whichever entry threw. New files
    // under src/ are picked up through the entries' imports; no per-file list.
    // Dependencies and peer dependencies stay external (tsup's default); everything else an entry imports is
    // bundled: the local service's broker (aedes and its tree), so that an app that only updates shadows
    // installs no broker.
    entry: {
      index: 'src/index.ts',
      aws: 'src/transports/aws.ts',
      mqtt: 'src/transports/mqtt.ts',
      device: 'src/device/index.ts',
      emulator: 'src/emulator/index.ts',
      // Not a public entry (absent from `exports`): it only gives the JSON Patch views and the fast-json-patch
      // code they bundle a chunk of their own, which an app's bundler drops when the app does not use them
      // (the package is `sideEffects: false`). Inside the main entry's own file they would always be kept.
      'internal/json-patch': 'src/core/json-patch.ts',
    },
    format: ['esm', 'cjs'],
    splitting: true,
    dts: true,
    sourcemap: true,
  },
  {
    ...shared,
    // The `shadow-sync` bin: ESM only (nothing requires a bin), without a source map, and self-contained: it
    // bundles everything it runs (mqtt.js, aedes, the AWS SDK clients the demo's reference Lambdas use), so
    // `npx shadow-sync serve` / `demo` work from a bare install. Split so that `--help` and `serve` do not load
    // the demo.
    entry: { cli: 'src/cli/main.ts' },
    outDir: 'dist/bin',
    format: ['esm'],
    splitting: true,
    noExternal: [/.*/],
    sourcemap: false,
    minify: true,
  },
]);
