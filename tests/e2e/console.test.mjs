// End-to-end tests of the web console: a real `signet serve` with demo data on a loopback
// port, driven in Debian's headless Chromium by playwright-core. Screenshots of every page go
// to tests/e2e/output/ for a reviewer.
//
// Run: E2E_SIGNET_BIN=path/to/signet npm test   (scripts/test-console builds the binary and runs it)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { stopServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'output');
const bin = process.env.E2E_SIGNET_BIN || join(process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/signet-target'), 'debug/signet');
const ADMIN = 'admin@signet.test';
const PASSWORD = 'e2e-Console-password-7';
const DEMO_SIGNINS = '20000';

let server;
let base;
let browser;
let page;
let data;

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(bin, ['serve', '--demo', DEMO_SIGNINS, '--data', data, '--listen', '127.0.0.1:0'], {
      env: { ...process.env, SIGNET_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 120_000);
    server.stderr.on('data', (chunk) => {
      log += chunk;
      const m = log.match(/listening on (http:\/\/[0-9.:]+)\//);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)); });
  });
}

async function shot(name) {
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(out, `${name}.png`) });
}

/** The API as the signed-in browser session sees it (same cookie). */
async function apiGet(path) {
  const response = await page.request.get(`${base}${path}`);
  assert.equal(response.status(), 200, `${path}: ${await response.text()}`);
  return response.json();
}

async function signIn(user, password) {
  await page.goto(`${base}/`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

async function listReady() {
  await page.waitForSelector('.log-table tbody tr, .empty-state', { timeout: 20_000 });
  await page.waitForFunction(() => !document.body.classList.contains('busy'), null, { timeout: 20_000 });
}

/** The hash's query as URLSearchParams. */
function hashParams() {
  return new URLSearchParams(new URL(page.url()).hash.split('?')[1] || '');
}

function apiQuery(extra = {}) {
  const p = hashParams();
  p.delete('open');
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p.toString();
}

before(async () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  data = mkdtempSync(join(tmpdir(), 'signet-e2e-'));
  const created = spawnSync(bin, ['admin', 'create', '--user', ADMIN, '--password-stdin', '--data', data], { input: `${PASSWORD}\n` });
  assert.equal(created.status, 0, String(created.stderr));
  base = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, timezoneId: 'Europe/Paris' });
  page = await context.newPage();
  page.on('pageerror', (err) => { throw new Error(`page error: ${err.message}`); });
  await signIn(ADMIN, PASSWORD);
  await listReady();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await stopServer(server);
  if (data) rmSync(data, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

test('the console is served from the binary with a strict content security policy', async () => {
  const response = await page.request.get(`${base}/`);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  const js = await page.request.get(`${base}/assets/app.js`);
  assert.equal(js.status(), 200);
  assert.match(js.headers()['content-type'], /javascript/);
});

test('sign-ins page: default columns, newest first, histogram and facets follow the filters', async () => {
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  const headers = await page.$$eval('.log-table th', (ths) => ths.map((t) => t.textContent));
  assert.deepEqual(headers, ['Date', 'User', 'Application', 'Status', 'Risk (aggregated)', 'Authentication requirement']);
  const times = await page.$$eval('.log-table tbody time', (els) => els.map((e) => e.dateTime));
  assert.ok(times.length >= 50, `rows: ${times.length}`);
  const sorted = [...times].sort().reverse();
  assert.deepEqual(times, sorted, 'newest first');
  // dates in the viewer's zone, UTC on hover
  const title = await page.$eval('.log-table tbody time', (e) => e.title);
  assert.match(title, /Z \(UTC\)$/);
  await page.waitForSelector('.histogram svg .bar');
  await page.waitForSelector('.facets .facet');
  const count = await page.textContent('.match-count');
  const api = await apiGet(`/api/v1/signins/facets?${apiQuery({ fields: 'status' })}`);
  assert.equal(count, `${api.total.toLocaleString('en-US')} sign-ins match`);
  await shot('signins');
});

test('filter by user and status: the list, the count and the URL agree with the API', async () => {
  const top = await apiGet('/api/v1/signins/facets?fields=userPrincipalName&n=1&range=7d');
  const upn = top.facets[0].values[0].value;
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  await page.fill('input[name=user]', upn);
  await page.waitForFunction((u) => location.hash.includes(`user=${encodeURIComponent(u)}`), upn);
  await listReady();
  await page.selectOption('select[name=status]', 'failure');
  await page.waitForFunction(() => location.hash.includes('status=failure'));
  await listReady();
  const statuses = await page.$$eval('.log-table tbody td[data-col=status]', (tds) => [...new Set(tds.map((t) => t.textContent))]);
  assert.deepEqual(statuses, ['failure']);
  const expected = await apiGet(`/api/v1/signins/facets?fields=status&${apiQuery()}`);
  assert.ok(expected.total > 0, 'the busiest user has failures in a week of demo data');
  await page.waitForFunction((n) => document.querySelector('.match-count').textContent.startsWith(n), expected.total.toLocaleString('en-US'));
  const rows = await page.$$eval('.log-table tbody tr', (trs) => trs.length);
  assert.equal(rows, Math.min(expected.total, 100));
  // the view is a URL: reloading it restores filters and list
  await page.reload();
  await listReady();
  assert.equal(await page.inputValue('input[name=user]'), upn);
  assert.equal(await page.inputValue('select[name=status]'), 'failure');
  await shot('signins-filtered');
});

test('adding a column adds it to the list and adds its filter', async () => {
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  await page.click('button.columns-button');
  await page.check('dialog .column-grid input[value=ipAddress]');
  await page.click('dialog button.primary');
  await page.waitForFunction(() => location.hash.includes('ipAddress'));
  await listReady();
  const headers = await page.$$eval('.log-table th', (ths) => ths.map((t) => t.textContent));
  assert.ok(headers.includes('IP address'), headers.join(','));
  const ip = await page.$eval('.log-table tbody td[data-col=ipAddress]', (td) => td.textContent);
  await page.fill('input[name=ipAddress]', ip);
  await page.waitForFunction(() => /ipAddress=/.test(location.hash.split('columns=')[0] + location.hash.split('columns=')[1].replace(/^[^&]*/, '')));
  await listReady();
  const ips = await page.$$eval('.log-table tbody td[data-col=ipAddress]', (tds) => [...new Set(tds.map((t) => t.textContent))]);
  assert.deepEqual(ips, [ip]);
});

test('clicking a value filters by it; facets include and exclude', async () => {
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  const app = await page.$eval('.log-table tbody td[data-col=appDisplayName] button', (b) => b.textContent);
  await page.click('.log-table tbody td[data-col=appDisplayName] button');
  await page.waitForFunction(() => location.hash.includes('appDisplayName='));
  await listReady();
  const apps = await page.$$eval('.log-table tbody td[data-col=appDisplayName]', (tds) => [...new Set(tds.map((t) => t.textContent))]);
  assert.deepEqual(apps, [app]);
  assert.match(await page.textContent('.chips'), new RegExp(`Application = ${app}`));
  // exclude the top client app from the facet panel
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  await page.waitForSelector('.facets .facet');
  const before = await apiGet('/api/v1/signins/facets?fields=clientAppUsed&range=7d');
  const excluded = before.facets[0].values[0];
  const facet = page.locator('.facet', { has: page.locator('h3', { hasText: 'Client app' }) });
  await facet.locator('li').first().hover();
  await facet.locator('button.exclude').first().click();
  await page.waitForFunction(() => location.hash.includes('not.clientAppUsed='));
  await listReady();
  const expected = (before.total - excluded.count).toLocaleString('en-US');
  await page.waitForFunction((n) => document.querySelector('.match-count').textContent.startsWith(n), expected);
  assert.match(await page.textContent('.chips'), /Client app ≠/);
});

test('a facet shows more than its top 8 values on request', async () => {
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  const facet = page.locator('.facet', { has: page.locator('h3', { hasText: 'Application' }) });
  await facet.locator('li').first().waitFor();
  assert.equal(await facet.locator('li').count(), 8);
  const all = await apiGet('/api/v1/signins/facets?fields=appDisplayName&n=50&range=7d');
  assert.ok(all.facets[0].values.length > 8, 'the demo data has more than 8 applications');
  await facet.locator('button.facet-more').click();
  await page.waitForFunction((n) => [...document.querySelectorAll('.facet')].some((f) => f.querySelectorAll('li').length === n), all.facets[0].values.length);
  const shown = await facet.locator('.facet-text').allTextContents();
  assert.deepEqual(shown, all.facets[0].values.map((v) => v.value ?? '(empty)'));
  assert.equal(await facet.locator('button.facet-more').count(), 0, 'fewer than 50 values: nothing more to show');
});

test('details pane: every tab, with the error code explained', async () => {
  await page.goto(`${base}/#/signins?range=7d&status=failure`);
  await listReady();
  await page.click('.log-table tbody tr td[data-col=createdDateTime]');
  await page.waitForSelector('.details [role=tab]');
  const tabs = await page.$$eval('.details [role=tab]', (ts) => ts.map((t) => t.textContent));
  assert.deepEqual(tabs, ['Basic info', 'Location', 'Device info', 'Authentication details', 'Conditional access', 'Raw JSON']);
  assert.match(await page.textContent('.details .tab-panel'), /What it means:.*What to do:/s);
  assert.ok(await page.$('.details a[href*="login.microsoftonline.com/error?code="]'), 'a link to look the code up');
  await shot('signin-details');
  await page.click('.details [role=tab]:has-text("Location")');
  assert.match(await page.textContent('.details .tab-panel'), /best effort/);
  assert.match(await page.textContent('.details .tab-panel'), /Country or region/);
  await page.click('.details [role=tab]:has-text("Device info")');
  assert.match(await page.textContent('.details .tab-panel'), /Operating system/);
  await page.click('.details [role=tab]:has-text("Authentication details")');
  assert.match(await page.textContent('.details .tab-panel'), /Method|no authentication steps/);
  await page.click('.details [role=tab]:has-text("Conditional access")');
  assert.match(await page.textContent('.details .tab-panel'), /Status/);
  await page.click('.details [role=tab]:has-text("Raw JSON")');
  const raw = JSON.parse(await page.textContent('.details pre.json'));
  assert.equal(raw.id, hashParams().get('open'));
  assert.notEqual(raw.status.errorCode, 0);
  // keyboard: Escape closes, Enter on a focused row opens
  await page.keyboard.press('Escape');
  assert.equal(await page.isHidden('.details'), true);
  await page.focus('.log-table tbody tr:nth-child(2)');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.details [role=tab]');
  await page.keyboard.press('Escape');
});

function csvRecords(text) {
  // RFC 4180: count records, honouring quoted fields with commas, quotes and newlines.
  let records = 0;
  let quoted = false;
  let any = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) { if (c === '"') { if (text[i + 1] === '"') i++; else quoted = false; } continue; }
    if (c === '"') quoted = true;
    else if (c === '\n') { records++; any = false; continue; }
    if (c !== '\r') any = true;
  }
  return records + (any ? 1 : 0);
}

test('download CSV of everything the filters match; the script shows the same call', async () => {
  await page.goto(`${base}/#/signins?range=7d&status=failure,interrupted`);
  await listReady();
  const expected = await apiGet(`/api/v1/signins/facets?fields=status&${apiQuery()}`);
  assert.ok(expected.total > 100, 'more rows than one page');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:has-text("Download CSV")')]);
  const file = await download.path();
  const text = readFileSync(file, 'utf8');
  assert.equal(csvRecords(text) - 1, expected.total, 'every matching row, one header');
  assert.match(text.split('\n')[0], /^id,createdDateTime,userDisplayName,appDisplayName,status/);
  await page.click('button.script-button');
  const scripts = await page.$$eval('dialog pre', (ps) => ps.map((p) => p.textContent));
  assert.match(scripts[0], /curl .*\/api\/v1\/signins\/export\?.*status=failure%2Cinterrupted/s);
  assert.match(scripts[1], /signet export --server .* --status 'failure,interrupted'/s);
  await shot('script');
  await page.keyboard.press('Escape');
});

test('overview: clicking a bar of the weekly graph lists that week', async () => {
  await page.goto(`${base}/#/overview`);
  await page.waitForSelector('.card .chart .bar');
  await page.waitForSelector('.methods tbody tr');
  await shot('overview');
  const bars = page.locator('.card .chart .bar');
  const n = await bars.count();
  await bars.nth(n - 2).click();
  await page.waitForFunction(() => location.hash.startsWith('#/signins') && location.hash.includes('from='));
  await listReady();
  const params = hashParams();
  const from = new Date(params.get('from'));
  const to = new Date(params.get('to'));
  // Weeks of the viewer's zone (Europe/Paris here): Monday midnight in Paris, 7 days (± the
  // hour a clock change adds or takes).
  assert.ok(Math.abs(to - from - 7 * 86400_000) <= 3600_000, `${from.toISOString()} - ${to.toISOString()}`);
  assert.ok([22, 23].includes(from.getUTCHours()) && from.getUTCMinutes() === 0, `${from.toISOString()} is not a Paris midnight`);
  const times = await page.$$eval('.log-table tbody time', (els) => els.map((e) => e.dateTime));
  assert.ok(times.length > 0);
  for (const t of times) assert.ok(new Date(t) >= from && new Date(t) < to, `${t} in [${from.toISOString()}, ${to.toISOString()})`);
});

test('histogram: dragging across bars zooms the time range', async () => {
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  await page.waitForSelector('.histogram .bar');
  const box = await page.locator('.histogram svg').boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => location.hash.includes('from=') && !location.hash.includes('range='));
  await listReady();
  const p = hashParams();
  const span = new Date(p.get('to')) - new Date(p.get('from'));
  assert.ok(span > 0 && span < 7 * 86400_000, `zoomed span ${span}`);
});

