// The acceptance path of API keys and websites (SPEC 2.1, 2.4, 2.5, 5) in headless Chromium,
// against the release executable:
// - log in → profile menu → API Keys → name → Generate API Key → the key is shown once with a
//   copy button → after a reload only its prefix, name, created and last used are shown → the
//   key works against /api/v1/account → Regenerate (confirmed) → the old key fails at once and
//   the new one works → Revoke API Key in the Danger Zone (confirmed) → it fails → the security
//   activity lists those actions;
// - the websites page: empty state, an invalid domain refused under its field, a pasted URL
//   normalised, the snippet and its copy button, a duplicate refused (409), the activity, and
//   a direct visit of /websites/<id>;
// - the same by keyboard only, and at phone width.
// Screenshots of each step: target/screenshots/keys-*.png and websites-*.png.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  foreignRequests, launchBrowser, newPage, problemsOf, screenshot, startServer, viewportScreenshot,
} from './harness.mjs';

const ACCOUNT = {
  firstName: 'Grace',
  lastName: 'Hopper',
  email: 'grace@example.test',
  password: 'compiler passphrase 1952',
};

const KEY_FORMAT = /^bj_live_[0-9a-f]{64}$/;

let server;
let browser;
// Every secret the pages showed: none may ever appear in the server's output (SPEC 8.1).
const secrets = [];

