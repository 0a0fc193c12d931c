/**
 * Test support: Debian's Chromium, headless, driven by playwright-core (which never downloads a browser).
 * `scripts/ensure-chromium.mjs` installs it before the tests; CHROMIUM_PATH points at another build.
 */
import { type Browser, chromium } from 'playwright-core';

/** Flags for a quiet, offline, sandbox-free headless Chromium (it runs as root in CI). */
export const CHROMIUM_FLAGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

/** Launches headless Chromium. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_FLAGS],
    timeout: 30_000,
  });
}
