// The tracking script (SPEC 3.1, 3.2 payload, 3.4 cookie mode) in headless Chromium against
// a mock collector. Run: cd tests/tracker && node --test

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';

import {
  COUNT_WRITES, FAKE_VISIBILITY, SCRIPT_PATH, launchBrowser, newPage, startCollector, startSite,
} from './harness.mjs';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** How long a test waits before it concludes that nothing (more) was sent. */
const QUIET_MS = 700;

let collector;
let site;
let browser;

before(async () => {
  collector = await startCollector();
  site = await startSite(`${collector.origin}/js/jetrack.js`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await site?.stop();
  await collector?.stop();
});

/** A fresh website id and the snippet attributes of a tracked page on 127.0.0.1. */
function snippet(extra = {}) {
  const websiteId = randomUUID();
  return { websiteId, attrs: { 'data-website-id': websiteId, 'data-allow-localhost': 'true', ...extra } };
}

/** Open `pathAndQuery` on the site with the given snippet and wait for the script to run. */
async function open(page, pathAndQuery, options = {}) {
  await page.goto(site.origin + pathAndQuery, options);
  await page.waitForFunction(() => window.jetrack && typeof window.jetrack.track === 'function');
}

const pageviews = (list) => list.filter((e) => e.type === 'pageview');
const ofType = (type) => (list) => list.filter((e) => e.type === type);

/**
 * Run `action`, which must send nothing of `type` (a type name, or a filter of the received
 * list), then prove the pipe is still live with a sentinel event and check that nothing of
 * `type` arrived meanwhile.
 */
async function expectNone(page, websiteId, type, action) {
  const pick = typeof type === 'function' ? type : ofType(type);
  const before = pick(collector.events(websiteId)).length;
  await action();
  const sentinel = `sentinel-${randomUUID()}`;
  await page.evaluate((n) => window.jetrack.track(n), sentinel);
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === sentinel), sentinel);
  await sleep(150);
  assert.equal(pick(collector.events(websiteId)).length, before, `nothing new expected: ${type}`);
}

function assertNoProblems(page) {
  assert.deepEqual(page.problems, [], 'no uncaught exception and no console error');
}

test('the served file is at most 2,048 bytes gzipped (gzip -9)', () => {
  const file = readFileSync(SCRIPT_PATH);
  const gz = zlib.gzipSync(file, { level: 9 }).length;
  console.log(`# jetrack.js: ${file.length} bytes, ${gz} bytes gzipped (level 9)`);
  assert.ok(gz <= 2048, `gzipped size ${gz} > 2048`);
});

