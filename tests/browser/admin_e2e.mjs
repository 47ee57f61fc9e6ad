// End-to-end test of the admin console in headless Debian chromium, driven by playwright-core.
// Run by tests/integration/admin_browser.rs, which starts the broker and the MQTT clients and passes:
//   ADMIN_URL, ADMIN_USER, ADMIN_PASSWORD, DEVICE_ID (a client with a will), REFUSED_FILTER,
//   PUBLISH_TOPIC, SCREENSHOT_DIR.
// Exits 0 when every step passed; on failure prints the step, saves failure.png and exits 1.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) { console.error(`missing env ${k}`); process.exit(2); } return v; };
const URL = env('ADMIN_URL'), USER = env('ADMIN_USER'), PASSWORD = env('ADMIN_PASSWORD');
const DEVICE = env('DEVICE_ID'), REFUSED = env('REFUSED_FILTER'), PUB_TOPIC = env('PUBLISH_TOPIC');
const SHOTS = env('SCREENSHOT_DIR');
const TIMEOUT = 15000;

mkdirSync(SHOTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'shardmq-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 860 },
});
context.setDefaultTimeout(TIMEOUT);
const page = context.pages()[0] || await context.newPage();
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
// Console errors count, except the browser's own note on a failed fetch (the 401 of the session check
// before login is expected).
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
// The page must work with no network: any request off the admin origin fails the test.
const origin = new globalThis.URL(URL).origin;
page.on('request', (r) => { if (!r.url().startsWith(origin)) errors.push('external request: ' + r.url()); });

let step = 'start';
const shot = (name) => page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
const tab = async (name) => { await page.click(`#nav button[data-tab="${name}"]`); await page.locator(`#tab-${name}`).waitFor(); };

try {
  step = 'log in';
  await page.goto(URL);
  await page.locator('#login-form').waitFor();
  await page.fill('#login-user', USER);
  await page.fill('#login-password', PASSWORD);
  await shot('01-login');
  await page.click('#login-submit');
  await page.locator('#nav').waitFor();
  await page.locator('#figures .figure').first().waitFor();
  await page.locator('#latest-events li').first().waitFor();
  await shot('02-dashboard');

  step = 'see the connected test client';
  await tab('clients');
  const row = page.locator(`#clients-body tr[data-client="${DEVICE}"]`);
  await row.waitFor();
  await row.click();
  await page.locator('#client-details', { hasText: 'wills/' }).waitFor();
  await shot('03-clients');

  step = 'disconnect it with the button (confirm)';
  await row.locator('button', { hasText: 'Disconnect' }).click();
  await page.locator('#confirm[open]').waitFor();
  await shot('04-confirm-disconnect');
  await page.click('#confirm-ok');
  await row.waitFor({ state: 'detached' });

  step = 'create a topic';
  await tab('topics');
  await page.fill('#new-topic', 'e2e/room');
  await page.click('#create-topic');
  const topicRow = page.locator('#topics-body tr[data-topic="e2e/room"]');
  await topicRow.waitFor();
  await page.locator('#topic-msg', { hasText: 'created e2e/room' }).waitFor();
  await shot('05-topic-created');

  step = 'delete the topic';
  await topicRow.locator('button', { hasText: 'Delete' }).click();
  await page.locator('#confirm[open]').waitFor();
  await page.click('#confirm-ok');
  await topicRow.waitFor({ state: 'detached' });
  await page.locator('#topic-msg', { hasText: 'deleted e2e/room' }).waitFor();

  step = 'publish from the form and see the history update';
  await tab('publish');
  await page.fill('#pub-topic', PUB_TOPIC);
  await page.fill('#pub-payload', '21.5 from the browser');
  await page.selectOption('#pub-qos', '2');
  await page.check('#pub-retain');
  await page.click('#pub-send');
  await page.locator('#pub-history-body td', { hasText: '21.5 from the browser' }).waitFor();
  await page.fill('#pub-payload', '22.0 second value');
  await page.click('#pub-send');
  await page.locator('#pub-history-body tr').first().locator('td', { hasText: '22.0 second value' }).waitFor();
  await shot('06-publish-history');

  step = 'see the refused subscription, the forced disconnect and the QoS 2 exchanges in the events log';
  await tab('events');
  await page.locator('#events-body tr[data-type="subscription_refused"]', { hasText: REFUSED }).waitFor();
  await page.locator('#events-body tr[data-type="disconnected"]', { hasText: DEVICE }).filter({ hasText: 'forced' }).waitFor();
  await page.locator('#events-body tr[data-type="will_published"]', { hasText: DEVICE }).waitFor();
  await page.locator('#events-body tr[data-type="qos2_completed"]', { hasText: 'received from' }).first().waitFor();
  await page.locator('#events-body tr[data-type="qos2_completed"]', { hasText: 'delivered to' }).first().waitFor();
  await shot('07-events');

  step = 'topics tab shows recent publishes and history';
  await tab('topics');
  await page.locator('#recent-body td', { hasText: PUB_TOPIC }).first().waitFor();
  await shot('08-topics-recent');

  step = 'narrow window';
  await page.setViewportSize({ width: 390, height: 844 });
  await tab('clients');
  await page.locator('#clients-body tr').first().waitFor();
  await shot('09-narrow-clients');
  await tab('dashboard');
  await shot('10-narrow-dashboard');

  if (errors.length) throw new Error('page errors: ' + errors.join('; '));
  console.log('admin e2e: all steps passed');
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.error(`admin e2e FAILED at step "${step}": ${e.message}`);
  if (errors.length) console.error('page errors: ' + errors.join('; '));
  try { await shot('failure'); } catch (_) { /* browser gone */ }
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