test('applications: top apps, an app page, and a day of its sign-ins', async () => {
  await page.goto(`${base}/#/apps`);
  await page.waitForSelector('.app-card h3 a');
  await shot('applications');
  const name = await page.textContent('.app-card h3 a');
  await page.click('.app-card h3 a');
  await page.waitForSelector('.page h1');
  assert.equal(await page.textContent('.page h1'), name);
  await page.waitForSelector('.card .chart .bar');
  await shot('application');
  const bars = page.locator('.card .chart .bar');
  await bars.nth((await bars.count()) - 3).click();
  await page.waitForFunction(() => location.hash.startsWith('#/signins'));
  await listReady();
  const apps = await page.$$eval('.log-table tbody td[data-col=appDisplayName]', (tds) => [...new Set(tds.map((t) => t.textContent))]);
  assert.deepEqual(apps, [name]);
  const p = hashParams();
  const [from, to] = [new Date(p.get('from')), new Date(p.get('to'))];
  assert.ok(Math.abs(to - from - 86400_000) <= 3600_000, `${from.toISOString()} - ${to.toISOString()}`);
  assert.ok([22, 23].includes(from.getUTCHours()), `days start at midnight in Paris, not ${from.toISOString()}`);
});

test('users: search, then a user page with the sign-in pattern and list', async () => {
  await page.goto(`${base}/#/users`);
  await page.waitForSelector('.bar-list .bar-row');
  const first = await page.textContent('.bar-list .bar-row .bar-label');
  await page.fill('input[aria-label="Find a user"]', first.slice(0, 4));
  await page.waitForFunction(() => location.hash.includes('q='));
  await page.waitForSelector('.bar-list .bar-row');
  await page.click(`.bar-list .bar-row:has-text("${first}")`);
  await page.waitForSelector('.heatmap svg rect');
  await page.waitForSelector('table.mini tbody tr');
  assert.equal(await page.textContent('.page h1'), first);
  assert.match(await page.textContent('.page'), /hour of day × weekday, Europe\/Paris/);
  assert.match(await page.textContent('.page'), /Locations.*Applications.*Client apps.*Devices/s);
  await shot('user');
});

