import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    aws: 'src/transports/aws.ts',
    mqtt: 'src/transports/mqtt.ts',
    device: 'src/device/index.ts',
    emulator: 'src/emulator/index.ts',
    cli: 'src/cli/main.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  // p-retry ships ESM only; bundling it keeps the CommonJS build loadable by plain require().
  noExternal: ['p-retry', 'is-network-error'],
});