test('first pageview: payload shape, UTM url, referrer, screen width, language, no preflight', async () => {
  const { websiteId, attrs } = snippet();
  site.page = { attrs };
  const { context, page } = await newPage(browser, {
    screen: { width: 1440, height: 900 },
    viewport: { width: 1200, height: 800 },
    locale: 'de-CH',
  });
  const hitsBefore = collector.hits.length;
  const pagePath = '/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=launch';
  await open(page, pagePath, { referer: 'http://news.example.org/article?id=7' });
  const [pv] = await collector.waitFor(websiteId, (l) => pageviews(l).length >= 1, 'the first pageview');
  const referrer = await page.evaluate(() => document.referrer);
  assert.match(referrer, /^http:\/\/news\.example\.org\//, 'the browser kept a referrer');
  assert.deepEqual(pv, {
    type: 'pageview',
    websiteId,
    url: site.origin + pagePath,
    referrer,
    screenWidth: 1440,
    language: 'de-CH',
  });
  await sleep(QUIET_MS);
  assert.equal(pageviews(collector.events(websiteId)).length, 1, 'exactly one pageview on load');
  const hits = collector.hits.slice(hitsBefore);
  assert.ok(hits.every((h) => h.method === 'POST'), 'no CORS preflight (OPTIONS) was needed');
  const post = hits.find((h) => h.body && h.body.websiteId === websiteId);
  assert.match(post.contentType, /^text\/plain\b/, 'sendBeacon with a string body sends text/plain');
  assert.equal(post.origin, site.origin);
  assert.equal(post.cookie, '');
  assertNoProblems(page);
  await context.close();
});

test('SPA navigations: pushState, same-path push, replaceState, popstate', async () => {
  const { websiteId, attrs } = snippet();
  site.page = { attrs };
  const { context, page } = await newPage(browser);
  await open(page, '/app', { referer: 'http://news.example.org/' });
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'the load pageview');

  const urlsOf = () => pageviews(collector.events(websiteId)).map((e) => e.url);

  await page.evaluate(() => history.pushState({}, '', '/app/one'));
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 2, 'pushState #1');
  await page.evaluate(() => history.pushState({}, '', '/app/two?tab=2'));
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 3, 'pushState #2');
  assert.deepEqual(urlsOf(), [`${site.origin}/app`, `${site.origin}/app/one`, `${site.origin}/app/two?tab=2`]);
  const later = pageviews(collector.events(websiteId)).slice(1);
  assert.ok(later.every((e) => e.referrer === ''), 'SPA pageviews carry no referrer');
  assert.ok(pageviews(collector.events(websiteId))[0].referrer.startsWith('http://news.example.org/'));

  // The same URL again, and a fragment-only change without data-hash: not a new page.
  await expectNone(page, websiteId, 'pageview', () => page.evaluate(() => {
    history.pushState({}, '', '/app/two?tab=2');
    history.pushState({}, '', '/app/two?tab=2#section');
  }));
  // replaceState on the same path (even with another query) is not a new page.
  await expectNone(page, websiteId, 'pageview', () => page.evaluate(() => {
    history.replaceState({}, '', '/app/two?tab=3');
  }));

  // History is now /app, /app/one, /app/two?tab=2, /app/two?tab=2, /app/two?tab=3 (the
  // fragment entry, replaced). Back lands on another URL (?tab=2): a pageview; back again on
  // the same URL: none; back again on /app/one: a pageview.
  const back = () => page.evaluate(() => new Promise((r) => {
    addEventListener('popstate', () => r(), { once: true });
    history.back();
  }));
  await back();
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 4, 'popstate pageview #1');
  assert.equal(urlsOf()[3], `${site.origin}/app/two?tab=2`);
  await expectNone(page, websiteId, 'pageview', back);
  await back();
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 5, 'popstate pageview #2');
  assert.equal(urlsOf()[4], `${site.origin}/app/one`);

  // replaceState to another path is a new page.
  await page.evaluate(() => history.replaceState({}, '', '/app/three'));
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 6, 'replaceState to a new path');
  assert.equal(urlsOf()[5], `${site.origin}/app/three`);
  await sleep(QUIET_MS);
  assert.equal(pageviews(collector.events(websiteId)).length, 6);
  assertNoProblems(page);
  await context.close();
});

test('data-hash="true": a fragment change is a pageview, counted once', async () => {
  const { websiteId, attrs } = snippet({ 'data-hash': 'true' });
  site.page = { attrs, body: '<a id="to-b" href="#/b">b</a>' };
  const { context, page } = await newPage(browser);
  await open(page, '/spa#/a');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'load pageview');
  // A fragment link fires both popstate and hashchange: one pageview.
  await page.click('#to-b');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 2, 'hashchange pageview');
  await page.evaluate(() => { location.hash = '#/c'; });
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 3, 'second hashchange');
  await expectNone(page, websiteId, 'pageview', () => page.evaluate(() => history.pushState({}, '', '#/c')));
  await sleep(QUIET_MS);
  assert.deepEqual(pageviews(collector.events(websiteId)).map((e) => e.url),
    [`${site.origin}/spa#/a`, `${site.origin}/spa#/b`, `${site.origin}/spa#/c`]);
  assertNoProblems(page);
  await context.close();
});

