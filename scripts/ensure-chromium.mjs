// Makes sure a Chromium binary exists before the tests run: the console's end-to-end tests drive Debian's
// chromium (headless) through playwright-core, which never downloads a browser of its own. On a fresh Debian
// machine where we are root, install it from Debian's packages; anywhere else, stop with a clear message.
// CHROMIUM_PATH points the tests at another Chromium build.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const wanted = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

if (!existsSync(wanted)) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).error === undefined;
  if (!isRoot || !hasApt || process.env.CHROMIUM_PATH !== undefined) {
    console.error(
      `The console tests need Chromium at ${wanted} (Debian/Ubuntu: sudo apt-get install chromium; ` +
        'elsewhere set CHROMIUM_PATH to a Chromium or Chrome binary).',
    );
    process.exit(1);
  }
  console.log('Installing chromium from Debian packages for the console tests...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], {
    stdio: 'inherit',
    env,
  });
}
