// Single sign-on end to end: a real OpenID Connect provider (the certified `oidc-provider`
// library, started here on a loopback port), a real `signet serve` configured to trust it,
// and headless Chromium going through the provider's sign-in pages and back.
//
// Run: E2E_SIGNET_BIN=path/to/signet node --test oidc.test.mjs (scripts/test-console does it)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';
import { chromium } from 'playwright-core';
import { stopServer } from './server.mjs';

const out = join(dirname(fileURLToPath(import.meta.url)), 'output');
const bin = process.env.E2E_SIGNET_BIN || join(process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/signet-target'), 'debug/signet');
const ADMIN = 'admin@signet.test';
const PASSWORD = 'e2e-Oidc-password-7';
const CLIENT_SECRET = 'e2e-client-secret-that-is-long-enough';

// The provider's users; `groups` is the claim Signet maps to roles.
const ACCOUNTS = {
  alice: { name: 'Alice Auditor', preferred_username: 'alice@corp.test', email: 'alice@corp.test', groups: ['staff', 'signet-auditors'] },
  bob: { name: 'Bob Builder', preferred_username: 'bob@corp.test', email: 'bob@corp.test', groups: ['staff'] },
  // Signs in through the provider that sends its claims by userinfo only (an account belongs
  // to one provider: alice's, made through `corp`, is refused to another).
  carol: { name: 'Carol Checker', preferred_username: 'carol@corp.test', email: 'carol@corp.test', groups: ['signet-auditors'] },
  // Claims a name that belongs to Signet's local administrator.
  mallory: { name: 'Mallory', preferred_username: ADMIN, email: ADMIN, groups: ['signet-admins'] },
};

let idp;
let idpServer;
let strictServer;
let server;
let base;
let browser;
let data;
let secrets;
let serverLog = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => { const { port } = probe.address(); probe.close(() => resolve(port)); });
  });
}

