// Makes sure the mosquitto broker binary exists before the tests run: the external-broker tests start a real
// mosquitto on loopback. On a fresh Debian machine where we are root, install it from Debian's packages;
// anywhere else, stop with a clear message instead of letting those tests fail one by one.
import { execFileSync, spawnSync } from 'node:child_process';

function hasMosquitto() {
  for (const candidate of ['mosquitto', '/usr/sbin/mosquitto']) {
    const probe = spawnSync(candidate, ['-h'], { stdio: 'ignore' });
    if (probe.error === undefined) return true;
  }
  return false;
}

if (!hasMosquitto()) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).error === undefined;
  if (!isRoot || !hasApt) {
    console.error(
      'The tests need the mosquitto broker (Debian/Ubuntu: sudo apt-get install mosquitto; macOS: brew install mosquitto).',
    );
    process.exit(1);
  }
  console.log('Installing mosquitto from Debian packages for the external-broker tests...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'mosquitto'], {
    stdio: 'inherit',
    env,
  });
}