test('audit logs and activity pages use the same explorer', async () => {
  await page.goto(`${base}/#/audits?range=1m`);
  await listReady();
  assert.ok(await page.$('.log-table tbody tr'), 'demo directory audits are listed');
  await page.click('.log-table tbody tr td');
  await page.waitForSelector('.details [role=tab]');
  const tabs = await page.$$eval('.details [role=tab]', (ts) => ts.map((t) => t.textContent));
  assert.deepEqual(tabs, ['Activity', 'Initiated by', 'Targets', 'Additional details', 'Raw JSON']);
  await shot('audit-logs');
  await page.goto(`${base}/#/activities?range=24h`);
  await listReady();
  // Signet's own access log: the reads this test made are there.
  assert.match(await page.textContent('.log-table'), /SignInsListed|ReportViewed/);
  const headers = await page.$$eval('.log-table th', (ths) => ths.map((t) => t.textContent));
  assert.ok(headers.includes('Category'), `activity columns: ${headers}`);
  await page.waitForSelector('.facets .facet');
  assert.match(await page.textContent('.facets'), /Category/);
  await shot('activity');
});

test('activity reports: counts per report, exports by user, and the matching activities', async () => {
  // An export through the API is itself an export out of the system (Signet's access log).
  const exported = await page.request.get(`${base}/api/v1/signins/export?format=csv&range=24h`);
  assert.equal(exported.status(), 200);
  let expected;
  for (let i = 0; i < 50; i++) {
    expected = await apiGet('/api/v1/reports/activities/exports?days=7');
    if (expected.total > 0) break;
    await page.waitForTimeout(200);
  }
  assert.ok(expected.total > 0, 'the export is counted');
  await page.goto(`${base}/#/activity-reports?days=7`);
  await page.waitForSelector('table.activity-reports tbody tr');
  const titles = await page.$$eval('table.activity-reports tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.equal(titles.length, 10);
  assert.ok(titles.includes('Exported data out of the system') && titles.includes('Accessed custom entity'), `${titles}`);
  await page.click('text=Exported data out of the system');
  await page.waitForFunction(() => document.body.textContent.includes('By user'));
  const headings = await page.$$eval('section.card h2', (hs) => hs.map((x) => x.textContent));
  assert.ok(headings.some((x) => /^Exported data out of the system: [0-9,. ]+ activities$/.test(x)), `${headings}`);
  assert.ok((await page.textContent('main')).includes(expected.byUser[0].value), 'the top exporter is shown');
  await shot('activity-reports');
  await page.click('text=Open the list');
  await listReady();
  assert.equal(hashParams().get('report'), 'exports');
  assert.match(await page.textContent('.log-table'), /SignInsExported|ExportToExcel/);
});

test('live mode shows new sign-ins as they arrive', async () => {
  await page.goto(`${base}/#/signins?range=24h`);
  await listReady();
  await page.click('button.live-toggle');
  await page.waitForSelector('.live-banner:not([hidden])');
  await page.waitForTimeout(800);
  const csrf = (await apiGet('/api/v1/auth/me')).csrfToken;
  const key = await page.request.post(`${base}/api/v1/keys`, { headers: { 'X-CSRF-Token': csrf }, data: { name: 'e2e ingest', type: 'ingest' } });
  assert.equal(key.status(), 201, await key.text());
  const secret = (await key.json()).token;
  const now = new Date().toISOString();
  const signin = {
    id: `e2e-live-${Date.now()}`, createdDateTime: now, userPrincipalName: 'live.arrival@contoso.com', userDisplayName: 'Live Arrival',
    userId: 'live-1', appDisplayName: 'E2E Live App', appId: 'e2e-app', ipAddress: '192.0.2.55', clientAppUsed: 'Browser',
    status: { errorCode: 0 }, location: { city: 'Paris', countryOrRegion: 'FR' },
  };
  const sent = await page.request.post(`${base}/api/v1/signins`, { headers: { Authorization: `Bearer ${secret}` }, data: signin });
  assert.equal(sent.status(), 200, await sent.text());
  await page.waitForSelector('.log-table tbody tr.fresh:has-text("Live Arrival")', { timeout: 15_000 });
  assert.match(await page.textContent('.live-banner'), /1 new/);
  await shot('live');
  await page.click('button.live-toggle');
});

test('settings: an administrator changes the audit settings and the change is in the activity log', async () => {
  await page.goto(`${base}/#/settings`);
  await page.waitForSelector('form.audit-settings input[name=isReadAuditEnabled]');
  assert.equal(await page.isChecked('input[name=isReadAuditEnabled]'), true);
  await page.fill('input[name=newEntity]', 'Account');
  await page.click('button:has-text("Add entity")');
  await page.uncheck('tr[data-entity=account] input[data-switch=singleRecordAudit]');
  await page.fill('input[name=userAccessAuditingInterval]', '6');
  await page.click('form.audit-settings button[type=submit]');
  await page.waitForSelector('#toasts .toast:has-text("Audit settings saved")');
  const saved = await apiGet('/api/v1/settings/audit');
  assert.equal(saved.userAccessAuditingInterval, 6);
  assert.deepEqual(saved.entities.account, { isAuditEnabled: true, singleRecordAudit: false, multipleRecordAudit: true });
  await shot('settings');
  const log = await apiGet('/api/v1/activities?range=1d&operation=AuditSettingsChanged&columns=operation,message');
  assert.ok(log.items.some((r) => r.message.includes('UserAccessAuditingInterval: 4 -> 6') && r.message.includes('Entity account')), JSON.stringify(log.items));
});

test('settings: an administrator sets a retention policy and the change is in the activity log', async () => {
  await page.goto(`${base}/#/settings`);
  await page.waitForSelector('form.retention tr[data-log=signins] input[name="signins.hotDays"]');
  assert.match(await page.textContent('form.retention .archive-stats'), /nothing yet/);
  // Ten years hot: nothing of the demo data moves while the other tests run.
  await page.fill('input[name="signins.hotDays"]', '3650');
  await page.fill('input[name="signins.archiveDays"]', '365');
  await page.check('input[name="activities.legalHold"]');
  await page.fill('input[name="activities.hotDays"]', '3650');
  assert.equal(await page.getAttribute('input[name="accessLog.hotDays"]', 'placeholder'), 'as activities');
  await page.fill('input[name="accessLog.hotDays"]', '4000');
  await page.click('form.retention button[type=submit]');
  await page.waitForSelector('#toasts .toast:has-text("Retention saved")');
  const saved = await apiGet('/api/v1/settings/retention');
  assert.deepEqual(saved.policy.signins, { hotDays: 3650, archiveDays: 365, legalHold: false });
  assert.deepEqual(saved.policy.activities, { hotDays: 3650, legalHold: true });
  assert.deepEqual(saved.policy.accessLog, { hotDays: 4000, legalHold: false }, "Signet's own access log on its own terms");
  assert.equal(saved.policy.directoryAudits, undefined, 'an empty row is no policy: hot for ever');
  assert.equal(await page.inputValue('input[name="signins.hotDays"]'), '3650', 'the form shows what was saved');
  await shot('settings-retention');
  const log = await apiGet('/api/v1/activities?range=1d&operation=RetentionPolicyChanged&columns=operation,message');
  assert.ok(log.items.some((r) => r.message.includes('signins: kept hot for ever -> hot 3650 days, archive 365 days')), JSON.stringify(log.items));
  // Applied now rather than at the next hourly run: nothing is ten years old, nothing moves.
  await page.click('form.retention button.run-retention');
  await page.waitForSelector('#toasts .toast:has-text("Retention applied: 0 events moved")');
  await page.waitForSelector('form.retention .archive-stats dd:has-text("days moved")');
  // The access record is applied to the store moments after the run: wait for it.
  let runs;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    runs = await apiGet('/api/v1/activities?range=1d&operation=RetentionRun&columns=operation,message');
    if (runs.items.length) break;
  }
  assert.equal(runs.items.length, 1, JSON.stringify(runs.items));
});

