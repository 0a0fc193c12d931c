/**
 * The web console end to end in a real browser: headless Chromium (Debian's package, driven by playwright-core),
 * the local service, a real mqtt.js device and the real AWS SDK as a concurrent writer.
 */
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { connectTestClient, type TestClient } from '../emulator/mqtt-test-client.js';
import { launchChromium } from './chromium.js';

const decoder = new TextDecoder();
let browser: Browser;
let service: ShadowService;
let sdk: IoTDataPlaneClient;
let device: TestClient;
let page: Page;
const pageErrors: string[] = [];

async function write(thingName: string, state: unknown, shadowName?: string): Promise<number> {
  const out = await sdk.send(
    new UpdateThingShadowCommand({
      thingName,
      ...(shadowName === undefined ? {} : { shadowName }),
      payload: new TextEncoder().encode(JSON.stringify({ state })),
    }),
  );
  return (JSON.parse(decoder.decode(out.payload)) as { version: number }).version;
}

async function desiredNow(thingName: string): Promise<unknown> {
  const out = await sdk.send(new GetThingShadowCommand({ thingName }));
  return JSON.parse(decoder.decode(out.payload)).state.desired;
}

/** Waits until the element's text satisfies `test` (as the page shows it). */
async function waitText(selector: string, test: string | RegExp, timeout = 10_000): Promise<string> {
  const pattern = typeof test === 'string' ? test : test.source;
  const flags = typeof test === 'string' ? undefined : test.flags;
  await page.waitForFunction(
    ({ selector, pattern, flags, exact }) => {
      // Runs in the page (this file is type-checked without the DOM library).
      const { document } = globalThis as unknown as {
        document: { querySelector(selector: string): { textContent: string | null } | null };
      };
      const text = document.querySelector(selector)?.textContent ?? '';
      return exact ? text === pattern : new RegExp(pattern, flags).test(text);
    },
    { selector, pattern, flags, exact: typeof test === 'string' },
    { timeout },
  );
  return (await page.textContent(selector)) ?? '';
}

/** Opens the console and selects the classic shadow of `thing` through the search box. */
async function openShadow(thing: string): Promise<void> {
  await page.goto(service.consoleUrl as string);
  await page.waitForFunction('window.shadowConsole?.ready === true');
  await page.fill('#search', thing);
  await page.click(`#rows tr[data-key="${thing}/"]`);
  await waitText('#d-title', `${thing} · classic shadow`);
}

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

beforeEach(async () => {
  service = await startShadowService({ console: true });
  sdk = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  for (let i = 1; i <= 12; i++) {
    const thing = `aircon-${String(i).padStart(2, '0')}`;
    await write(thing, {
      desired: { power: 'off', targetTemp: 20 },
      reported: { power: 'off', targetTemp: 20 },
    });
  }
  await write('aircon-07', { desired: { schedule: 'weekdays' } }, 'schedule');
  device = await connectTestClient(service.mqttUrl, { clientId: 'aircon-07' });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
});

afterEach(async () => {
  await page?.close();
  await device?.close();
  sdk?.destroy();
  await service?.close();
  expect(pageErrors.splice(0)).toEqual([]);
});

describe('web console in Chromium', () => {
  it('finds a thing and shows a device report arriving live, with its MQTT messages', async () => {
    await page.goto(service.consoleUrl as string);
    await page.waitForFunction('window.shadowConsole?.ready === true');
    expect(await page.locator('#rows tr').count()).toBe(13);
    await page.fill('#search', 'aircon-07');
    expect(await page.locator('#rows tr').count()).toBe(2);
    expect(await page.textContent('#rows')).toContain('schedule');
    await page.click('#rows tr[data-key="aircon-07/"]');
    await waitText('#d-version', 'v1');
    expect(await page.textContent('#reported')).toContain('"off"');

    // The unit reports over MQTT (a real mqtt.js client on the reserved topic).
    await device.publish('$aws/things/aircon-07/shadow/update', { state: { reported: { power: 'on' } } }, 1);
    await waitText('#d-version', 'v2');
    await waitText('#reported', /power.*"on"/);
    // The list (from the fleet stream) follows.
    await waitText('#rows tr[data-key="aircon-07/"] td.num', '2');
    await page.waitForFunction(
      "[...document.querySelectorAll('#messages .msg .topic')].some((t) => t.textContent === '$aws/things/aircon-07/shadow/update')",
    );
    const messages = await page.locator('#messages .msg .topic').allTextContents();
    // Newest first: the service's answers above the device's request that caused them.
    expect(messages.slice(0, 4)).toEqual([
      '$aws/things/aircon-07/shadow/update/documents',
      '$aws/things/aircon-07/shadow/update/delta',
      '$aws/things/aircon-07/shadow/update/accepted',
      '$aws/things/aircon-07/shadow/update',
    ]);
    // Desired (off) now differs from reported (on): a delta is pending, in the list and on the shadow.
    await waitText('#d-delta', 'delta pending');
    await page.waitForSelector('#rows tr[data-key="aircon-07/"] .dot', { timeout: 10_000 });
    expect(await page.textContent('#delta')).toContain('power');
    expect(await page.textContent('#timeline')).toContain('v2');
    // The device report shows in the thing's chart as a device write.
    await waitText('#thing-totals', /device 1/);
  });

  it('edits desired as a versioned update, and resolves a conflict with a concurrent writer', async () => {
    await openShadow('aircon-03');
    await waitText('#d-version', 'v1');

    // A plain edit: version and delta change.
    await page.click('#edit');
    await page.fill('#edit-text', JSON.stringify({ power: 'on', targetTemp: 20 }));
    await page.click('#save');
    await waitText('#edit-log', /accepted as v2 after 1 attempt/);
    await waitText('#d-version', 'v2');
    await waitText('#d-delta', 'delta pending');
    expect(await page.textContent('#delta')).toMatch(/power.*"on"/);

    // Edit again, from v2; meanwhile the app (the real AWS SDK) writes another key: v3.
    await page.click('#edit');
    await waitText('#edit-base', 'editing desired as of v2');
    await write('aircon-03', { desired: { mode: 'cool' } });
    await waitText('#d-version', 'v3');
    await waitText('#edit-note', /now at v3; your edit is based on v2/);
    await page.fill('#edit-text', JSON.stringify({ power: 'on', targetTemp: 24 }, null, 2));
    await page.click('#save');
    // The stale edit meets 409, is re-applied on v3 and lands as v4; the other writer's change is kept.
    await waitText('#edit-log', /accepted as v4 after 2 attempt/);
    const log = await page.textContent('#edit-log');
    expect(log).toMatch(/attempt 1: update expecting v2/);
    expect(log).toMatch(/409 version conflict: v2 is stale/);
    expect(log).toMatch(/update expecting v3/);
    // In the order they happened, the answer last (it can overtake the streamed events).
    expect(log).toMatch(/expecting v2.*409 version conflict.*expecting v3.*accepted as v4 after 2 attempt/s);
    await waitText('#d-version', 'v4');
    expect(await desiredNow('aircon-03')).toEqual({ power: 'on', targetTemp: 24, mode: 'cool' });
    await waitText('#desired', /mode.*"cool"/);
    await waitText('#desired', /targetTemp.*24/);
    await waitText('#thing-totals', /app 4/);

    // Bad input gets the service's own answer, and changes nothing.
    await page.click('#edit');
    await page.fill('#edit-text', '{ "power": on }');
    await page.click('#save');
    await waitText('#edit-log', /400 InvalidRequestException/);
    expect(await page.textContent('#d-version')).toBe('v4');
  });
});
