/** The AWS wiring of the handlers: environment variables read on first use, with errors that name them. */
import { describe, expect, it } from 'vitest';
import { lazily, requireEnvironment } from '../../examples/lambdas/environment.js';
import { handler as alertHandler } from '../../examples/lambdas/illegal-state-alert.js';
import { shadowsFromEnvironment } from '../../examples/lambdas/shadows-from-environment.js';

describe('requireEnvironment', () => {
  it('returns a set variable and names a missing or empty one', () => {
    expect(requireEnvironment('A', { A: 'x' })).toBe('x');
    expect(() => requireEnvironment('TABLE_NAME', {})).toThrow(/TABLE_NAME is not set/);
    expect(() => requireEnvironment('TABLE_NAME', { TABLE_NAME: '' })).toThrow(/TABLE_NAME is not set/);
  });
});

describe('lazily', () => {
  it('creates once, on first use', () => {
    let created = 0;
    const get = lazily(() => ({ n: ++created }));
    expect(created).toBe(0);
    expect(get()).toBe(get());
    expect(created).toBe(1);
  });
});

describe('exported handlers', () => {
  it('import without AWS configuration and fail on first use naming the missing variable', async () => {
    const saved = process.env.TABLE_NAME;
    delete process.env.TABLE_NAME;
    try {
      await expect(alertHandler({})).rejects.toThrow(/TABLE_NAME/);
    } finally {
      if (saved !== undefined) process.env.TABLE_NAME = saved;
    }
  });

  it('shadowsFromEnvironment needs IOT_DATA_ENDPOINT and accepts a host name or a URL', () => {
    expect(() => shadowsFromEnvironment({})).toThrow(/IOT_DATA_ENDPOINT/);
    expect(
      shadowsFromEnvironment({ IOT_DATA_ENDPOINT: 'abc-ats.iot.us-east-1.amazonaws.com' }).shadow('t').target,
    ).toEqual({
      thingName: 't',
    });
    expect(shadowsFromEnvironment({ IOT_DATA_ENDPOINT: 'http://127.0.0.1:1' }).shadow('t')).toBeDefined();
  });
});