function startSignet(config, port) {
  return new Promise((resolve, reject) => {
    server = spawn(bin, ['serve', '--config', config, '--data', data, '--listen', `127.0.0.1:${port}`], {
      env: { ...process.env, SIGNET_LOG: 'info' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 120_000);
    server.stderr.on('data', (chunk) => {
      log += chunk;
      serverLog += chunk;
      const m = log.match(/listening on (http:\/\/[0-9.:]+)\//);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)); });
  });
}

before(async () => {
  mkdirSync(out, { recursive: true });
  data = mkdtempSync(join(tmpdir(), 'signet-oidc-'));
  const created = spawnSync(bin, ['admin', 'create', '--user', ADMIN, '--password-stdin', '--data', data], { input: `${PASSWORD}\n` });
  assert.equal(created.status, 0, String(created.stderr));

  const [idpPort, strictPort, signetPort] = [await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${idpPort}`;
  const strictIssuer = `http://127.0.0.1:${strictPort}`;
  const callback = (name) => `http://127.0.0.1:${signetPort}/api/v1/auth/oidc/${name}/callback`;
  const findAccount = async (ctx, id) => ACCOUNTS[id] && ({ accountId: id, claims: async () => ({ sub: id, ...ACCOUNTS[id] }) });
  // A provider that follows OpenID Connect Core to the letter: the code flow's ID token names
  // the subject only; name, user name and groups come from its userinfo endpoint.
  const strict = new Provider(strictIssuer, {
    clients: [{
      client_id: 'signet', client_secret: CLIENT_SECRET, redirect_uris: [callback('corp-strict')],
      response_types: ['code'], grant_types: ['authorization_code'], token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'groups'], email: ['email'] },
    findAccount,
    cookies: { keys: ['e2e-cookie-signing-key-2'] },
  });
  strict.proxy = false;
  strictServer = strict.listen(strictPort, '127.0.0.1');
  idp = new Provider(issuer, {
    clients: [{
      client_id: 'signet', client_secret: CLIENT_SECRET,
      redirect_uris: [callback('corp'), callback('corp-wrong-secret')],
      post_logout_redirect_uris: [`http://127.0.0.1:${signetPort}/`],
      response_types: ['code'], grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'groups'], email: ['email'] },
    // Put the profile claims in the ID token (the `corp-strict` provider does not).
    conformIdTokenClaims: false,
    findAccount,
    cookies: { keys: ['e2e-cookie-signing-key'] },
  });
  idp.proxy = false;
  idpServer = idp.listen(idpPort, '127.0.0.1');

  // The secret lives outside the data directory, as an operator would keep it.
  secrets = mkdtempSync(join(tmpdir(), 'signet-oidc-secret-'));
  const secretFile = join(secrets, 'oidc-client-secret');
  writeFileSync(secretFile, `${CLIENT_SECRET}\n`, { mode: 0o600 });
  const config = join(data, 'signet.toml');
  writeFileSync(config, `
sign_in_attempts_per_minute = 1000

[[oidc]]
name = "corp"
display_name = "Corp IdP"
issuer = "${issuer}"
client_id = "signet"
client_secret_file = "${secretFile}"
redirect_url = "${callback('corp')}"
role_claim = "groups"
sign_out = true
[oidc.roles]
signet-auditors = "Security reader"
signet-admins = "Global administrator"

[[oidc]]
name = "corp-strict"
display_name = "Corp IdP (userinfo)"
issuer = "${strictIssuer}"
client_id = "signet"
client_secret_file = "${secretFile}"
redirect_url = "${callback('corp-strict')}"
role_claim = "groups"
[oidc.roles]
signet-auditors = "Security reader"

[[oidc]]
name = "corp-wrong-secret"
display_name = "Corp IdP (stale secret)"
issuer = "${issuer}"
client_id = "signet"
client_secret = "not-the-secret"
redirect_url = "${callback('corp-wrong-secret')}"
`);
  base = await startSignet(config, signetPort);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (idpServer) idpServer.close();
  if (strictServer) strictServer.close();
  if (server) await stopServer(server);
  if (data) rmSync(data, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  if (secrets) rmSync(secrets, { recursive: true, force: true });
});

/** A fresh browser (no cookies) that only talks to this machine. */
async function freshPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.route('**/*', (route) => (/^https?:\/\/127\.0\.0\.1[:/]/.test(route.request().url()) ? route.continue() : route.abort()));
  const page = await context.newPage();
  page.on('pageerror', (err) => { throw new Error(`page error: ${err.message}`); });
  return page;
}

/** Clicks the provider's button on Signet's sign-in page and signs in at the provider. */
async function ssoSignIn(page, login, { provider = 'corp', cancel = false } = {}) {
  await page.goto(`${base}/`);
  await page.click(`a.sso[data-provider="${provider}"]`);
  await page.waitForSelector('input[name=login]');
  if (cancel) {
    await page.click('text=Cancel');
  } else {
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'anything');
    await page.click('button[type=submit]');
    // First authorisation of the client: the provider asks for consent.
    await page.waitForURL((url) => url.origin === base || url.pathname.startsWith('/interaction'));
    if (new URL(page.url()).origin !== base) {
      const consent = await page.$('button:has-text("Continue")');
      if (consent) await consent.click();
    }
  }
  await page.waitForURL((url) => url.origin === base, { timeout: 20_000 });
}

async function me(page) {
  const response = await page.request.get(`${base}/api/v1/auth/me`);
  return { status: response.status(), body: response.status() === 200 ? await response.json() : null };
}

/** The sign-in log as Signet's local administrator reads it (API, with a session). */
async function adminSignIns(filter) {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: ADMIN, password: PASSWORD }),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const response = await fetch(`${base}/api/v1/signins?app=Signet%20console&limit=100&columns=id,userPrincipalName,errorCode&${filter}`, { headers: { cookie } });
  assert.equal(response.status, 200, await response.clone().text());
  const rows = (await response.json()).items;
  const who = await (await fetch(`${base}/api/v1/auth/me`, { headers: { cookie } })).json();
  return { rows, cookie, csrf: who.csrfToken };
}

/** Sign-in records are applied to the store moments after they are acknowledged: wait. */
async function eventually(filter, check) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await adminSignIns(filter);
    if (check(result.rows) || Date.now() > deadline) return result;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function detail(cookie, id) {
  const response = await fetch(`${base}/api/v1/signins/${encodeURIComponent(id)}`, { headers: { cookie } });
  assert.equal(response.status, 200);
  return response.json();
}

test('the sign-in page offers each configured provider', async () => {
  const page = await freshPage();
  await page.goto(`${base}/`);
  await page.waitForSelector('a.sso');
  const buttons = await page.$$eval('a.sso', (as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
  assert.deepEqual(buttons, [
    ['Sign in with Corp IdP', '/api/v1/auth/oidc/corp/login'],
    ['Sign in with Corp IdP (userinfo)', '/api/v1/auth/oidc/corp-strict/login'],
    ['Sign in with Corp IdP (stale secret)', '/api/v1/auth/oidc/corp-wrong-secret/login'],
  ]);
  await page.screenshot({ path: join(out, 'oidc-sign-in-page.png') });
  await page.context().close();
});

test('a user signs in at the provider and gets the role its group maps to; the sign-in is logged', async () => {
  const page = await freshPage();
  await ssoSignIn(page, 'alice');
  await page.waitForSelector('#nav a');
  const who = await me(page);
  assert.equal(who.status, 200);
  assert.equal(who.body.username, 'alice@corp.test');
  assert.equal(who.body.displayName, 'Alice Auditor');
  assert.equal(who.body.role, 'SecurityReader');
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
  assert.ok(nav.includes('Sign-ins') && nav.includes('Settings'), nav.join(', '));
  // A Security reader reads the settings and cannot change them.
  await page.click('#nav a:has-text("Settings")');
  await page.waitForSelector('form.audit-settings');
  assert.equal(await page.$('form.audit-settings button[type=submit]'), null);
  assert.equal(await page.isDisabled('input[name=isAuditEnabled]'), true);
  // The session works for the API as for password sign-ins: the CSRF token comes with /auth/me.
  assert.ok(who.body.csrfToken);
  await page.screenshot({ path: join(out, 'oidc-signed-in.png') });

  const { rows, cookie } = await eventually('userPrincipalName=alice@corp.test', (r) => r.length > 0);
  assert.equal(rows.length, 1, JSON.stringify(rows));
  assert.equal(rows[0].errorCode, 0);
  const full = await detail(cookie, rows[0].id);
  const raw = JSON.stringify(full);
  assert.match(raw, /OpenID Connect \(Corp IdP\)/);
  assert.ok(raw.includes(`"tokenIssuerName":"http://127.0.0.1:`), raw.slice(0, 400));
  await page.context().close();
});

test("claims the provider's ID token leaves out are read from its userinfo endpoint", async () => {
  const page = await freshPage();
  await ssoSignIn(page, 'carol', { provider: 'corp-strict' });
  await page.waitForSelector('#nav a');
  const who = await me(page);
  assert.equal(who.status, 200);
  assert.equal(who.body.username, 'carol@corp.test');
  assert.equal(who.body.displayName, 'Carol Checker');
  assert.equal(who.body.role, 'SecurityReader', 'the role from the groups of the userinfo answer');
  await page.context().close();
});

test('without a mapped group a user sees only their own sign-ins', async () => {
  const page = await freshPage();
  await ssoSignIn(page, 'bob');
  await page.waitForSelector('#nav a');
  const who = await me(page);
  assert.equal(who.body.username, 'bob@corp.test');
  assert.equal(who.body.role, null);
  const nav = await page.$$eval('#nav a', (as) => as.map((a) => a.textContent));
  assert.deepEqual(nav, ['My sign-ins', 'Error codes']);
  assert.equal((await page.request.get(`${base}/api/v1/signins`)).status(), 403);
  const mine = await (await page.request.get(`${base}/api/v1/me/signins`)).json();
  assert.ok(mine.items.length >= 1 && mine.items.every((s) => s.userPrincipalName === 'bob@corp.test'), JSON.stringify(mine));
  await page.context().close();
});

test('the provider decides the role on every sign-in', async () => {
  ACCOUNTS.bob.groups = ['staff', 'signet-admins'];
  try {
    const page = await freshPage();
    await ssoSignIn(page, 'bob');
    await page.waitForSelector('#nav a');
    assert.equal((await me(page)).body.role, 'GlobalAdministrator');
    await page.context().close();
  } finally {
    ACCOUNTS.bob.groups = ['staff'];
  }
  const page = await freshPage();
  await ssoSignIn(page, 'bob');
  await page.waitForSelector('#nav a');
  assert.equal((await me(page)).body.role, null, 'demoted at the provider, demoted in Signet');
  await page.context().close();
});

test('signing out of Signet signs out of the provider too (sign_out)', async () => {
  const page = await freshPage();
  await ssoSignIn(page, 'bob');
  await page.waitForSelector('button.signout');
  // Signet's session ends, then the provider asks to confirm its own sign-out.
  const endSession = page.waitForRequest((r) => new URL(r.url()).pathname.startsWith('/session/end'));
  await page.click('button.signout');
  const asked = new URL((await endSession).url()).searchParams;
  assert.match(asked.get('id_token_hint') || '', /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/, 'the ID token of the sign-in as the hint');
  assert.equal(asked.get('client_id'), 'signet');
  assert.equal(asked.get('post_logout_redirect_uri'), `${base}/`);
  await page.waitForSelector('button[name=logout]');
  assert.equal((await page.context().request.get(`${base}/api/v1/auth/me`)).status(), 401, 'the Signet session ended first');
  await page.click('button[name=logout]');
  await page.waitForURL((url) => url.origin === base, { timeout: 20_000 });
  await page.waitForSelector('input[name=username]');
  // The provider's session is over: its sign-in form comes back instead of a silent sign-in.
  await page.click('a.sso[data-provider="corp"]');
  await page.waitForSelector('input[name=login]');
  await page.context().close();
});

test("a provider's user name never opens a password account", async () => {
  const page = await freshPage();
  await ssoSignIn(page, 'mallory');
  await page.waitForSelector('.login .form-error:not(:empty)');
  const message = await page.textContent('.login .form-error');
  assert.match(message, /AADSTS50020/);
  assert.equal((await me(page)).status, 401);
  assert.ok(!new URL(page.url()).search.includes('sso_error'), 'the error leaves the address bar');
  const { rows } = await eventually('status=failure&errorCode=50020', (r) => r.length > 0);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].userPrincipalName, ADMIN);
  await page.context().close();
});

test('a disabled account is refused with 50057', async () => {
  const { cookie, csrf } = await adminSignIns('status=success');
  const users = await (await fetch(`${base}/api/v1/users`, { headers: { cookie } })).json();
  const alice = users.value.find((u) => u.username === 'alice@corp.test');
  assert.equal(alice.identityProvider, 'corp');
  assert.equal(alice.hasPassword, false);
  const patched = await fetch(`${base}/api/v1/users/${alice.id}`, {
    method: 'PATCH', headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' }, body: JSON.stringify({ disabled: true }),
  });
  assert.equal(patched.status, 200, await patched.text());
  const page = await freshPage();
  await ssoSignIn(page, 'alice');
  await page.waitForSelector('.login .form-error:not(:empty)');
  assert.match(await page.textContent('.login .form-error'), /AADSTS50057.*disabled/);
  const { rows } = await eventually('errorCode=50057&userPrincipalName=alice@corp.test', (r) => r.length > 0);
  assert.equal(rows.length, 1);
  await page.context().close();
});

test('cancelling at the provider, a stale client secret and a forged callback are refused and logged', async () => {
  const page = await freshPage();
  await ssoSignIn(page, 'bob', { cancel: true });
  await page.waitForSelector('.login .form-error:not(:empty)');
  assert.match(await page.textContent('.login .form-error'), /AADSTS65004/);

  await ssoSignIn(page, 'bob', { provider: 'corp-wrong-secret' });
  await page.waitForSelector('.login .form-error:not(:empty)');
  assert.match(await page.textContent('.login .form-error'), /AADSTS7000215/);
  assert.equal((await me(page)).status, 401);

  // A callback this browser did not start (login CSRF, or a replayed link).
  const forged = await fetch(`${base}/api/v1/auth/oidc/corp/callback?code=stolen&state=forged`, { redirect: 'manual' });
  assert.equal(forged.status, 303);
  assert.match(forged.headers.get('location'), /^\/\?sso_error=.*AADSTS9002313/);
  assert.doesNotMatch(forged.headers.get('set-cookie') || '', /signet_session=[^;]/, 'no session for a forged callback');

  const wanted = [65004, 7000215, 9002313];
  const { rows } = await eventually('status=failure', (r) => wanted.every((c) => r.some((x) => x.errorCode === c)));
  const codes = rows.map((r) => r.errorCode);
  for (const code of wanted) assert.ok(codes.includes(code), `${code} in ${codes}`);
  await page.context().close();
});

test('no client secret, authorisation code or token reaches the server log or the stored events', async () => {
  const { cookie } = await adminSignIns('status=success');
  let stored = '';
  for (const kind of ['signins', 'activities']) {
    const response = await fetch(`${base}/api/v1/${kind}/export?format=json&days=1`, { headers: { cookie } });
    assert.equal(response.status, 200);
    stored += await response.text();
  }
  assert.match(stored, /OpenID Connect \(Corp IdP\)/, 'the export holds the single sign-on records');
  assert.match(serverLog, /OpenID Connect/, 'the server logged the sign-ins');
  for (const secret of [CLIENT_SECRET, 'not-the-secret']) {
    assert.ok(!serverLog.includes(secret), 'client secret in the server log');
    assert.ok(!stored.includes(secret), 'client secret in stored events');
  }
  assert.doesNotMatch(serverLog + stored, /[?&]code=/, 'an authorisation code in the log or the events');
  assert.doesNotMatch(serverLog + stored, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'a JWT in the log or the events');
});