test('saved views are kept per user', async () => {
  await page.goto(`${base}/#/signins?range=7d&status=failure`);
  await listReady();
  await page.click('button.views-button');
  await page.fill('dialog input[aria-label="View name"]', 'Failures this week');
  await page.click('dialog button[type=submit]');
  await page.waitForSelector('.toast:has-text("saved")');
  const views = await apiGet('/api/v1/me/views');
  assert.deepEqual(views.views.map((v) => [v.name, v.page]), [['Failures this week', '/signins']]);
  await page.goto(`${base}/#/signins?range=24h`);
  await listReady();
  await page.click('button.views-button');
  await page.click('dialog a:has-text("Failures this week")');
  await listReady();
  assert.equal(hashParams().get('status'), 'failure');
});

test('error code lookup', async () => {
  await page.goto(`${base}/#/errors`);
  await page.fill('input[name=code]', 'AADSTS50126');
  await page.waitForSelector('.error-info h2');
  assert.match(await page.textContent('.error-info'), /50126.*What it means.*What to do/s);
  await shot('errors');
});

test('the time zone picker: dates, custom ranges and reports follow the chosen zone', async () => {
  /** The first row's instant and its text, and how the page would write it in a zone. */
  const firstDate = () => page.$eval('.log-table tbody time', (e) => {
    const write = (timeZone) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium', timeZone }).format(new Date(e.dateTime));
    return { text: e.textContent, paris: write('Europe/Paris'), utc: write('UTC') };
  });
  await page.goto(`${base}/#/signins?range=7d`);
  await listReady();
  assert.equal(await page.$eval('select.zone', (s) => s.selectedOptions[0].textContent), 'Europe/Paris (browser)');
  let shown = await firstDate();
  assert.equal(shown.text, shown.paris);
  assert.notEqual(shown.paris, shown.utc);
  try {
    await Promise.all([page.waitForEvent('load'), page.selectOption('select.zone', 'UTC')]);
    await listReady();
    assert.equal(await page.$eval('select.zone', (s) => s.value), 'UTC', 'the choice survives the reload');
    shown = await firstDate();
    assert.equal(shown.text, shown.utc);

    // A custom range is a wall clock of the chosen zone.
    await page.selectOption('select[name=range]', 'custom');
    await page.fill('input[name=from]', '2026-11-01T10:00');
    await page.fill('input[name=to]', '2026-11-02T10:00');
    await page.click('.custom-range button');
    await page.waitForFunction(() => location.hash.includes('from='));
    await listReady();
    assert.equal(hashParams().get('from'), '2026-11-01T10:00:00.000Z');

    // Reports count days on the chosen zone's clock.
    const report = page.waitForRequest((r) => r.url().includes('/api/v1/reports/signins/timeline'));
    await page.goto(`${base}/#/overview`);
    assert.equal(new URL((await report).url()).searchParams.get('tz'), 'UTC');
  } finally {
    await page.goto(`${base}/#/signins?from=2026-11-01T10:00:00.000Z&to=2026-11-02T10:00:00.000Z`);
    await page.waitForSelector('select.zone');
    await Promise.all([page.waitForEvent('load'), page.selectOption('select.zone', '')]);
  }
  // Back on the browser's zone, the same instant reads an hour later in Paris (UTC+1 in November).
  await page.waitForSelector('input[name=from]');
  assert.equal(await page.inputValue('input[name=from]'), '2026-11-01T11:00');
  assert.equal(await page.$eval('select.zone', (s) => s.value), '');
});

