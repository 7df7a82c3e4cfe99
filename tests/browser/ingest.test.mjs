// Tracking end to end (issue 4, acceptance 2; SPEC 3.1–3.4): the real tracker, served by the
// release executable, on a page of another local origin in headless Chromium; then the
// database itself, read after the server stopped.
//
// - Origins: Jetrack at http://127.0.0.1:<J>; the tracked site at http://127.0.0.1:<P> (another
//   port: another origin, the website's domain `127.0.0.1`); the referring page at
//   http://localhost:<P> (another host: a third origin). Everything stays on this machine: the
//   one outbound address is answered by a route of the browser context, and the test asserts
//   that no other request left for a host other than 127.0.0.1 or localhost.
// - The visit: the landing page with UTM parameters, reached by a link click from the referring
//   page; pushState twice, back once, jetrack.track("Signup", {plan: "pro"}), a click on a
//   `data-jetrack-event` element, a click on an outbound link (target=_blank, so the page stays
//   open and visible), then two heartbeats.
// - Heartbeats are waited for in real time (~30 s), not with page.clock: the server stamps every
//   event with its own clock when it arrives (SPEC 3.2), so a page clock run forward would send
//   the heartbeats at once and the stored visit would last a few milliseconds. Real time shows
//   what the acceptance asks: a visit whose duration covers the heartbeats.
// - Cookie mode: the website switched on through the API, a page whose snippet has
//   data-cookie-mode="true", loaded and reloaded: the bj_vid cookie, and one stored visit whose
//   visitor id is SHA-256(website id ‖ that cookie) (SPEC 3.4), computed here independently.
// - The user agent is Chromium's own with "HeadlessChrome" written "Chrome": the server drops
//   headless browsers as bots (SPEC 3.2), as it should. Locale fr-FR and a 1440 px wide screen
//   in a 1280 px viewport show that the stored language and screen class come from
//   navigator.language and screen.width, not from defaults or the window.
// Screenshots: target/screenshots/ingest-*.png.

import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';

import {
  launchBrowser, newPage, problemsOf, screenshot, startServer,
} from './harness.mjs';
import {
  api, cookieVisitorId, readDatabase, setupAccount, startSite,
} from './ingest-helpers.mjs';

const ACCOUNT = {
  firstName: 'Katherine',
  lastName: 'Johnson',
  email: 'katherine@example.test',
  password: 'trajectory passphrase 1962',
};

const UTM = '?utm_source=newsletter&utm_medium=email&utm_campaign=launch';
const OUTBOUND = 'https://partner.example/offer?ref=acme';
const LOCALE = 'fr-FR';
const SCREEN = { width: 1440, height: 900 }; // xl (≥ 1440), while the 1280 px viewport is lg
const HEARTBEAT_MS = 15_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let dataRoot;
let server;
let browser;
let site;
let session;
let websiteId;
let userAgent;
// Filled by the browsing tests, checked against the database by the last ones.
const seen = { visit: null, cookie: null };