test('custom events: jetrack.track, data-jetrack-event clicks, outbound links', async () => {
  const { websiteId, attrs } = snippet({ 'data-outbound-links': 'true' });
  site.page = {
    attrs,
    body: `
      <button id="dl" data-jetrack-event="Download" data-jetrack-prop-file="a.pdf"><span id="dl-inner">get</span></button>
      <div data-jetrack-event="Plan Chosen" data-jetrack-prop-plan-name="pro" data-jetrack-prop-billing="yearly"><i id="plan">choose</i></div>
      <a id="internal" href="/docs">docs</a>
      <a id="mail" href="mailto:someone@example.org">mail</a>
      <a id="out" href="${collector.origin}/landing?from=site">elsewhere</a>`,
  };
  const { context, page } = await newPage(browser);
  await open(page, '/features');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'load pageview');
  const events = () => ofType('event')(collector.events(websiteId));

  await page.evaluate(() => window.jetrack.track('Signup', { plan: 'pro' }));
  await page.evaluate(() => window.jetrack.track('No Props'));
  await collector.waitFor(websiteId, (l) => ofType('event')(l).length === 2, 'two track() events');
  const signup = events().find((e) => e.name === 'Signup');
  assert.deepEqual(signup, {
    type: 'event', websiteId, url: `${site.origin}/features`, referrer: '', screenWidth: signup.screenWidth,
    language: signup.language, name: 'Signup', props: { plan: 'pro' },
  });
  assert.equal(typeof signup.screenWidth, 'number');
  assert.ok(!('props' in events().find((e) => e.name === 'No Props')), 'no props key without props');

  // A click on a child of the tagged element counts (closest ancestor).
  await page.click('#dl-inner');
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === 'Download'), 'Download click');
  assert.deepEqual(events().find((e) => e.name === 'Download').props, { file: 'a.pdf' });
  await page.click('#plan');
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === 'Plan Chosen'), 'Plan Chosen click');
  assert.deepEqual(events().find((e) => e.name === 'Plan Chosen').props, { 'plan-name': 'pro', billing: 'yearly' });

  // Same-host and non-http links are not outbound (mailto is not followed: prevent it).
  await page.evaluate(() => document.getElementById('mail').addEventListener('click', (e) => e.preventDefault()));
  const outbound = (l) => l.filter((e) => e.name === 'Outbound Link');
  await expectNone(page, websiteId, outbound, () => page.click('#mail'));
  assert.ok(!events().some((e) => e.name === 'Outbound Link'));

  // The outbound link is followed and its event still arrives.
  await Promise.all([page.waitForURL(`${collector.origin}/landing?from=site`), page.click('#out')]);
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === 'Outbound Link'), 'Outbound Link');
  const out = events().find((e) => e.name === 'Outbound Link');
  assert.deepEqual(out.props, { url: `${collector.origin}/landing?from=site` });
  assert.equal(out.url, `${site.origin}/features`);
  assert.equal(await page.textContent('p'), 'outside the tracked site', 'navigation went ahead');

  // An internal link: navigation, then a pageview of /docs, and no outbound event.
  await page.goBack();
  await page.waitForFunction(() => window.jetrack && typeof window.jetrack.track === 'function');
  await Promise.all([page.waitForURL(`${site.origin}/docs`), page.click('#internal')]);
  await collector.waitFor(websiteId, (l) => l.some((e) => e.type === 'pageview' && e.url.endsWith('/docs')), '/docs pageview');
  await sleep(QUIET_MS);
  assert.equal(events().filter((e) => e.name === 'Outbound Link').length, 1);
  assertNoProblems(page);
  await context.close();
});

test('outbound links are not tracked without data-outbound-links="true"', async () => {
  const { websiteId, attrs } = snippet();
  site.page = { attrs, body: `<a id="out" href="${collector.origin}/landing">elsewhere</a>` };
  const { context, page } = await newPage(browser);
  await open(page, '/');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'load pageview');
  await Promise.all([page.waitForURL(`${collector.origin}/landing`), page.click('#out')]);
  await sleep(QUIET_MS);
  assert.deepEqual(ofType('event')(collector.events(websiteId)), []);
  assertNoProblems(page);
  await context.close();
});