test('narrow window: the menu folds and pages stay usable', async () => {
  await page.setViewportSize({ width: 420, height: 800 });
  await page.goto(`${base}/#/signins?range=24h`);
  await listReady();
  assert.equal(await page.isVisible('#nav'), false);
  await page.click('.nav-toggle');
  assert.equal(await page.isVisible('#nav a:has-text("Overview")'), true);
  await shot('narrow');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('an account without an administrator role sees only its own sign-ins', async () => {
  // The running server holds the data directory: the account is made over the API.
  const csrf = (await apiGet('/api/v1/auth/me')).csrfToken;
  const made = await page.request.post(`${base}/api/v1/users`, { headers: { 'X-CSRF-Token': csrf },
    data: { username: 'plain.user@signet.test', password: PASSWORD, role: null } });
  assert.equal(made.status(), 201, await made.text());
  await page.click('button.signout');
  await page.waitForSelector('input[name=username]');
  await signIn('plain.user@signet.test', PASSWORD);
  await listReady();
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
  assert.deepEqual(nav, ['My sign-ins', 'Error codes']);
  assert.ok(page.url().endsWith('#/me') || page.url().includes('#/me?'));
  // Their own console sign-in is in their list (events become visible within a second).
  for (let i = 0; i < 10 && !(await page.$('.log-table')); i++) {
    await page.waitForTimeout(500);
    await page.reload();
    await listReady();
  }
  assert.match(await page.textContent('.log-table'), /Signet console/);
  await page.goto(`${base}/#/signins`);
  await page.waitForSelector('.toast.error');
  assert.ok(page.url().includes('#/me'));
  await shot('own-signins');
});