/** The tracked pages: the snippet of SPEC 3.1 pointing at the Jetrack server. */
function trackedPage({ title, cookieMode = false }) {
  const extra = cookieMode ? ' data-cookie-mode="true"' : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<link rel="icon" href="data:,">
<script defer src="${server.base}/js/jetrack.js" data-website-id="${websiteId}"
  data-allow-localhost="true" data-outbound-links="true"${extra}></script>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 40px; color: #1f2937; }
  button, a.button { font: inherit; padding: 8px 14px; margin: 4px 8px 4px 0; border-radius: 6px;
    border: 1px solid #9ca3af; background: #f9fafb; color: inherit; text-decoration: none; }
  #where { font-family: ui-monospace, monospace; background: #eef2ff; padding: 4px 8px; }
</style></head>
<body>
<h1>${title}</h1>
<p>Path: <span id="where"></span></p>
<nav><button id="to-docs" type="button">Docs</button><button id="to-pricing" type="button">Pricing</button></nav>
<p><button id="download" type="button" data-jetrack-event="Download" data-jetrack-prop-format="pdf">Download the PDF</button>
<a id="partner" class="button" href="${OUTBOUND}" target="_blank" rel="noopener">Our partner</a></p>
<script>
  const show = () => { document.getElementById('where').textContent = location.pathname + location.search; };
  const go = (p) => { history.pushState({}, '', p); show(); };
  document.getElementById('to-docs').onclick = () => go('/docs');
  document.getElementById('to-pricing').onclick = () => go('/pricing');
  addEventListener('popstate', show);
  show();
</script>
</body></html>`;
}

const REFERRER_PAGE = (port) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Newsletter</title><link rel="icon" href="data:,"></head>
<body style="font: 16px system-ui; margin: 40px">
<h1>This week's newsletter</h1>
<p><a id="go" href="http://127.0.0.1:${port}/landing${UTM}">Read about the launch</a></p>
</body></html>`;

/**
 * A page (harness newPage: it records console errors and failures for problemsOf) in a new
 * context as a French desktop Chrome with a 1440 px screen; the context records every request
 * and every collect call, and answers any address outside this machine itself (recording it).
 */
async function trackedContext() {
  const page = await newPage(browser, { width: 1280, height: 800, screen: SCREEN, locale: LOCALE, userAgent });
  const context = page.context();
  const log = { requests: [], intercepted: [], collects: [] };
  context.on('request', (request) => log.requests.push(request.url()));
  await context.route((url) => !['127.0.0.1', 'localhost'].includes(url.hostname), (route) => {
    log.intercepted.push(route.request().url());
    return route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: '<!doctype html><title>Partner</title><link rel="icon" href="data:,"><h1>Partner</h1>',
    });
  });
  const collectUrl = `${server.base}/api/collect`;
  context.on('response', async (response) => {
    if (response.url() !== collectUrl || response.request().method() !== 'POST') return;
    const entry = {
      at: Date.now(),
      body: JSON.parse(response.request().postData()),
      status: response.status(),
      dropped: null,
    };
    log.collects.push(entry);
    entry.dropped = (await response.allHeaders())['x-jetrack-dropped'] ?? null;
  });
  // Records from the start visibility changes (the heartbeats run only while visible) and every
  // cookie the page's scripts write (what the tracker asked for, before the browser's limits).
  await context.addInitScript(() => {
    window.__visibility = [];
    document.addEventListener('visibilitychange', () => window.__visibility.push(document.visibilityState));
    window.__cookieWrites = [];
    const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
    Object.defineProperty(document, 'cookie', {
      get() { return cookie.get.call(this); },
      set(value) { window.__cookieWrites.push(value); cookie.set.call(this, value); },
    });
  });
  return { context, page, log };
}

/** Waits until `log.collects` holds `count` answered calls that match `pick`; returns them. */
async function collected(log, pick, count, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = log.collects.filter((c) => pick(c.body));
    if (found.length >= count) return found;
    if (Date.now() > deadline) {
      throw new Error(`${what}: ${found.length} of ${count} collect calls after ${timeout} ms; `
        + `sent: ${JSON.stringify(log.collects.map((c) => c.body))}`);
    }
    await sleep(25);
  }
}

const pageviewOf = (pathname) => (b) => b.type === 'pageview' && new URL(b.url).pathname === pathname;
const eventNamed = (name) => (b) => b.type === 'event' && b.name === name;
const isHeartbeat = (b) => b.type === 'heartbeat';

/** Cookies and web storage the page's origin holds (all cookies of the context). */
async function storageOf(context, page) {
  return {
    cookies: await context.cookies(),
    ...(await page.evaluate(() => ({
      cookieWrites: window.__cookieWrites,
      documentCookie: document.cookie,
      localStorage: Object.keys(localStorage),
      sessionStorage: Object.keys(sessionStorage),
    }))),
  };
}

/** Asserts that every request went to 127.0.0.1 or localhost, except `allowed` (answered by the
 * context's route, so it never left either). */
function assertStayedLocal(log, allowed) {
  const foreign = log.requests.filter((u) => !['127.0.0.1', 'localhost'].includes(new URL(u).hostname));
  assert.deepEqual(foreign, allowed, 'requests to other hosts');
  assert.deepEqual(log.intercepted, allowed, 'requests answered by the route instead of the network');
}

/** Every collect call answered 202 without a drop reason. */
function assertAllAccepted(log) {
  for (const c of log.collects) {
    assert.equal(c.status, 202, `collect ${JSON.stringify(c.body)}`);
    assert.equal(c.dropped, null, `collect ${JSON.stringify(c.body)} was dropped`);
  }
}

