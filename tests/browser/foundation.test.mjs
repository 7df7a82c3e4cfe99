// The acceptance path of the foundation: on a fresh clone, the README's first command starts
// the server and prints the setup link; a headless Chromium opens it, creates the first
// account, logs out, logs in again, changes the password, and saves screenshots of each page
// (target/screenshots/*.png).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  foreignRequests, launchBrowser, newPage, problemsOf, screenshot, startServer,
} from './harness.mjs';

const CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const ACCOUNT = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  email: 'ada@example.test',
  password: 'first passphrase 1815',
  newPassword: 'second passphrase 1852',
};

let server;
let browser;
// The account's password as the tests go; the phone test logs in with whatever it is then.
let currentPassword = ACCOUNT.password;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** Every HTML document the page loads, with its response headers, for the header checks. */
function recordDocuments(page) {
  const documents = [];
  page.on('response', (response) => {
    if (response.request().resourceType() === 'document') {
      documents.push({
        url: response.url(),
        path: new URL(response.url()).pathname,
        status: response.status(),
        headers: response.headers(),
      });
    }
  });
  return documents;
}

function assertSecurityHeaders(document) {
  const where = `${document.path} (${document.status})`;
  const h = document.headers;
  assert.match(h['content-type'] || '', /^text\/html/, `${where}: content-type`);
  assert.equal(h['content-security-policy'], CSP, `${where}: Content-Security-Policy`);
  assert.equal(h['x-content-type-options'], 'nosniff', `${where}: X-Content-Type-Options`);
  const referrer = document.path === '/setup' ? 'no-referrer' : 'strict-origin-when-cross-origin';
  assert.equal(h['referrer-policy'], referrer, `${where}: Referrer-Policy`);
  assert.equal(h['access-control-allow-origin'], undefined, `${where}: no CORS header`);
}

/** A call to the API from Node (outside the browser), with an optional session cookie. */
async function apiCall(method, path, { cookie, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (cookie) headers.Cookie = cookie;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${server.base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

/** `jetrack_session=<token>` from a Set-Cookie answer. */
function sessionCookieOf(response) {
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith('jetrack_session='));
  assert.ok(setCookie, 'the login answer sets jetrack_session');
  return setCookie.split(';')[0];
}

async function sessionCookie(page) {
  const cookies = await page.context().cookies(server.base);
  return cookies.find((c) => c.name === 'jetrack_session');
}

/**
 * The settings page, fully rendered for `account`. Setup and a plain login land on the
 * websites list at `/`; from there the profile menu leads to Settings.
 */
async function waitForSettings(page, email) {
  await page.waitForURL((url) => url.pathname === '/settings' || url.pathname === '/');
  if (new URL(page.url()).pathname === '/') {
    await page.locator('#website-empty:not([hidden]), #website-list:not([hidden])').first().waitFor();
    await openProfileMenu(page);
    await page.locator('#menu-settings').click();
    await page.waitForURL(`${server.base}/settings`);
  }
  await page.locator('#profile-form').waitFor({ state: 'visible' });
  await assertValue(page, '#profile-email', email);
  await page.locator('#profile-area').waitFor({ state: 'visible' });
  assert.equal(await page.title(), 'Settings · Jetrack');
}

async function assertValue(page, selector, value) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.value === want,
    [selector, value],
    { timeout: 10_000 },
  ).catch(async () => {
    const got = await page.locator(selector).inputValue().catch(() => '(missing)');
    assert.fail(`${selector} should hold ${JSON.stringify(value)}, has ${JSON.stringify(got)}`);
  });
}

async function openProfileMenu(page) {
  const button = page.locator('#profile-menu-button');
  await button.click();
  await page.locator('#profile-menu').waitFor({ state: 'visible' });
  assert.equal(await button.getAttribute('aria-expanded'), 'true');
}