test('heartbeats every 15 s while visible, none while hidden', async () => {
  const { websiteId, attrs } = snippet();
  site.page = { attrs };
  const { context, page } = await newPage(browser);
  await context.addInitScript(FAKE_VISIBILITY);
  // Fake timers, paused: page time moves only by runFor, so the 15 s are exact.
  await page.clock.install({ time: 1_000_000 });
  await page.clock.pauseAt(1_010_000); // ahead of the install time, which keeps ticking until then
  await open(page, '/read');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'load pageview');
  const beats = () => ofType('heartbeat')(collector.events(websiteId)).length;
  assert.equal(beats(), 0);

  await page.clock.runFor(14_999);
  await sleep(QUIET_MS);
  assert.equal(beats(), 0, 'no heartbeat before 15 s');
  await page.clock.runFor(1);
  await collector.waitFor(websiteId, (l) => ofType('heartbeat')(l).length === 1, 'heartbeat at 15 s');
  await page.clock.runFor(30_000);
  await collector.waitFor(websiteId, (l) => ofType('heartbeat')(l).length === 3, 'heartbeats at 30 s and 45 s');
  const hb = ofType('heartbeat')(collector.events(websiteId))[0];
  assert.equal(hb.websiteId, websiteId);
  assert.equal(hb.url, `${site.origin}/read`);
  assert.ok(!('name' in hb) && !('props' in hb) && !('visitorId' in hb));

  // Hidden: paused.
  await page.evaluate(() => { window.__vis = 'hidden'; document.dispatchEvent(new Event('visibilitychange')); });
  await page.clock.runFor(120_000);
  await sleep(QUIET_MS);
  assert.equal(beats(), 3, 'no heartbeat while hidden');

  // Visible again: the 15 s rhythm restarts from now.
  await page.evaluate(() => { window.__vis = 'visible'; document.dispatchEvent(new Event('visibilitychange')); });
  await page.clock.runFor(14_000);
  await sleep(QUIET_MS);
  assert.equal(beats(), 3);
  await page.clock.runFor(1_000);
  await collector.waitFor(websiteId, (l) => ofType('heartbeat')(l).length === 4, 'heartbeat after visible again');
  // A repeated "visible" does not start a second timer.
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await page.clock.runFor(15_000);
  await collector.waitFor(websiteId, (l) => ofType('heartbeat')(l).length === 5, 'one more heartbeat');
  await sleep(QUIET_MS);
  assert.equal(beats(), 5);
  assert.equal(pageviews(collector.events(websiteId)).length, 1, 'heartbeats are not pageviews');
  assertNoProblems(page);
  await context.close();
});