before(async () => {
  dataRoot = await mkdtemp(path.join(tmpdir(), 'jetrack-ingest-'));
  // A data dir of our own: the harness removes its temporary HOME when the server stops, and the
  // database is read after that.
  server = await startServer({ binary: true, args: ['--data-dir', path.join(dataRoot, 'data')] });
  browser = await launchBrowser();
  const probe = await browser.newContext();
  userAgent = (await (await probe.newPage()).evaluate(() => navigator.userAgent))
    .replace('HeadlessChrome/', 'Chrome/');
  await probe.close();
  assert.match(userAgent, /^Mozilla\/5\.0 \(X11; Linux x86_64\) .* Chrome\/[\d.]+ Safari\/[\d.]+$/);

  session = await setupAccount(server, ACCOUNT);
  const created = await api(server.base, 'POST', '/websites', {
    ...session,
    body: { name: 'Acme', domain: '127.0.0.1', timezone: 'UTC' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.equal(created.json.data.domain, '127.0.0.1');
  assert.equal(created.json.data.cookieMode, false);
  websiteId = created.json.data.id;

  const pages = {};
  site = await startSite(pages);
  pages['/ref'] = REFERRER_PAGE(site.port);
  pages['/landing'] = trackedPage({ title: 'Acme' });
  pages['/cookie'] = trackedPage({ title: 'Acme (cookie mode)', cookieMode: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (site) await site.close();
  if (dataRoot) await rm(dataRoot, { recursive: true, force: true });
});

test('a visit: referrer, UTM, pushState ×2, back, track(), data-jetrack-event, outbound link, heartbeats', async () => {
  const { context, page, log } = await trackedContext();
  const origin = `http://127.0.0.1:${site.port}`;
  const referrer = `http://localhost:${site.port}/`;

  // The referring page on a third origin; a click on its link lands on the site.
  await page.goto(`http://localhost:${site.port}/ref`);
  await screenshot(page, 'ingest-01-referrer');
  await page.locator('#go').click();
  await page.waitForURL(`${origin}/landing${UTM}`);
  // strict-origin-when-cross-origin: the referrer is the other origin, without its path.
  assert.equal(await page.evaluate(() => document.referrer), referrer);
  const [landing] = await collected(log, pageviewOf('/landing'), 1, 'the landing pageview');
  const loadedAt = landing.at;
  assert.deepEqual(landing.body, {
    type: 'pageview',
    websiteId,
    url: `${origin}/landing${UTM}`,
    referrer,
    screenWidth: 1440,
    language: LOCALE,
  });
  await screenshot(page, 'ingest-02-landing');

  // SPA navigation: each call waits for its collect answer, as a person's pace would; the
  // server stamps events on arrival, so this also fixes their stored order.
  await page.locator('#to-docs').click();
  await collected(log, pageviewOf('/docs'), 1, 'pushState /docs');
  await page.locator('#to-pricing').click();
  await collected(log, pageviewOf('/pricing'), 1, 'pushState /pricing');
  await page.evaluate(() => history.back());
  await page.waitForURL(`${origin}/docs`);
  await collected(log, pageviewOf('/docs'), 2, 'popstate back to /docs');
  await screenshot(page, 'ingest-03-after-back');

  await page.evaluate(() => window.jetrack.track('Signup', { plan: 'pro' }));
  await collected(log, eventNamed('Signup'), 1, 'jetrack.track');
  await page.locator('#download').click();
  await collected(log, eventNamed('Download'), 1, 'data-jetrack-event click');

  const popupOpened = context.waitForEvent('page');
  await page.locator('#partner').click();
  await collected(log, eventNamed('Outbound Link'), 1, 'outbound link click');
  const popup = await popupOpened;
  await popup.waitForLoadState();
  assert.equal(popup.url(), OUTBOUND);
  await popup.close();
  const actionsMs = Date.now() - loadedAt;

  // Two heartbeats, 15 s apart, counted from the load (the pushState calls do not restart it).
  const beats = await collected(log, isHeartbeat, 2, 'two heartbeats', 2 * HEARTBEAT_MS + 10_000);
  await sleep(300); // nothing else is on its way
  assert.equal(await page.evaluate(() => document.visibilityState), 'visible');
  assert.deepEqual(await page.evaluate(() => window.__visibility), [], 'the page never went hidden');
  for (const beat of beats) {
    assert.deepEqual(beat.body, {
      type: 'heartbeat', websiteId, url: `${origin}/docs`, referrer: '', screenWidth: 1440, language: LOCALE,
    });
  }
  // Not early (the interval starts as the landing pageview is sent, a little before its answer
  // reached us: 2 s allowed), and not bunched together.
  const sinceLoad = beats.map((b) => b.at - loadedAt);
  assert.ok(sinceLoad[0] >= HEARTBEAT_MS - 2_000 && sinceLoad[1] - sinceLoad[0] >= HEARTBEAT_MS - 2_000,
    `heartbeats at ${sinceLoad} ms after the load`);

  // What the script sent, in order: 4 pageviews, 3 events, 2 heartbeats; all accepted.
  assert.deepEqual(log.collects.map((c) => c.body.type + (c.body.name ? ` ${c.body.name}` : '')
    + (c.body.type === 'pageview' ? ` ${new URL(c.body.url).pathname}` : '')), [
    'pageview /landing', 'pageview /docs', 'pageview /pricing', 'pageview /docs',
    'event Signup', 'event Download', 'event Outbound Link', 'heartbeat', 'heartbeat',
  ]);
  assertAllAccepted(log);
  assert.deepEqual(log.collects.slice(4, 7).map((c) => c.body.props), [
    { plan: 'pro' }, { format: 'pdf' }, { url: OUTBOUND },
  ]);
  // The referrer goes with the first pageview only.
  assert.deepEqual(log.collects.slice(1).map((c) => c.body.referrer), Array(8).fill(''));
  assert.ok(log.collects.every((c) => !('visitorId' in c.body)), 'no visitorId without cookie mode');

  // Cookieless: nothing written in any cookie jar or web storage.
  assert.deepEqual(await storageOf(context, page), {
    cookies: [], cookieWrites: [], documentCookie: '', localStorage: [], sessionStorage: [],
  });
  assertStayedLocal(log, [OUTBOUND]);
  assert.deepEqual(problemsOf(page), []);

  seen.visit = {
    lastHeartbeatAt: beats[1].at,
    timings: { actionsMs, heartbeatsMs: sinceLoad },
  };
  await context.close();
});

test('cookie mode: bj_vid is set and a reload keeps the visitor', async () => {
  const patched = await api(server.base, 'PATCH', `/websites/${websiteId}`, { ...session, body: { cookieMode: true } });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  assert.equal(patched.json.data.cookieMode, true);

  const { context, page, log } = await trackedContext();
  const url = `http://127.0.0.1:${site.port}/cookie`;
  await page.goto(url);
  const [first] = await collected(log, pageviewOf('/cookie'), 1, 'the cookie-mode pageview');

  const cookies = await context.cookies();
  assert.equal(cookies.length, 1, JSON.stringify(cookies));
  const [vid] = cookies;
  assert.equal(vid.name, 'bj_vid');
  assert.match(vid.value, UUID);
  assert.equal(vid.domain, '127.0.0.1');
  assert.equal(vid.path, '/');
  assert.equal(vid.sameSite, 'Lax');
  assert.equal(vid.httpOnly, false);
  assert.equal(vid.secure, false); // an http page; the script adds Secure on https
  // The script asks for 730 days (SPEC 3.4); Chromium caps any cookie's life at 400 days.
  assert.deepEqual(await page.evaluate(() => window.__cookieWrites),
    [`bj_vid=${vid.value};Max-Age=63072000;Path=/;SameSite=Lax`]);
  const days = (vid.expires - Date.now() / 1000) / 86_400;
  assert.ok(Math.abs(days - 400) < 0.01, `bj_vid lasts ${days} days in Chromium`);
  assert.equal(first.body.visitorId, vid.value);
  await screenshot(page, 'ingest-04-cookie-mode');

  await page.reload();
  const both = await collected(log, pageviewOf('/cookie'), 2, 'the pageview after the reload');
  assert.equal(both[1].body.visitorId, vid.value, 'the reload sends the same visitor');
  const stored = await storageOf(context, page);
  assert.deepEqual(stored.cookies.map((c) => [c.name, c.value]), [['bj_vid', vid.value]]);
  // After the reload the script read the cookie back and wrote the same one again.
  assert.deepEqual(stored.cookieWrites, [`bj_vid=${vid.value};Max-Age=63072000;Path=/;SameSite=Lax`]);
  assert.deepEqual(stored.localStorage, []);
  assert.deepEqual(stored.sessionStorage, []);
  assert.equal(log.collects.length, 2);
  assertAllAccepted(log);
  assertStayedLocal(log, []);
  assert.deepEqual(problemsOf(page), []);

  seen.cookie = { uuid: vid.value };
  await context.close();
});

let database;
/** The database once the server has stopped (SIGTERM: graceful, the WAL checkpointed). */
async function storedData() {
  if (database) return database;
  const stopped = await server.stop();
  assert.deepEqual(stopped, { code: 0, signal: null }, 'the server exits cleanly on SIGTERM');
  const complaints = server.stderr().split('\n').filter((line) => /\b(WARN|ERROR)\b/.test(line));
  assert.deepEqual(complaints, [], 'the server logged no warning or error');
  const file = path.join(dataRoot, 'data', 'jetrack.db');
  // sql.js reads the main file only: everything must have been checkpointed into it.
  const wal = `${file}-wal`;
  assert.ok(!existsSync(wal) || statSync(wal).size === 0, `${wal} still holds ${existsSync(wal) && statSync(wal).size} bytes`);
  database = await readDatabase(file);
  assert.deepEqual(database.integrity, ['ok']);
  return database;
}

test('the database holds exactly those pageviews, events and visits', async (t) => {
  assert.ok(seen.visit && seen.cookie, 'the browsing tests ran');
  const db = await storedData();
  const host = '127.0.0.1';

  const pageviews = db.pageviews(websiteId);
  assert.deepEqual(pageviews.map((p) => [p.hostname, p.path]), [
    [host, '/landing'], [host, '/docs'], [host, '/pricing'], [host, '/docs'],
    [host, '/cookie'], [host, '/cookie'],
  ]);
  const events = db.events(websiteId);
  assert.deepEqual(events.map((e) => [e.name, e.props]), [
    ['Signup', { plan: 'pro' }],
    ['Download', { format: 'pdf' }],
    ['Outbound Link', { url: OUTBOUND }],
  ]);

  const visits = db.visits(websiteId);
  assert.equal(visits.length, 2, JSON.stringify(visits, (k, v) => (typeof v === 'bigint' ? String(v) : v)));
  const [visit, cookieVisit] = visits;

  await t.test('the cookieless visit', () => {
    const mine = pageviews.slice(0, 4);
    assert.ok(mine.every((p) => p.visit === visit.id), 'its four pageviews');
    assert.ok(events.every((e) => e.visit === visit.id), 'its three events');
    const { id: _id, visitor: _visitor, first_at: firstAt, last_at: lastAt, ...rest } = visit;
    assert.deepEqual(rest, {
      pv_first_at: mine[0].at,
      pv_last_at: mine[3].at,
      pageviews: 4,
      events: 3,
      entry: '/landing',
      exit: '/docs',
      hostname: host,
      referrer: 'localhost',
      utm_source: 'newsletter',
      utm_medium: 'email',
      utm_campaign: 'launch',
      utm_term: null,
      utm_content: null,
      country: null, // loopback has no country
      browser: 'Chrome',
      os: 'Linux',
      device: 'desktop',
      language: LOCALE,
      screen: 'xl',
    });
    assert.equal(firstAt, mine[0].at, 'the visit starts with its first pageview');
    // The heartbeats carry the visit past its last stored row, to 30 s after the first pageview
    // less the time the first beacon took to arrive (it opens the connection; the interval
    // starts as it is sent, and runs ~0.2 s shorter here): 2 s allowed for a loaded machine.
    const lastRow = Math.max(...mine.map((p) => p.at), ...events.map((e) => e.at));
    assert.ok(lastAt - firstAt >= 2 * HEARTBEAT_MS - 2_000, `duration ${lastAt - firstAt} ms`);
    assert.ok(lastAt > lastRow + 5_000, `last_at ${lastAt} is the heartbeats', after the last row ${lastRow}`);
    // The server's clock is this machine's: last_at is when the second heartbeat arrived.
    assert.ok(Math.abs(lastAt - seen.visit.lastHeartbeatAt) < 2_000, `last_at ${lastAt}, heartbeat ${seen.visit.lastHeartbeatAt}`);
    t.diagnostic(`stored duration ${lastAt - firstAt} ms; the actions took ${seen.visit.timings.actionsMs} ms `
      + `after the load, heartbeats answered at ${seen.visit.timings.heartbeatsMs} ms`);
  });

  await t.test('the cookie-mode visit: one visitor, the hash of bj_vid', () => {
    assert.ok(pageviews.slice(4).every((p) => p.visit === cookieVisit.id), 'both pageviews in one visit');
    assert.equal(cookieVisit.visitor, cookieVisitorId(websiteId, seen.cookie.uuid));
    assert.notEqual(cookieVisit.visitor, visit.visitor, 'not the cookieless visitor of the same browser');
    assert.equal(cookieVisit.pageviews, 2);
    assert.equal(cookieVisit.events, 0);
    assert.equal(cookieVisit.entry, '/cookie');
    assert.equal(cookieVisit.exit, '/cookie');
    assert.equal(cookieVisit.referrer, null);
    assert.equal(cookieVisit.utm_source, null);
  });
});