before(async () => {
  server = await startServer({ binary: true });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** A page whose context may read and write the clipboard of the server's origin. */
async function clipboardPage(options) {
  const page = await newPage(browser, options);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  return page;
}

const clipboardText = (page) => page.evaluate(() => navigator.clipboard.readText());
const activeId = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);
const scrollWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

/** GET /api/v1/account from Node with an API key: {status, headers, json}. */
async function accountWithKey(key) {
  const response = await fetch(`${server.base}/api/v1/account`, {
    headers: { 'X-API-Key': key, Accept: 'application/json' },
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

async function assertKeyWorks(key, why) {
  const { status, json } = await accountWithKey(key);
  assert.equal(status, 200, `${why}: ${JSON.stringify(json)}`);
  assert.equal(json.data.email, ACCOUNT.email, why);
}

async function assertKeyRefused(key, why) {
  const { status, headers, json } = await accountWithKey(key);
  assert.equal(status, 401, `${why}: ${JSON.stringify(json)}`);
  assert.equal(headers.get('www-authenticate'), 'Bearer realm="jetrack"', why);
  assert.equal(json.success, false, why);
}

/**
 * Where the page still holds `secret`: its serialised HTML (`page.content()`), the value of
 * any form field (a property, not in the HTML), its visible text, or web storage.
 */
async function placesHolding(page, secret) {
  const places = [];
  if ((await page.content()).includes(secret)) places.push('page.content()');
  places.push(...await page.evaluate((s) => {
    const found = [];
    for (const field of document.querySelectorAll('input, textarea')) {
      if (field.value.includes(s)) found.push(`#${field.id || field.name || field.tagName} value`);
    }
    if (document.body.innerText.includes(s)) found.push('body text');
    for (const [name, storage] of [['localStorage', localStorage], ['sessionStorage', sessionStorage]]) {
      for (let i = 0; i < storage.length; i += 1) {
        if (storage.getItem(storage.key(i)).includes(s)) found.push(name);
      }
    }
    return found;
  }, secret));
  return places;
}

/** A call from inside the page with its session (GET only: no CSRF token needed). */
function pageGet(page, path) {
  return page.evaluate(async (p) => {
    const response = await fetch(`/api/v1${p}`, { headers: { Accept: 'application/json' } });
    return { status: response.status, body: await response.json() };
  }, path);
}

async function openProfileMenu(page) {
  const button = page.locator('#profile-menu-button');
  await button.click();
  await page.locator('#profile-menu').waitFor({ state: 'visible' });
  assert.equal(await button.getAttribute('aria-expanded'), 'true');
}

/** The websites page at `/`, fully loaded (list or empty state). */
async function waitForWebsites(page) {
  await page.waitForURL(`${server.base}/`);
  await page.locator('#website-empty:not([hidden]), #website-list:not([hidden])').first().waitFor();
  assert.equal(await page.title(), 'Websites · Jetrack');
}

/** Logs in through the login page; lands on the websites list. */
async function logIn(page) {
  await page.goto(`${server.base}/login`);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  await page.locator('#login-email').fill(ACCOUNT.email);
  await page.locator('#login-password').fill(ACCOUNT.password);
  await page.locator('#login-submit').click();
  await waitForWebsites(page);
}

/** Settings → API Keys with the list loaded. */
async function waitForKeyList(page) {
  await page.locator('#api-key-loading').waitFor({ state: 'hidden' });
  await page.locator('#api-key-empty:not([hidden]), #api-key-list:not([hidden])').first().waitFor();
}

const keyRow = (page, id) => page.locator(`#api-key-list tbody tr[data-key-id="${id}"]`);
const cell = (row, label) => row.locator(`td[data-label="${label}"]`);

/** Asserts what a key's row shows: prefix, name, a created date, and last used. */
async function assertKeyRow(page, id, { prefix, name, lastUsed }) {
  const row = keyRow(page, id);
  await row.waitFor({ state: 'visible' });
  assert.equal((await cell(row, 'Key').innerText()).trim(), `${prefix}…`, 'the row shows the prefix');
  assert.equal((await cell(row, 'Name').innerText()).trim(), name, 'the row shows the name');
  const created = cell(row, 'Created').locator('time');
  const createdAt = Date.parse(await created.getAttribute('datetime'));
  assert.ok(Math.abs(Date.now() - createdAt) < 10 * 60_000, 'created just now');
  assert.notEqual((await created.innerText()).trim(), '', 'a created date is shown');
  const lastUsedText = (await cell(row, 'Last used').innerText()).trim();
  if (lastUsed === 'Never') assert.equal(lastUsedText, 'Never', 'last used');
  else {
    assert.notEqual(lastUsedText, 'Never', 'last used is set');
    const at = Date.parse(await cell(row, 'Last used').locator('time').getAttribute('datetime'));
    assert.ok(Math.abs(Date.now() - at) < 10 * 60_000, `last used just now (${lastUsedText})`);
  }
}

/** Opens the confirmation of `button`; asserts its title and confirm label. */
async function openConfirm(page, button, { title, confirmLabel }) {
  await button.click();
  const dialog = page.locator('#confirm-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await page.locator('#confirm-title').innerText(), title);
  assert.equal((await page.locator('#confirm-ok').innerText()).trim(), confirmLabel);
  assert.equal(await activeId(page), 'confirm-cancel', 'the safe choice has focus');
  return dialog;
}

/** Scrolls `selector` to the top of the viewport, under the sticky top bar. */
async function scrollToTop(page, selector) {
  await page.evaluate((sel) => {
    const top = document.querySelector(sel).getBoundingClientRect().top + window.scrollY;
    const bar = document.querySelector('.topbar').getBoundingClientRect().height;
    window.scrollTo(0, top - bar - 16);
  }, selector);
}

/** The `data-action` of the activity rows once the newest is `newest`. */
async function activityActions(page, newest) {
  await page.waitForFunction(
    (action) => document.querySelector('#security-activity-list tbody tr')?.dataset.action === action,
    newest,
    { timeout: 10_000 },
  );
  return page.locator('#security-activity-list tbody tr[data-action]')
    .evaluateAll((rows) => rows.map((row) => row.dataset.action));
}

test('API keys: generate, shown once, used, regenerate, revoke, activity (1280x800)', async () => {
  const { base } = server;
  const page = await clipboardPage({ width: 1280, height: 800 });

  // The first account from the printed setup link, then log out and in through the login page.
  await page.goto(server.setupUrl);
  await page.locator('#setup-main').waitFor({ state: 'visible' });
  await page.locator('#setup-first-name').fill(ACCOUNT.firstName);
  await page.locator('#setup-last-name').fill(ACCOUNT.lastName);
  await page.locator('#setup-email').fill(ACCOUNT.email);
  await page.locator('#setup-password').fill(ACCOUNT.password);
  await page.locator('#setup-password-confirm').fill(ACCOUNT.password);
  await page.locator('#setup-form button[type="submit"]').click();
  await waitForWebsites(page);

  await openProfileMenu(page);
  await page.locator('#logout-button').click();
  await page.waitForURL(`${base}/login`);
  await logIn(page);
  await screenshot(page, 'keys-01-logged-in');

  // 1. Profile menu → API Keys: Settings, scrolled to the section, which has focus.
  await openProfileMenu(page);
  assert.equal((await page.locator('#menu-api-keys').innerText()).trim(), 'API Keys');
  await screenshot(page, 'keys-02-profile-menu');
  await page.locator('#menu-api-keys').click();
  await page.waitForURL(`${base}/settings#api-keys`);
  await waitForKeyList(page);
  assert.equal(await page.title(), 'Settings · Jetrack');
  assert.equal(await page.locator('#profile-menu').isVisible(), false, 'the menu closed');
  assert.equal(await activeId(page), 'api-keys', 'the API Keys section has focus');
  assert.ok(await page.locator('#api-keys-heading').isVisible());
  const top = await page.evaluate(() => document.getElementById('api-keys').getBoundingClientRect().top);
  assert.ok(top >= 0 && top < 200, `the API Keys section is at the top of the viewport (top ${top})`);
  assert.ok(await page.locator('#api-key-empty').isVisible(), 'no keys yet');
  assert.equal(await page.locator('#api-keys-danger').isVisible(), false, 'no Danger Zone without keys');
  assert.equal(await page.locator('#api-key-new').isVisible(), false);
  await viewportScreenshot(page, 'keys-03-section'); // as the link left it: scrolled to the section

  // 2. Generate API Key: the key once, with a copy button and a warning.
  const name = 'Reporting script';
  await page.locator('#api-key-name').fill(name);
  assert.equal((await page.locator('#api-key-generate').innerText()).trim(), 'Generate API Key');
  await page.locator('#api-key-generate').click();
  await page.locator('#api-key-new').waitFor({ state: 'visible' });
  const key1 = await page.locator('#api-key-new-value').inputValue();
  secrets.push(key1);
  assert.match(key1, KEY_FORMAT);
  assert.equal(await page.locator('#api-key-new-value').getAttribute('readonly'), '', 'read-only');
  assert.match(await page.locator('#api-key-new-warning').innerText(), /will not be shown again/);
  assert.equal(await page.locator('#api-key-name').inputValue(), '', 'the form is reset');
  const copy = page.locator('#api-key-copy');
  assert.ok(await copy.isVisible());
  await copy.click();
  await page.locator('#api-key-copy-status').getByText('Copied to the clipboard').waitFor();
  assert.equal(await clipboardText(page), key1, 'the copy button puts the key on the clipboard');
  assert.equal((await copy.innerText()).trim(), 'Copied');

  const listed = await pageGet(page, '/account/api-keys');
  assert.equal(listed.status, 200);
  assert.equal(listed.body.data.length, 1);
  const keyId = listed.body.data[0].id;
  assert.equal(listed.body.data[0].prefix, key1.slice(0, 12));
  assert.equal(listed.body.data[0].name, name);
  assert.equal(JSON.stringify(listed.body).includes(key1), false, 'the list never holds the key');
  // The check used after the reload sees the key while it is shown.
  assert.deepEqual(await placesHolding(page, key1.slice(12)), ['#api-key-new-value value']);
  await assertKeyRow(page, keyId, { prefix: key1.slice(0, 12), name, lastUsed: 'Never' });
  assert.ok(await page.locator('#api-keys-danger').isVisible(), 'the Danger Zone shows');
  await screenshot(page, 'keys-04-generated');

  // 3. After a reload only the prefix, name, created and last used are left.
  await page.reload();
  await waitForKeyList(page);
  await assertKeyRow(page, keyId, { prefix: key1.slice(0, 12), name, lastUsed: 'Never' });
  assert.equal(await page.locator('#api-key-new').isVisible(), false, 'the key is not shown again');
  assert.equal(await page.locator('#api-key-new-value').inputValue(), '');
  assert.equal((await page.content()).includes(key1), false, 'the full key is not in the page HTML');
  assert.deepEqual(await placesHolding(page, key1.slice(12)), [], 'the key is nowhere in the page');
  await screenshot(page, 'keys-05-after-reload');

  // 4. The key works against the API; its row then says when it was last used.
  await assertKeyWorks(key1, 'the new key');
  // lastUsedAt is written off the request path (src/server/api/caller.rs): wait for it.
  await page.waitForFunction(async (id) => {
    const response = await fetch('/api/v1/account/api-keys');
    const keys = (await response.json()).data;
    return keys.some((k) => k.id === id && k.lastUsedAt !== null);
  }, keyId, { timeout: 10_000, polling: 100 });
  await page.reload();
  await waitForKeyList(page);
  await assertKeyRow(page, keyId, { prefix: key1.slice(0, 12), name, lastUsed: 'recently' });
  await screenshot(page, 'keys-06-last-used');

  // 5. Regenerate Key: cancel first (nothing changes), then confirm.
  const danger = page.locator('#api-keys-danger');
  assert.equal((await danger.locator('h3').innerText()).trim(), 'Danger Zone');
  const regenerate = danger.locator(`button.api-key-regenerate[data-key-id="${keyId}"]`);
  assert.equal((await regenerate.innerText()).trim(), 'Regenerate Key');
  await openConfirm(page, regenerate, { title: 'Regenerate this API key?', confirmLabel: 'Regenerate Key' });
  await viewportScreenshot(page, 'keys-07-regenerate-dialog');
  await page.locator('#confirm-cancel').click();
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#api-key-new').isVisible(), false, 'cancel changes nothing');
  assert.equal((await cell(keyRow(page, keyId), 'Key').innerText()).trim(), `${key1.slice(0, 12)}…`);
  await assertKeyWorks(key1, 'the key after a cancelled regeneration');

  await openConfirm(page, regenerate, { title: 'Regenerate this API key?', confirmLabel: 'Regenerate Key' });
  await page.locator('#confirm-ok').click();
  await page.locator('#api-key-new').waitFor({ state: 'visible' });
  const key2 = await page.locator('#api-key-new-value').inputValue();
  secrets.push(key2);
  // The very next requests: the old secret fails at once, the new one works.
  await assertKeyRefused(key1, 'the regenerated key');
  await assertKeyWorks(key2, 'the new secret');
  assert.match(key2, KEY_FORMAT);
  assert.notEqual(key2, key1);
  assert.equal(await page.locator('#api-keys-status').innerText(),
    `Key ${key1.slice(0, 12)}… was replaced by ${key2.slice(0, 12)}…`);
  const rows = page.locator('#api-key-list tbody tr[data-key-id]');
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.first().getAttribute('data-key-id'), keyId, 'the same key, a new secret');
  assert.equal((await cell(keyRow(page, keyId), 'Key').innerText()).trim(), `${key2.slice(0, 12)}…`);
  assert.equal((await cell(keyRow(page, keyId), 'Name').innerText()).trim(), name, 'the name is kept');
  await copy.click();
  await page.locator('#api-key-copy-status').getByText('Copied to the clipboard').waitFor();
  assert.equal(await clipboardText(page), key2);
  await screenshot(page, 'keys-08-regenerated');

  // 6. Revoke API Key in the Danger Zone, confirmed: the row goes and the key fails.
  const revoke = danger.locator(`button.api-key-revoke[data-key-id="${keyId}"]`);
  assert.equal((await revoke.innerText()).trim(), 'Revoke API Key');
  await openConfirm(page, revoke, { title: 'Revoke this API key?', confirmLabel: 'Revoke API Key' });
  await viewportScreenshot(page, 'keys-09-revoke-dialog');
  await page.locator('#confirm-ok').click();
  await keyRow(page, keyId).waitFor({ state: 'detached' });
  await assertKeyRefused(key2, 'the revoked key');
  await page.locator('#api-key-empty').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#api-keys-danger').isVisible(), false);
  assert.equal(await page.locator('#api-key-new').isVisible(), false, 'the revoked key is no longer shown');
  assert.equal(await page.locator('#api-key-new-value').inputValue(), '');
  assert.equal(await page.locator('#api-keys-status').innerText(), `Key ${key2.slice(0, 12)}… (${name}) was revoked.`);
  assert.equal(await activeId(page), 'api-key-list-heading', 'focus moves to the list');
  await screenshot(page, 'keys-10-revoked');

  // 7. The security activity lists those actions, newest first.
  const actions = await activityActions(page, 'key_revoked');
  assert.deepEqual(actions.slice(0, 4), ['key_revoked', 'key_regenerated', 'key_created', 'login'],
    `activity: ${actions.join(', ')}`);
  assert.ok(actions.includes('logout'), `the logout is listed too: ${actions.join(', ')}`);
  const labels = await page.locator('#security-activity-list tbody tr td[data-label="Activity"]').allInnerTexts();
  assert.deepEqual(labels.slice(0, 4), ['API key revoked', 'API key regenerated', 'API key created', 'Signed in']);
  const log = await pageGet(page, '/account/audit-log');
  assert.deepEqual(log.body.data.slice(0, 4).map((e) => e.action), actions.slice(0, 4), 'the page shows the audit log');
  for (const secret of [key1, key2]) {
    assert.deepEqual(await placesHolding(page, secret.slice(12)), [], 'no secret left in the page');
  }
  await scrollToTop(page, '#security-activity');
  await viewportScreenshot(page, 'keys-11-activity');

  assert.deepEqual(problemsOf(page), []);
  assert.deepEqual(foreignRequests(page, base), []);
  await page.context().close();
});

test('websites: empty, invalid domain, add, copy the snippet, duplicate, activity, direct visit (1280x800)', async () => {
  const { base } = server;
  const page = await clipboardPage({ width: 1280, height: 800 });
  await logIn(page);

  // 1. The empty state.
  await page.locator('#website-empty').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#website-list').isVisible(), false);
  assert.equal(await page.locator('#nav-websites').getAttribute('aria-current'), 'page');
  assert.equal(await page.locator('#website-empty h2').innerText(), 'No websites yet');
  await screenshot(page, 'websites-01-empty');

  // 2. An invalid domain: the server's message under the field.
  const submit = async (websiteName, domain) => {
    await page.locator('#website-name').fill(websiteName);
    await page.locator('#website-domain').fill(domain);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${base}/api/v1/websites` && r.request().method() === 'POST'),
      page.locator('#website-submit').click(),
    ]);
    const body = await response.json();
    // The form has finished handling the answer when its button is back.
    await page.waitForFunction(() => !document.getElementById('website-submit').disabled);
    return { status: response.status(), body };
  };

  const invalid = await submit('Blog', 'not a domain/x');
  assert.equal(invalid.status, 400);
  const domainProblem = invalid.body.meta.errors.find((e) => e.startsWith('domain:'));
  assert.ok(domainProblem, `the server names the domain: ${JSON.stringify(invalid.body.meta)}`);
  const domainError = page.locator('#website-domain-error');
  await domainError.waitFor({ state: 'visible' });
  const serverMessage = domainProblem.slice('domain:'.length).trim();
  assert.ok((await domainError.innerText()).includes(serverMessage),
    `"${await domainError.innerText()}" shows "${serverMessage}"`);
  assert.equal(await page.locator('#website-domain').getAttribute('aria-invalid'), 'true');
  assert.equal(await activeId(page), 'website-domain', 'focus on the invalid field');
  assert.equal(await page.locator('#website-error').isVisible(), false, 'no general error');
  assert.ok(await page.locator('#website-empty').isVisible(), 'still no website');
  await screenshot(page, 'websites-02-invalid-domain');

  // 3. A pasted URL is normalised; the item shows the domain and the exact snippet.
  const added = await submit('Blog', 'https://www.Example.com/');
  assert.equal(added.status, 201, JSON.stringify(added.body));
  const websiteId = added.body.data.id;
  const snippet = `<script defer src="${base}/js/jetrack.js" data-website-id="${websiteId}"></script>`;
  assert.equal(added.body.data.domain, 'example.com');
  assert.equal(added.body.data.trackingSnippet, snippet);
  const items = page.locator('#website-list > li[data-website-id]');
  await items.first().waitFor({ state: 'visible' });
  assert.equal(await items.count(), 1);
  const item = page.locator(`#website-list > li[data-website-id="${websiteId}"]`);
  assert.equal(await item.locator('.website-link').innerText(), 'Blog');
  assert.equal(await item.locator('.website-domain').innerText(), 'example.com');
  assert.equal(await item.locator('code.snippet-code').innerText(), snippet);
  assert.equal(await domainError.isVisible(), false, 'the old error is cleared');
  assert.equal(await page.locator('#website-domain').getAttribute('aria-invalid'), null);
  assert.equal(await page.locator('#website-empty').isVisible(), false);
  assert.equal(await page.locator('#website-name').inputValue(), '', 'the form is reset');
  await item.locator('button.snippet-copy').click();
  await item.locator('.snippet-status').getByText('Copied to the clipboard').waitFor();
  assert.equal(await clipboardText(page), snippet, 'exactly the snippet on the clipboard');
  await screenshot(page, 'websites-03-added');

  // 4. The same domain again: the 409 message in the form's general error.
  const duplicate = await submit('Blog again', 'example.com');
  assert.equal(duplicate.status, 409);
  const general = page.locator('#website-error');
  await general.waitFor({ state: 'visible' });
  assert.equal(await general.innerText(), duplicate.body.meta.message);
  assert.match(duplicate.body.meta.message, /example\.com/);
  assert.equal(await items.count(), 1, 'no second item');
  await screenshot(page, 'websites-04-duplicate');

  // 5. Settings lists website_created in the activity.
  await page.locator('#nav-settings').click();
  await page.waitForURL(`${base}/settings`);
  const actions = await activityActions(page, 'website_created');
  assert.equal(actions.filter((a) => a === 'website_created').length, 1, actions.join(', '));
  const first = page.locator('#security-activity-list tbody tr').first();
  assert.equal(await first.locator('td[data-label="Activity"]').innerText(), 'Website added');
  await scrollToTop(page, '#security-activity');
  await viewportScreenshot(page, 'websites-05-activity');

  // 6. /websites/<id> loaded directly (a real page load, not the in-app router).
  const direct = await page.goto(`${base}/websites/${websiteId}`);
  assert.equal(direct.status(), 200);
  await page.locator('#site-overview').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#site-name').innerText(), 'Blog');
  assert.equal(await page.locator('#site-domain').innerText(), 'example.com');
  assert.equal(await page.locator('#site-snippet').innerText(), snippet);
  assert.equal(await page.title(), 'Blog · Jetrack');
  assert.equal(await page.locator('#nav-websites').getAttribute('aria-current'), 'true');
  await page.locator('#site-snippet-copy').click();
  await page.locator('#site-overview .snippet-status').getByText('Copied to the clipboard').waitFor();
  assert.equal(await clipboardText(page), snippet);
  await screenshot(page, 'websites-06-site-page');

  assert.deepEqual(problemsOf(page, [
    { method: 'POST', url: `${base}/api/v1/websites`, status: 400 }, // "not a domain/x"
    { method: 'POST', url: `${base}/api/v1/websites`, status: 409 }, // example.com again
  ]), []);
  assert.deepEqual(foreignRequests(page, base), []);
  await page.context().close();
});

test('keyboard only: generate a key, then revoke it through the confirmation', async () => {
  const { base } = server;
  const page = await newPage(browser, { width: 1280, height: 800 });
  await logIn(page);
  await page.goto(`${base}/settings#api-keys`);
  await waitForKeyList(page);
  assert.equal(await activeId(page), 'api-keys');

  // From the focused section, Tab reaches the name field first.
  await page.keyboard.press('Tab');
  assert.equal(await activeId(page), 'api-key-name');
  await page.keyboard.type('Keyboard key');
  await page.keyboard.press('Enter');
  await page.locator('#api-key-new').waitFor({ state: 'visible' });
  const key = await page.locator('#api-key-new-value').inputValue();
  secrets.push(key);
  assert.match(key, KEY_FORMAT);
  assert.equal(await activeId(page), 'api-key-new-value', 'focus moves to the new key');
  const row = page.locator('#api-key-list tbody tr[data-key-id]');
  assert.equal(await row.count(), 1);
  const keyId = await row.first().getAttribute('data-key-id');
  assert.equal((await cell(row.first(), 'Name').innerText()).trim(), 'Keyboard key');
  await assertKeyWorks(key, 'the key made by keyboard');
  await screenshot(page, 'keys-12-keyboard-generated');

  // Tab on to this key's Revoke API Key button.
  const onRevoke = () => page.evaluate((id) => {
    const active = document.activeElement;
    return active.matches(`#api-keys-danger button.api-key-revoke[data-key-id="${id}"]`);
  }, keyId);
  const visited = [];
  for (let i = 0; i < 10 && !(await onRevoke()); i += 1) {
    await page.keyboard.press('Tab');
    const where = await page.evaluate(() => {
      const active = document.activeElement;
      return {
        name: active.id || active.textContent.trim(),
        inSection: document.getElementById('api-keys').contains(active),
      };
    });
    assert.ok(where.inSection, `Tab left the API Keys section at ${where.name}`);
    visited.push(where.name);
  }
  assert.ok(await onRevoke(), `Tab reaches the revoke button: ${visited.join(' → ')}`);
  // The new key's copy and dismiss buttons, then the Danger Zone's Regenerate and Revoke.
  assert.deepEqual(visited, ['api-key-copy', 'api-key-new-dismiss', 'Regenerate Key', 'Revoke API Key']);
  await page.keyboard.press('Enter');
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.getElementById('confirm-dialog').contains(document.activeElement)),
    true, 'focus is inside the dialog');
  assert.equal(await page.locator('#confirm-title').innerText(), 'Revoke this API key?');
  await page.keyboard.press('Tab');
  assert.equal(await activeId(page), 'confirm-ok');
  await viewportScreenshot(page, 'keys-13-keyboard-revoke-dialog');
  await page.keyboard.press('Enter');
  await keyRow(page, keyId).waitFor({ state: 'detached' });
  await page.locator('#confirm-dialog').waitFor({ state: 'hidden' });
  await assertKeyRefused(key, 'the key revoked by keyboard');
  assert.equal(await activeId(page), 'api-key-list-heading');
  await page.locator('#api-key-empty').waitFor({ state: 'visible' });
  await screenshot(page, 'keys-14-keyboard-revoked');

  assert.deepEqual(problemsOf(page), []);
  assert.deepEqual(foreignRequests(page, base), []);
  await page.context().close();
});

test('API keys and websites fit a phone screen (390x844)', async () => {
  const { base } = server;
  const page = await newPage(browser, { width: 390, height: 844, isMobile: true, hasTouch: true });
  await logIn(page);

  // The websites page with one website and its snippet.
  await page.locator('#website-list > li[data-website-id]').first().waitFor({ state: 'visible' });
  assert.ok(await scrollWidth(page) <= 390, `websites page is ${await scrollWidth(page)} px wide`);
  await screenshot(page, 'websites-phone-websites');

  // Settings → API Keys with a new key shown, its row and the Danger Zone: the widest state.
  await openProfileMenu(page);
  await page.locator('#menu-api-keys').click();
  await page.waitForURL(`${base}/settings#api-keys`);
  await waitForKeyList(page);
  await page.locator('#api-key-name').fill('Phone key');
  await page.locator('#api-key-generate').click();
  await page.locator('#api-key-new').waitFor({ state: 'visible' });
  secrets.push(await page.locator('#api-key-new-value').inputValue());
  await page.locator('#api-keys-danger').waitFor({ state: 'visible' });
  assert.ok(await scrollWidth(page) <= 390, `settings page is ${await scrollWidth(page)} px wide`);
  for (const selector of ['#api-key-new', '#api-key-copy', '#api-key-list', '#api-keys-danger']) {
    const box = await page.locator(selector).boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `${selector} fits the screen: ${JSON.stringify(box)}`);
  }
  await screenshot(page, 'keys-phone-api-keys');

  assert.deepEqual(problemsOf(page), []);
  assert.deepEqual(foreignRequests(page, base), []);
  await page.context().close();
});

test('the server stops cleanly and never printed a key', async () => {
  const { code, signal } = await server.stop();
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.stderr());
  assert.doesNotMatch(server.stderr(), /panicked|ERROR/);
  assert.equal(secrets.length, 4);
  const output = server.stdout() + server.stderr();
  for (const secret of secrets) {
    assert.equal(output.includes(secret.slice(8)), false, 'an API key secret in the server output');
  }
});