test('opt-outs: 127.0.0.1, localhost and file: pages send nothing without data-allow-localhost', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'jetrack-tracker-'));
  try {
    const filePage = async (attrs) => {
      const file = path.join(dir, `${randomUUID()}.html`);
      const attrText = Object.entries(attrs).map(([k, v]) => ` ${k}="${v}"`).join('');
      await writeFile(file, `<!doctype html><title>file</title><link rel="icon" href="data:,">
        <script defer src="${collector.origin}/js/jetrack.js"${attrText}></script>
        <button data-jetrack-event="X">x</button>`);
      return pathToFileURL(file).href;
    };
    const sitePort = new URL(site.origin).port;
    for (const where of ['127.0.0.1', 'localhost', 'file:']) {
      const websiteId = randomUUID();
      const attrs = { 'data-website-id': websiteId, 'data-outbound-links': 'true' };
      site.page = { attrs, body: '<button data-jetrack-event="X">x</button>' };
      const { context, page } = await newPage(browser);
      const url = where === 'file:' ? await filePage(attrs)
        : `http://${where}:${sitePort}/?utm_source=x`;
      await page.goto(url);
      await page.waitForFunction(() => window.jetrack && typeof window.jetrack.track === 'function');
      await page.evaluate(() => {
        window.jetrack.track('Signup', { plan: 'pro' });
        history.pushState({}, '', '#other');
        history.pushState({}, '', location.pathname + '?other');
      });
      await page.click('button');
      await sleep(1_000);
      assert.deepEqual(collector.events(websiteId), [], where);
      assertNoProblems(page);
      await context.close();
    }
    // The control: the same file: page with data-allow-localhost is tracked, so the silence
    // above is the opt-out and not a page that cannot load the script.
    const websiteId = randomUUID();
    const { context, page } = await newPage(browser);
    await page.goto(await filePage({ 'data-website-id': websiteId, 'data-allow-localhost': 'true' }));
    await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'file: pageview with allow-localhost');
    assert.match(collector.events(websiteId)[0].url, /^file:\/\/\//);
    await context.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('opt-outs: Do Not Track is honoured only with data-respect-dnt="true"', async () => {
  const dnt = `Object.defineProperty(Navigator.prototype, 'doNotTrack', { configurable: true, get: () => '1' });`;
  // With data-respect-dnt: silent.
  const quiet = snippet({ 'data-respect-dnt': 'true' });
  site.page = { attrs: quiet.attrs };
  let { context, page } = await newPage(browser);
  await context.addInitScript(dnt);
  await open(page, '/');
  await page.evaluate(() => window.jetrack.track('Signup'));
  // Without it: tracked as usual, in the same conditions.
  const loud = snippet();
  site.page = { attrs: loud.attrs };
  const second = await newPage(browser);
  await second.context.addInitScript(dnt);
  await open(second.page, '/');
  assert.equal(await second.page.evaluate(() => navigator.doNotTrack), '1');
  await collector.waitFor(loud.websiteId, (l) => pageviews(l).length === 1, 'pageview without respect-dnt');
  await sleep(QUIET_MS);
  assert.deepEqual(collector.events(quiet.websiteId), []);
  assertNoProblems(page);
  assertNoProblems(second.page);
  await context.close();
  await second.context.close();
});

test('opt-outs: localStorage.jetrack_ignore = "true" silences the script', async () => {
  const { websiteId, attrs } = snippet();
  site.page = { attrs };
  const { context, page } = await newPage(browser, {
    storageState: {
      cookies: [],
      origins: [{ origin: site.origin, localStorage: [{ name: 'jetrack_ignore', value: 'true' }] }],
    },
  });
  await open(page, '/');
  await page.evaluate(() => {
    window.jetrack.track('Signup');
    history.pushState({}, '', '/next');
  });
  await sleep(1_000);
  assert.deepEqual(collector.events(websiteId), []);
  // The flag is read when sending: removing it brings tracking back without a reload.
  await page.evaluate(() => { localStorage.removeItem('jetrack_ignore'); window.jetrack.track('Back'); });
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === 'Back'), 'event after the flag is removed');
  assertNoProblems(page);
  await context.close();
});

test('cookieless by default: no cookie, no storage write of any kind', async () => {
  const { websiteId, attrs } = snippet({ 'data-outbound-links': 'true', 'data-hash': 'true' });
  site.page = { attrs, body: '<button data-jetrack-event="Go" data-jetrack-prop-a="b">go</button>' };
  const { context, page } = await newPage(browser);
  await context.addInitScript(COUNT_WRITES);
  await open(page, '/');
  await page.evaluate(() => {
    window.jetrack.track('Signup', { plan: 'pro' });
    history.pushState({}, '', '/a');
    location.hash = '#x';
  });
  await page.click('button');
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === 'Go'), 'the click event');
  await page.reload();
  await page.waitForFunction(() => window.jetrack && typeof window.jetrack.track === 'function');
  await collector.waitFor(websiteId, (l) => pageviews(l).length >= 4, 'pageview after reload');
  const state = await page.evaluate(() => ({
    writes: window.__writes,
    cookie: document.cookie,
    local: localStorage.length,
    session: sessionStorage.length,
  }));
  assert.deepEqual(state, { writes: [], cookie: '', local: 0, session: 0 });
  assert.deepEqual(await context.cookies(), []);
  const all = collector.events(websiteId);
  assert.ok(all.every((e) => !('visitorId' in e)), 'no visitorId without cookie mode');
  assertNoProblems(page);
  await context.close();
});