/** Logs out from the profile menu; resolves to the /login document response. */
async function logOut(page) {
  await openProfileMenu(page);
  const [loginDocument] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${server.base}/login`
      && r.request().resourceType() === 'document'),
    page.locator('#logout-button').click(),
  ]);
  await page.waitForURL(`${server.base}/login`);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  return loginDocument;
}

async function fillLogin(page, email, password) {
  await page.locator('#login-email').fill(email);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-form button[type="submit"]').click();
}

async function assertLoginRefused(page) {
  const error = page.locator('#login-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.innerText(), /invalid email or password/i);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(await page.locator('#login-password').inputValue(), '', 'the wrong password is cleared');
  assert.equal((await sessionCookie(page)), undefined, 'no session cookie after a refused login');
}

test('first account, log out, log in, change the password (README command, 1280x800)', async () => {
  const { base, setupUrl } = server;
  assert.match(setupUrl, /^http:\/\/127\.0\.0\.1:\d+\/setup\?token=[0-9a-f]{64}$/);
  assert.ok(setupUrl.startsWith(`${base}/setup?token=`), `${setupUrl} is on ${base}`);

  const page = await newPage(browser, { width: 1280, height: 800 });
  const documents = recordDocuments(page);

  // 1. The setup page from the printed link.
  const setupResponse = await page.goto(setupUrl);
  assert.equal(setupResponse.status(), 200);
  assert.equal(await page.title(), 'Set up · Jetrack');
  await page.locator('#setup-main').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#setup-main h1').innerText(), 'Welcome to Jetrack');
  assert.equal(setupResponse.headers()['referrer-policy'], 'no-referrer');
  await screenshot(page, 'desktop-01-setup');

  await page.locator('#setup-first-name').fill(ACCOUNT.firstName);
  await page.locator('#setup-last-name').fill(ACCOUNT.lastName);
  await page.locator('#setup-email').fill(ACCOUNT.email);
  await page.locator('#setup-password').fill(ACCOUNT.password);
  await page.locator('#setup-password-confirm').fill(ACCOUNT.password);
  await page.locator('#setup-form button[type="submit"]').click();

  // 2. Logged in on the settings page.
  await waitForSettings(page, ACCOUNT.email);
  await assertValue(page, '#profile-first-name', ACCOUNT.firstName);
  await assertValue(page, '#profile-last-name', ACCOUNT.lastName);
  assert.equal(await page.locator('#profile-name').innerText(), `${ACCOUNT.firstName} ${ACCOUNT.lastName}`);
  await screenshot(page, 'desktop-02-settings-after-setup');

  const cookie = await sessionCookie(page);
  assert.ok(cookie, 'the setup sets the session cookie jetrack_session');
  assert.equal(cookie.httpOnly, true, 'HttpOnly');
  assert.equal(cookie.sameSite, 'Lax', 'SameSite=Lax');
  assert.equal(cookie.path, '/', 'Path=/');
  assert.equal(cookie.secure, false, 'no Secure on plain http');
  assert.equal(cookie.domain, '127.0.0.1', 'host-only cookie (no Domain)');
  assert.match(cookie.value, /^[0-9A-Za-z_-]{20,}$/);
  const setupSession = `jetrack_session=${cookie.value}`;

  // The setup link is used up.
  const setupState = await page.evaluate(async () => (await fetch('/api/v1/auth/setup')).json());
  assert.deepEqual(setupState.data, { needed: false });

  // 3. The profile menu, then log out.
  await openProfileMenu(page);
  assert.equal(await page.locator('#menu-settings').getAttribute('href'), '/settings');
  assert.equal((await page.locator('#menu-api-keys').innerText()).trim(), 'API Keys');
  assert.equal(await page.locator('#menu-api-keys').getAttribute('href'), '/settings#api-keys');
  assert.equal((await page.locator('#logout-button').innerText()).trim(), 'Log out');
  assert.equal(await page.locator('#menu-email').innerText(), ACCOUNT.email);
  await screenshot(page, 'desktop-03-profile-menu');
  // Close it again (Escape) to check the disclosure closes, then log out.
  await page.keyboard.press('Escape');
  await page.locator('#profile-menu').waitFor({ state: 'hidden' });

  const loginDocument = await logOut(page);
  assert.equal(loginDocument.status(), 200);
  assert.equal(loginDocument.headers()['referrer-policy'], 'strict-origin-when-cross-origin');
  assert.equal(await page.title(), 'Log in · Jetrack');
  assert.equal(await sessionCookie(page), undefined, 'logout clears the cookie');
  await screenshot(page, 'desktop-04-login-after-logout');

  // Logout ended the session on the server, not only in the browser.
  assert.equal((await apiCall('GET', '/auth/session', { cookie: setupSession })).status, 401);

  // 4. Without a session, /settings sends the browser to the login page.
  await page.goto(`${base}/settings`);
  await page.waitForURL(`${base}/login?next=%2Fsettings`);
  await page.locator('#login-form').waitFor({ state: 'visible' });

  // 5. A wrong password is refused with a message.
  await fillLogin(page, ACCOUNT.email, 'not the password at all');
  await assertLoginRefused(page);
  await screenshot(page, 'desktop-05-login-wrong-password');

  // 6. The right one logs in, back to the page asked for.
  await fillLogin(page, ACCOUNT.email, ACCOUNT.password);
  await waitForSettings(page, ACCOUNT.email);
  const loginCookie = await sessionCookie(page);
  assert.ok(loginCookie, 'login sets the session cookie');
  assert.notEqual(loginCookie.value, cookie.value, 'a new session token at login');

  // 7. Update the profile; the API agrees.
  await page.locator('#profile-first-name').fill('Augusta Ada');
  await page.locator('#profile-last-name').fill('King');
  await page.locator('#profile-form button[type="submit"]').click();
  await page.locator('#profile-status').getByText('Profile saved').waitFor();
  const account = await page.evaluate(async () => {
    const response = await fetch('/api/v1/account', { headers: { Accept: 'application/json' } });
    return { status: response.status, body: await response.json() };
  });
  assert.equal(account.status, 200);
  assert.equal(account.body.data.firstName, 'Augusta Ada');
  assert.equal(account.body.data.lastName, 'King');
  assert.equal(account.body.data.email, ACCOUNT.email);
  assert.equal(await page.locator('#profile-name').innerText(), 'Augusta Ada King');
  await screenshot(page, 'desktop-06-settings-profile-saved');

  // Another session of the same account, which the password change must end.
  const other = await apiCall('POST', '/auth/login', {
    body: { email: ACCOUNT.email, password: ACCOUNT.password },
  });
  assert.equal(other.status, 200);
  const otherSession = sessionCookieOf(other);
  assert.equal((await apiCall('GET', '/auth/session', { cookie: otherSession })).status, 200);

  // 8. A wrong current password is refused under its field.
  await page.locator('#current-password').fill('not the password at all');
  await page.locator('#new-password').fill(ACCOUNT.newPassword);
  await page.locator('#new-password-confirm').fill(ACCOUNT.newPassword);
  await page.locator('#password-form button[type="submit"]').click();
  const currentError = page.locator('#current-password-error');
  await currentError.waitFor({ state: 'visible' });
  assert.match(await currentError.innerText(), /incorrect/i);
  assert.equal(new URL(page.url()).pathname, '/settings', 'a 400 does not log out');
  await screenshot(page, 'desktop-07-settings-wrong-current-password');

  // 9. Change the password.
  await page.locator('#current-password').fill(ACCOUNT.password);
  await page.locator('#new-password').fill(ACCOUNT.newPassword);
  await page.locator('#new-password-confirm').fill(ACCOUNT.newPassword);
  await page.locator('#password-form button[type="submit"]').click();
  await page.locator('#password-status').getByText('Password changed').waitFor();
  assert.equal(await currentError.isVisible(), false, 'the old error is cleared');
  assert.equal(await page.locator('#current-password').inputValue(), '', 'the form is reset');
  currentPassword = ACCOUNT.newPassword;
  await screenshot(page, 'desktop-08-settings-password-changed');

  assert.equal((await apiCall('GET', '/auth/session', { cookie: otherSession })).status, 401,
    'the password change ended the other session');
  const still = await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status);
  assert.equal(still, 200, 'the session that changed the password goes on');

  // 10. Log out; the old password is refused, the new one logs in.
  await logOut(page);
  await fillLogin(page, ACCOUNT.email, ACCOUNT.password);
  await assertLoginRefused(page);
  await screenshot(page, 'desktop-09-login-old-password-refused');

  await fillLogin(page, ACCOUNT.email, ACCOUNT.newPassword);
  await waitForSettings(page, ACCOUNT.email);
  await assertValue(page, '#profile-first-name', 'Augusta Ada');
  await screenshot(page, 'desktop-10-settings-new-password');

  // Every HTML page carried the security headers; /settings is not cached.
  const paths = new Set(documents.map((d) => d.path));
  for (const p of ['/setup', '/', '/login', '/settings']) assert.ok(paths.has(p), `loaded ${p}`);
  for (const document of documents) assertSecurityHeaders(document);
  for (const document of documents.filter((d) => d.path === '/settings' || d.path === '/')) {
    assert.equal(document.headers['cache-control'], 'no-store', `${document.path}: Cache-Control`);
  }

  // No console error but those of the deliberate failures, each exactly once, and nothing
  // fetched from anywhere but the server itself.
  assert.deepEqual(problemsOf(page, [
    { method: 'GET', url: `${base}/api/v1/auth/session`, status: 401 }, // /settings after logout
    { method: 'POST', url: `${base}/api/v1/auth/login`, status: 401 }, // wrong password
    { method: 'POST', url: `${base}/api/v1/account/password`, status: 400 }, // wrong current password
    { method: 'POST', url: `${base}/api/v1/auth/login`, status: 401 }, // old password
  ]), []);
  assert.deepEqual(foreignRequests(page, base), []);
  assert.ok(page.requests.length > 10, 'requests were recorded');

  await page.context().close();
});

test('login and settings fit a phone screen (390x844)', async () => {
  const { base } = server;
  const page = await newPage(browser, { width: 390, height: 844, isMobile: true, hasTouch: true });
  const documents = recordDocuments(page);
  const scrollWidth = () => page.evaluate(() => document.documentElement.scrollWidth);

  // The printed setup link is used up: it says so and points to the login page.
  await page.goto(server.setupUrl);
  await page.locator('#setup-done').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#setup-main').isVisible(), false);
  assert.ok(await scrollWidth() <= 390, `used setup page is ${await scrollWidth()} px wide`);
  await screenshot(page, 'phone-00-setup-link-used');
  await page.locator('#setup-login-link').click();

  await page.waitForURL(`${base}/login`);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  assert.ok(await scrollWidth() <= 390, `login page is ${await scrollWidth()} px wide`);
  await screenshot(page, 'phone-01-login');

  await fillLogin(page, ACCOUNT.email, currentPassword);
  await waitForSettings(page, ACCOUNT.email);
  assert.ok(await scrollWidth() <= 390, `settings page is ${await scrollWidth()} px wide`);
  await screenshot(page, 'phone-02-settings');

  await openProfileMenu(page);
  const box = await page.locator('#profile-menu').boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 390, `the profile menu fits the screen: ${JSON.stringify(box)}`);
  assert.ok(await scrollWidth() <= 390, `settings page with the menu open is ${await scrollWidth()} px wide`);
  await screenshot(page, 'phone-03-profile-menu');

  for (const document of documents) assertSecurityHeaders(document);
  assert.deepEqual(problemsOf(page), []);
  assert.deepEqual(foreignRequests(page, base), []);
  await page.context().close();
});

test('the server stops cleanly on SIGTERM', async () => {
  const { code, signal } = await server.stop();
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.stderr());
  assert.doesNotMatch(server.stderr(), /panicked|ERROR/);
});
