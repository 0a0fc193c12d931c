import { defineConfig, type Options } from 'tsup';

const shared: Options = {
  target: 'node20',
  platform: 'node',
  splitting: false,
  // p-retry ships ESM only; bundling it keeps the CommonJS build loadable by plain require().
  noExternal: ['p-retry', 'is-network-error'],
};

export default defineConfig([
  {
    ...shared,
    entry: {
      index: 'src/index.ts',
      aws: 'src/transports/aws.ts',
      mqtt: 'src/transports/mqtt.ts',
      device: 'src/device/index.ts',
      emulator: 'src/emulator/index.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
  },
  {
    ...shared,
    // The `shadow-sync` bin: ESM only (nothing requires a bin), without a source map. It bundles the demo's
    // reference Lambdas, so it is much larger than the library entries and is kept out of their way.
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: false,
  },
]);