async function checkCookieMode(page, context, websiteId, pageOrigin) {
  const [first] = await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'load pageview');
  const cookies = await context.cookies();
  assert.equal(cookies.length, 1, JSON.stringify(cookies));
  const [c] = cookies;
  assert.equal(c.name, 'bj_vid');
  assert.match(c.value, UUID_V4);
  assert.equal(c.path, '/');
  assert.equal(c.sameSite, 'Lax');
  assert.equal(c.httpOnly, false);
  assert.equal(c.domain, new URL(pageOrigin).hostname, 'a host-only first-party cookie');
  // The script asks for 730 days (Max-Age); Chromium caps every cookie at 400 days
  // (RFC 6265bis), and the script renews the cookie on every page load.
  const days = (c.expires * 1000 - Date.now()) / 86_400_000;
  assert.ok(days > 399.9 && days <= 400.01, `expires in ${days} days`);
  const written = await page.evaluate(() => window.__writes);
  assert.equal(written.length, 1, JSON.stringify(written));
  assert.match(written[0], new RegExp(`^cookie bj_vid=${c.value};Max-Age=63072000;Path=/;SameSite=Lax(;Secure)?$`));
  assert.equal(first.visitorId, c.value);

  await page.evaluate(() => window.jetrack.track('Signup', { plan: 'pro' }));
  await collector.waitFor(websiteId, (l) => l.some((e) => e.name === 'Signup'), 'event');
  assert.equal(collector.events(websiteId).find((e) => e.name === 'Signup').visitorId, c.value);

  await page.reload();
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 2, 'pageview after reload');
  assert.equal(pageviews(collector.events(websiteId))[1].visitorId, c.value, 'same visitor after reload');
  const after = await context.cookies();
  assert.equal(after.length, 1);
  assert.equal(after[0].value, c.value);
  return c;
}

test('cookie mode: bj_vid cookie, sent as visitorId, kept across reloads', async () => {
  const { websiteId, attrs } = snippet({ 'data-cookie-mode': 'true' });
  site.page = { attrs };
  const { context, page } = await newPage(browser);
  await context.addInitScript(COUNT_WRITES);
  await open(page, '/');
  const c = await checkCookieMode(page, context, websiteId, site.origin);
  assert.equal(c.secure, false, 'not Secure on an http page');
  // A new browser profile is a new visitor.
  const other = await newPage(browser);
  await open(other.page, '/');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 3, 'the other visitor');
  const third = pageviews(collector.events(websiteId))[2].visitorId;
  assert.match(third, UUID_V4);
  assert.notEqual(third, c.value);
  assertNoProblems(page);
  assertNoProblems(other.page);
  await context.close();
  await other.context.close();
});

test('cookie mode without crypto.randomUUID (insecure contexts): getRandomValues fallback', async () => {
  const { websiteId, attrs } = snippet({ 'data-cookie-mode': 'true' });
  site.page = { attrs };
  const { context, page } = await newPage(browser);
  await context.addInitScript(() => { delete Crypto.prototype.randomUUID; });
  await context.addInitScript(COUNT_WRITES);
  await open(page, '/');
  assert.equal(await page.evaluate(() => typeof crypto.randomUUID), 'undefined');
  await checkCookieMode(page, context, websiteId, site.origin);
  assertNoProblems(page);
  await context.close();
});

test('cookie mode on an https site: the cookie is Secure; a real domain needs no allow-localhost', async () => {
  const websiteId = randomUUID();
  const shop = 'https://shop.example.com';
  const stats = 'https://stats.example.net';
  const { context, page } = await newPage(browser);
  // Both https origins are simulated by request interception (an https page may not reach
  // 127.0.0.1); the collector's route records the posts with the others.
  await collector.routeAs(context, stats);
  await context.addInitScript(COUNT_WRITES);
  await context.route(`${shop}/**`, (route) => route.fulfill({
    status: 200,
    contentType: 'text/html; charset=utf-8',
    body: `<!doctype html><title>shop</title><link rel="icon" href="data:,"><script defer src="${stats}/js/jetrack.js"
      data-website-id="${websiteId}" data-cookie-mode="true"></script><h1>shop</h1>`,
  }));
  await page.goto(`${shop}/cart?utm_source=ads`);
  await page.waitForFunction(() => window.jetrack && typeof window.jetrack.track === 'function');
  const c = await checkCookieMode(page, context, websiteId, shop);
  assert.equal(c.secure, true, 'Secure on an https page');
  assert.equal(pageviews(collector.events(websiteId))[0].url, `${shop}/cart?utm_source=ads`);
  assertNoProblems(page);
  await context.close();
});

test('without navigator.sendBeacon, or when it refuses, fetch delivers (once)', async () => {
  for (const [label, init] of [
    ['missing', () => { delete Navigator.prototype.sendBeacon; }],
    ['refusing', () => { Navigator.prototype.sendBeacon = () => false; }],
  ]) {
    const { websiteId, attrs } = snippet();
    site.page = { attrs };
    const { context, page } = await newPage(browser);
    await context.addInitScript(init);
    const hitsBefore = collector.hits.length;
    await open(page, '/fallback');
    await page.evaluate(() => window.jetrack.track('Signup', { plan: 'pro' }));
    await collector.waitFor(websiteId, (l) => l.length === 2, `pageview and event by fetch (${label})`);
    await sleep(QUIET_MS);
    const list = collector.events(websiteId);
    assert.equal(list.length, 2, `no duplicate (${label})`);
    assert.equal(list[0].url, `${site.origin}/fallback`);
    assert.deepEqual(list.find((e) => e.type === 'event').props, { plan: 'pro' });
    const hits = collector.hits.slice(hitsBefore);
    assert.ok(hits.every((h) => h.method === 'POST'), 'no preflight');
    for (const h of hits.filter((x) => x.body && x.body.websiteId === websiteId)) {
      assert.match(h.contentType, /^text\/plain\b/);
      assert.equal(h.cookie, '');
    }
    assertNoProblems(page);
    await context.close();
  }
});

test('data-host-url: the script served from elsewhere posts to the given host', async () => {
  const { websiteId, attrs } = snippet({ 'data-host-url': `${collector.origin}/` });
  // The script comes from the site's own origin; without data-host-url it would post there.
  site.page = { attrs, scriptSrc: '/js/jetrack.js' };
  const { context, page } = await newPage(browser);
  await open(page, '/self-hosted-script');
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'pageview at the host url');
  assertNoProblems(page);
  await context.close();
});

test('no data-website-id: nothing is sent, jetrack.track is a harmless no-op', async () => {
  site.page = { attrs: { 'data-allow-localhost': 'true' } };
  const { context, page } = await newPage(browser);
  const hitsBefore = collector.hits.length;
  await open(page, '/');
  await page.evaluate(() => window.jetrack.track('Signup'));
  await sleep(1_000);
  assert.deepEqual(collector.hits.slice(hitsBefore), []);
  assertNoProblems(page);
  await context.close();
});

test('a prerendered page counts when it is shown, not before', async () => {
  const { websiteId, attrs } = snippet();
  site.page = { attrs };
  const { context, page } = await newPage(browser);
  await context.addInitScript(() => {
    window.__pre = true;
    Object.defineProperty(Document.prototype, 'prerendering', { configurable: true, get: () => window.__pre });
  });
  await page.goto(`${site.origin}/prerendered`);
  await page.waitForFunction(() => window.jetrack);
  await sleep(1_000);
  assert.deepEqual(collector.events(websiteId), []);
  await page.evaluate(() => { window.__pre = false; document.dispatchEvent(new Event('prerenderingchange')); });
  await collector.waitFor(websiteId, (l) => pageviews(l).length === 1, 'pageview on activation');
  assert.equal(collector.events(websiteId)[0].url, `${site.origin}/prerendered`);
  assertNoProblems(page);
  await context.close();
});
