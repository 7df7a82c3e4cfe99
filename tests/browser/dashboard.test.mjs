// The website dashboard (issue 7, SPEC 5) in headless Chromium against the release executable:
// 1. on a seeded site every card equals the API's figure for the same range, the chart has
//    one point per bucket, the metric selector changes the series, each preset sets its
//    from/to (in the URL and in the API calls), a referrer row filters every panel and its
//    chip removes the filter, and a saved URL shows the same view in a new browser context;
// 2. the live count reads 1 within 10 s of a tracked page opening in another context, and 0
//    within 45 s of it closing;
// 3. a site without data shows its snippet and flips to the dashboard at the first pageview;
// 4. every request goes to the server's own origin, HTML pages carry the CSP, no console
//    errors on any page;
// 5. at 390 px no page scrolls sideways, the controls are reached and used by keyboard, and
//    screenshots of the dashboard, website settings and Settings → API Keys are saved
//    (target/screenshots/dashboard-*.png);
// 6. `jetrack demo` then `jetrack serve` shows a populated dashboard.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import {
  RELEASE_BINARY, foreignRequests, launchBrowser, newPage, problemsOf, screenshot, startServer,
  viewportScreenshot,
} from './harness.mjs';
import { api, setupAccount, startSite } from './ingest-helpers.mjs';

const ACCOUNT = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  email: 'ada@example.test',
  password: 'analytical engine 1843',
};
const CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
const SHOP_ZONE = 'America/New_York';
const DAY_MS = 86_400_000;

let server;
let browser;
let session;
let site;
let userAgent;
const ids = {};

// ---- Seeding ----

/** A small deterministic random source, so the seeded data are the same on every run. */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** ~350 visits over 45 days (some today): several pages, referrers, UTM tags, countries. */
function seedEvents(now) {
  const rnd = random(7);
  const pick = (list) => list[Math.floor(rnd() * list.length)];
  const pages = ['/', '/pricing', '/blog', '/blog/launch', '/blog/tips', '/docs', '/docs/api',
    '/docs/setup', '/about', '/contact', '/careers', '/changelog', '/signup', '/login', '/terms'];
  const referrers = [null, null, 'https://news.example/item?id=1', 'https://www.google.com/',
    'https://social.example/post/7', 'https://news.example/front'];
  const events = [];
  for (let i = 0; i < 350; i += 1) {
    const daysAgo = i < 20 ? 0 : Math.floor(rnd() * 45);
    const start = now - daysAgo * DAY_MS - Math.floor(rnd() * (daysAgo === 0 ? 3 : 20) * 3_600_000) - 60_000;
    const visitor = `seed-${Math.floor(rnd() * 220)}`;
    const referrer = pick(referrers);
    const utm = rnd() < 0.15 ? '?utm_source=newsletter&utm_medium=email&utm_campaign=spring' : '';
    const common = {
      visitorId: visitor,
      country: pick(['US', 'US', 'DE', 'FR', 'GB', 'IN']),
      browser: pick(['Chrome', 'Chrome', 'Firefox', 'Safari']),
      os: pick(['Windows', 'macOS', 'Linux', 'iOS', 'Android']),
      device: pick(['desktop', 'desktop', 'mobile', 'tablet']),
      screen: pick(['md', 'lg', 'xl', 'xs']),
      language: pick(['en-US', 'de-DE', 'fr-FR']),
    };
    const views = 1 + Math.floor(rnd() * rnd() * 5);
    for (let v = 0; v < views; v += 1) {
      events.push({
        type: 'pageview',
        url: `https://shop.example${pick(pages)}${v === 0 ? utm : ''}`,
        referrer: v === 0 ? referrer : null,
        timestamp: new Date(start + v * 45_000).toISOString(),
        ...common,
      });
    }
    if (rnd() < 0.2) {
      events.push({
        type: 'event', name: pick(['Signup', 'Download']), url: 'https://shop.example/signup', timestamp: new Date(start + 20_000).toISOString(), ...common,
      });
    }
  }
  return events;
}

async function createWebsite(body) {
  const created = await api(server.base, 'POST', '/websites', { ...session, body });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  return created.json.data;
}

/** A page of the test site that carries a website's snippet. */
const trackedPage = (websiteId, title) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title><link rel="icon" href="data:,">
<script defer src="${server.base}/js/jetrack.js" data-website-id="${websiteId}" data-allow-localhost="true"></script>
</head><body><h1>${title}</h1></body></html>`;

before(async () => {
  server = await startServer({ binary: true });
  browser = await launchBrowser();
  const probe = await browser.newContext();
  userAgent = (await (await probe.newPage()).evaluate(() => navigator.userAgent)).replace('HeadlessChrome/', 'Chrome/');
  await probe.close();
  session = await setupAccount(server, ACCOUNT);

  const shop = await createWebsite({ name: 'Shop', domain: 'shop.example', timezone: SHOP_ZONE });
  ids.shop = shop.id;
  const events = seedEvents(Date.now());
  for (let i = 0; i < events.length; i += 1000) {
    const imported = await api(server.base, 'POST', `/websites/${shop.id}/events`, { ...session, body: { events: events.slice(i, i + 1000) } });
    assert.equal(imported.status, 200, JSON.stringify(imported.json));
    assert.deepEqual(imported.json.data.dropped, []);
  }
  ids.live = (await createWebsite({ name: 'Live', domain: '127.0.0.1', timezone: 'UTC' })).id;
  ids.empty = (await createWebsite({ name: 'Fresh', domain: 'localhost', timezone: 'UTC' })).id;

  const pages = {};
  site = await startSite(pages);
  pages['/live'] = trackedPage(ids.live, 'Live site');
  pages['/fresh'] = trackedPage(ids.empty, 'Fresh site');
});

after(async () => {
  if (browser) await browser.close();
  if (site) await site.close();
  if (server) await server.stop();
});

// ---- Helpers ----

async function logIn(page, base = server.base, account = ACCOUNT) {
  await page.goto(`${base}/login`);
  await page.locator('#login-email').fill(account.email);
  await page.locator('#login-password').fill(account.password);
  await page.locator('#login-submit').click();
  await page.waitForURL(`${base}/`);
}

/** Waits until the dashboard has drawn everything for the URL it shows. */
async function ready(page, timeout = 20_000) {
  try {
    await page.waitForFunction(() => {
      const d = document.getElementById('dashboard');
      return d && !d.hidden && location.search !== '' && d.dataset.ready === location.search;
    }, null, { timeout });
  } catch (error) {
    const state = await page.evaluate(() => ({
      url: location.href,
      ready: document.getElementById('dashboard')?.dataset.ready,
      error: document.getElementById('stats-error')?.textContent,
    })).catch(() => ({}));
    throw new Error(`the dashboard was not ready: ${JSON.stringify(state)}; ${problemsOf(page).join('; ')}`, { cause: error });
  }
}

/** GET /api/v1<p> from inside the page, with its session: the envelope's data and meta. */
async function pageApi(page, p) {
  const body = await page.evaluate(async (url) => (await fetch(`/api/v1${url}`, { headers: { Accept: 'application/json' } })).json(), p);
  assert.equal(body.success, true, `${p}: ${JSON.stringify(body)}`);
  return body;
}

/** The statistics query the page's URL stands for: from, to and the filters. */
async function urlQuery(page) {
  const query = new URL(page.url()).searchParams;
  for (const key of [...query.keys()]) {
    if (key === 'period' || key === 'metric' || key.endsWith('Tab')) query.delete(key);
  }
  return query;
}

const CARD_KEYS = ['uniqueVisitors', 'totalPageviews', 'totalSessions', 'bounceRate', 'avgSessionDuration', 'viewsPerSession'];

async function cardValues(page) {
  return page.evaluate((keys) => Object.fromEntries(keys.map((k) => [k, document.getElementById(`card-${k}`).dataset.value])), CARD_KEYS);
}

/** Every card equals `main` of the API for the page's range and filters. */
async function assertCards(page, websiteId, why) {
  const query = await urlQuery(page);
  const { data } = await pageApi(page, `/websites/${websiteId}/stats/main?${query}`);
  const shown = await cardValues(page);
  for (const key of CARD_KEYS) assert.equal(shown[key], String(data[key]), `${why}: card ${key}`);
  for (const key of CARD_KEYS) {
    assert.notEqual((await page.locator(`#card-${key} .stat-value`).innerText()).trim(), '', `${why}: ${key} shown`);
  }
  return data;
}

const SERIES_FIELD = {
  visitors: 'uniqueVisitors', pageviews: 'totalPageviews', sessions: 'totalSessions', bounce: 'bounceRate', duration: 'avgSessionDuration', dau: 'uniqueVisitors',
};

/** The chart: one point per bucket of the API's time series, the values of the metric. */
async function assertChart(page, websiteId, why) {
  const chart = page.locator('#chart');
  const metric = await chart.getAttribute('data-metric');
  const interval = await chart.getAttribute('data-interval');
  const query = await urlQuery(page);
  query.set('interval', interval);
  const { data } = await pageApi(page, `/websites/${websiteId}/stats/timeseries?${query}`);
  assert.equal(await chart.getAttribute('data-points'), String(data.length), `${why}: one point per bucket`);
  const drawn = await page.evaluate(() => Array.from(document.querySelectorAll('#chart-table tbody td[data-value]'), (td) => td.dataset.value));
  assert.deepEqual(drawn, data.map((b) => String(b[SERIES_FIELD[metric]])), `${why}: ${metric} per ${interval}`);
  assert.equal(await page.locator('#chart canvas').count(), 1, `${why}: drawn`);
  return { metric, interval, values: drawn };
}

/** Every panel's rows equal the first page of its breakdown for the page's range and filters. */
async function assertPanels(page, websiteId, why) {
  const query = await urlQuery(page);
  query.set('limit', '10');
  const panels = await page.evaluate(() => Array.from(document.querySelectorAll('#panels [data-panel]'), (p) => ({
    id: p.dataset.panel,
    report: p.dataset.report,
    rows: Array.from(p.querySelectorAll('button.row'), (r) => [r.dataset.value, r.dataset.visitors]),
  })));
  assert.equal(panels.length, 5, why);
  for (const panel of panels) {
    const { data } = await pageApi(page, `/websites/${websiteId}/stats/${panel.report}?${query}`);
    assert.deepEqual(panel.rows, data.map((r) => [r.value ?? '', String(r.uniqueVisitors)]), `${why}: panel ${panel.id} (${panel.report})`);
  }
  return panels;
}

async function assertView(page, websiteId, why) {
  const main = await assertCards(page, websiteId, why);
  await assertChart(page, websiteId, why);
  const panels = await assertPanels(page, websiteId, why);
  return { main, panels };
}

/** The dates a preset stands for in `zone`, worked out here on their own. */
function expectedRange(preset, zone) {
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
  const [y, m, d] = today.split('-').map(Number);
  const ymd = (date) => date.toISOString().slice(0, 10);
  const utc = (yy, mm, dd) => new Date(Date.UTC(yy, mm - 1, dd));
  switch (preset) {
    case 'today': return [today, today];
    case '7d': return [ymd(utc(y, m, d - 6)), today];
    case '30d': return [ymd(utc(y, m, d - 29)), today];
    case 'month': return [ymd(utc(y, m, 1)), today];
    case '12m': return [ymd(utc(y, m - 11, 1)), today];
    default: throw new Error(preset);
  }
}

const scrollWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

/** Checks 4 for a page: own origin only and nothing went wrong. */
function assertClean(page, why, expected = []) {
  assert.deepEqual(foreignRequests(page, server.base), [], `${why}: requests to other origins`);
  assert.deepEqual(problemsOf(page, expected), [], why);
}

// ---- 1. Cards, chart, metric selector, presets, filters, saved URL ----

test('cards, chart and panels equal the API; presets, metric, filter and a saved URL', async () => {
  const page = await newPage(browser, { width: 1280, height: 900, locale: 'en-US' });
  await logIn(page);
  const response = await page.goto(`${server.base}/websites/${ids.shop}`);
  assert.equal(response.headers()['content-security-policy'], CSP, 'the dashboard page carries the CSP');
  await ready(page);
  let url = new URL(page.url());
  assert.equal(url.searchParams.get('period'), '30d', 'the default view is in the URL');
  assert.deepEqual([url.searchParams.get('from'), url.searchParams.get('to')], expectedRange('30d', SHOP_ZONE));
  const first = await assertView(page, ids.shop, 'default 30 days');
  assert.ok(first.main.uniqueVisitors > 20, 'the seeded site has visitors');
  assert.equal(await page.locator('#site-empty').isVisible(), false);

  // The metric selector changes the series (and the URL).
  const visitors = (await assertChart(page, ids.shop, 'visitors')).values;
  for (const metric of ['pageviews', 'sessions', 'bounce', 'duration', 'dau', 'visitors']) {
    await page.locator('#metric-select').selectOption(metric);
    await ready(page);
    const shown = await assertChart(page, ids.shop, `metric ${metric}`);
    assert.equal(shown.metric, metric);
    if (metric === 'pageviews' || metric === 'duration') assert.notDeepEqual(shown.values, visitors, `${metric} is another series`);
    if (metric === 'dau') assert.equal(shown.interval, 'day');
    assert.equal(new URL(page.url()).searchParams.get('metric'), metric === 'visitors' ? null : metric);
  }

  // Each preset sets its dates in the URL and in the API calls, and the cards follow.
  for (const preset of ['today', '7d', 'month', '12m', '30d']) {
    const before = page.requests.length;
    await page.locator(`.period [data-preset="${preset}"]`).click();
    await ready(page);
    const [from, to] = expectedRange(preset, SHOP_ZONE);
    url = new URL(page.url());
    assert.deepEqual([url.searchParams.get('period'), url.searchParams.get('from'), url.searchParams.get('to')], [preset, from, to], `${preset} in the URL`);
    assert.equal(await page.locator(`.period [data-preset="${preset}"]`).getAttribute('aria-pressed'), 'true');
    const calls = page.requests.slice(before).filter((u) => u.includes('/stats/')).map((u) => new URL(u));
    assert.ok(calls.length >= 7, `${preset}: main, timeseries and the five panels were asked`);
    for (const call of calls) {
      assert.deepEqual([call.searchParams.get('from'), call.searchParams.get('to')], [from, to], `${preset}: ${call.pathname}`);
    }
    await assertCards(page, ids.shop, preset);
    await assertChart(page, ids.shop, preset);
    if (preset === '12m') assert.equal(await page.locator('#chart').getAttribute('data-interval'), 'month');
    if (preset === 'today') assert.equal(await page.locator('#chart').getAttribute('data-interval'), 'hour');
  }

  // A custom range.
  await page.locator('#custom-toggle').click();
  const [, today] = expectedRange('today', SHOP_ZONE);
  const tenAgo = new Date(Date.parse(`${today}T00:00:00Z`) - 10 * DAY_MS).toISOString().slice(0, 10);
  await page.locator('#range-from').fill(tenAgo);
  await page.locator('#range-to').fill(today);
  await page.locator('#range-apply').click();
  await ready(page);
  url = new URL(page.url());
  assert.deepEqual([url.searchParams.get('period'), url.searchParams.get('from'), url.searchParams.get('to')], ['custom', tenAgo, today]);
  await assertCards(page, ids.shop, 'custom range');
  await page.locator('.period [data-preset="30d"]').click();
  await ready(page);

  // Clicking a referrer filters every panel, the cards and the chart; the chip removes it.
  const unfiltered = await assertView(page, ids.shop, 'before the filter');
  const row = page.locator('#panel-sources button.row[data-value="news.example"]');
  await row.click();
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.get('referrer'), 'news.example');
  const chip = page.locator('#filter-list .chip[data-filter="referrer"]');
  assert.equal(await chip.isVisible(), true);
  assert.match(await chip.innerText(), /Referrer is\s+news\.example/);
  const filtered = await assertView(page, ids.shop, 'referrer news.example');
  assert.ok(filtered.main.uniqueVisitors < unfiltered.main.uniqueVisitors, 'the filter keeps fewer visitors');
  assert.deepEqual(filtered.panels.find((p) => p.id === 'sources').rows.map(([v]) => v), ['news.example']);
  await screenshot(page, 'dashboard-filtered');

  await chip.locator('.chip-remove').click();
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.get('referrer'), null);
  assert.equal(await page.locator('#filters').isVisible(), false);
  const restored = await assertView(page, ids.shop, 'filter removed');
  assert.deepEqual(restored.main, unfiltered.main, 'removing the filter restores the figures');
  assert.deepEqual(restored.panels, unfiltered.panels);

  // Back returns to the filtered view, forward to the unfiltered one.
  await page.goBack();
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.get('referrer'), 'news.example');
  await assertCards(page, ids.shop, 'back');
  await page.goForward();
  await ready(page);

  // A view with a filter, a metric, a preset and a tab, saved and opened in a new context.
  await page.locator('#panel-sources button.row[data-value="news.example"]').click();
  await ready(page);
  await page.locator('#panel-devices .tab[data-report="os"]').click();
  await ready(page);
  await page.locator('#metric-select').selectOption('pageviews');
  await ready(page);
  await page.locator('.period [data-preset="7d"]').click();
  await ready(page);
  const saved = page.url();
  const savedCards = await cardValues(page);
  const savedPanels = await assertPanels(page, ids.shop, 'saved view');
  const other = await newPage(browser, { width: 1280, height: 900, locale: 'en-US' });
  await logIn(other);
  await other.goto(saved);
  await ready(other);
  assert.equal(other.url(), saved);
  assert.deepEqual(await cardValues(other), savedCards, 'the same cards');
  assert.deepEqual(await assertPanels(other, ids.shop, 'saved view, new context'), savedPanels, 'the same panels');
  assert.equal(await other.locator('#metric-select').inputValue(), 'pageviews');
  assert.equal(await other.locator('.period [data-preset="7d"]').getAttribute('aria-pressed'), 'true');
  assert.equal(await other.locator('#panel-devices').getAttribute('data-report'), 'os');
  assert.equal(await other.locator('#filter-list .chip[data-filter="referrer"]').isVisible(), true);
  await assertChart(other, ids.shop, 'saved view, new context');

  // "Show more" adds the next rows of a breakdown.
  await other.locator('#filter-list .chip-remove').click();
  await ready(other);
  const pagesPanel = other.locator('#panel-pages');
  assert.equal(await pagesPanel.locator('button.row').count(), 10);
  await pagesPanel.locator('.panel-more').click();
  await other.waitForFunction(() => document.querySelectorAll('#panel-pages button.row').length > 10);
  const query = await urlQuery(other);
  const { data: all } = await pageApi(other, `/websites/${ids.shop}/stats/pages?${query}&limit=20`);
  const shownRows = await pagesPanel.locator('button.row').evaluateAll((rows) => rows.map((r) => r.dataset.value));
  assert.deepEqual(shownRows, all.map((r) => r.value));

  // The export button links the export of the range.
  const href = await other.locator('#export-csv').getAttribute('href');
  const exportUrl = new URL(href, server.base);
  assert.equal(exportUrl.pathname, `/api/v1/websites/${ids.shop}/export`);
  assert.deepEqual([exportUrl.searchParams.get('from'), exportUrl.searchParams.get('to'), exportUrl.searchParams.get('format')], [...expectedRange('7d', SHOP_ZONE), 'csv']);

  assertClean(page, 'dashboard');
  assertClean(other, 'saved view');
  await other.context().close();
  await page.context().close();
});

// ---- 3. Empty state ----

test('a website without data shows its snippet and flips to the dashboard at the first pageview', async () => {
  const page = await newPage(browser, { width: 1280, height: 900, locale: 'en-US' });
  await logIn(page);
  await page.goto(`${server.base}/websites/${ids.empty}`);
  await page.locator('#site-empty').waitFor({ state: 'visible' });
  const website = (await pageApi(page, `/websites/${ids.empty}`)).data;
  assert.equal(await page.locator('#site-snippet').innerText(), website.trackingSnippet);
  assert.equal(await page.locator('#dashboard').isVisible(), false);
  await screenshot(page, 'dashboard-empty');
  await page.evaluate(() => { window.__noReload = true; });

  const visitor = await newPage(browser, { width: 1024, height: 700, userAgent });
  const opened = Date.now();
  await visitor.goto(`http://localhost:${site.port}/fresh`);
  await page.locator('#dashboard').waitFor({ state: 'visible', timeout: 10_000 });
  const flippedAfter = Date.now() - opened;
  await ready(page);
  assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload');
  assert.equal(await page.locator('#site-empty').isVisible(), false);
  assert.equal(await page.locator('#first-pageview').isVisible(), true);
  assert.equal(await page.locator('#card-uniqueVisitors').getAttribute('data-value'), '1');
  assert.equal(await page.locator('#card-totalPageviews').getAttribute('data-value'), '1');
  await assertCards(page, ids.empty, 'after the first pageview');
  console.log(`# empty state flipped ${flippedAfter} ms after the tracked page opened`);
  await visitor.context().close();
  assertClean(page, 'empty state');
  await page.context().close();
});

// ---- 2. Live count ----

test('the live count reads 1 within 10 s of a visit and 0 within 45 s of its end', async () => {
  const page = await newPage(browser, { width: 1280, height: 900, locale: 'en-US' });
  await logIn(page);
  await page.goto(`${server.base}/websites/${ids.live}`);
  await page.locator('#site-empty').waitFor({ state: 'visible' });
  await page.locator('#live-count').filter({ hasText: /^0$/ }).waitFor({ timeout: 5_000 });
  const dot = page.locator('#live .live-dot');
  assert.equal(await dot.isVisible(), true, 'the dot is there');

  const visitor = await newPage(browser, { width: 1024, height: 700, userAgent });
  const opened = Date.now();
  await visitor.goto(`http://127.0.0.1:${site.port}/live`);
  await page.locator('#live-count').filter({ hasText: /^1$/ }).waitFor({ timeout: 10_000 });
  const shownAfter = Date.now() - opened;
  assert.equal(await page.locator('#live-label').innerText(), 'current visitor');
  assert.equal(await page.locator('#live.is-active').count(), 1, 'the dot pulses');
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('#live .live-dot'), '::after').animationName), 'pulse');
  await page.locator('#dashboard').waitFor({ state: 'visible', timeout: 10_000 });
  await ready(page);
  await screenshot(page, 'dashboard-live');
  await visitor.context().close();
  const closed = Date.now();
  await page.locator('#live-count').filter({ hasText: /^0$/ }).waitFor({ timeout: 45_000 });
  const goneAfter = Date.now() - closed;
  console.log(`# live count: 1 after ${shownAfter} ms, 0 after ${goneAfter} ms`);
  assert.ok(goneAfter >= 14_000, `0 only once the window is over (${goneAfter} ms)`);
  assertClean(page, 'live');
  await page.context().close();
});

// ---- Website settings ----

test('website settings: change, snippet with cookie mode, delete with confirmation', async () => {
  const throwaway = await createWebsite({ name: 'Old blog', domain: 'old-blog.example', timezone: 'UTC' });
  const page = await newPage(browser, { width: 1280, height: 900, locale: 'en-US' });
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  await logIn(page);
  await page.goto(`${server.base}/websites/${throwaway.id}`);
  await page.locator('#site-settings-link').click();
  await page.waitForURL(`${server.base}/websites/${throwaway.id}/settings`);
  await page.locator('#ws-content').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#ws-name').inputValue(), 'Old blog');
  assert.equal(await page.locator('#ws-timezone').inputValue(), 'UTC');

  await page.locator('#ws-name').fill('New blog');
  await page.locator('#ws-timezone').selectOption('Europe/Berlin');
  await page.locator('#ws-cookie-mode').check();
  await page.locator('#ws-retention').fill('400');
  await page.locator('#ws-save').click();
  await page.locator('#ws-status').filter({ hasText: 'snippet changed' }).waitFor();
  assert.equal(await page.locator('#ws-repaste').isVisible(), true, 'the note to re-paste the snippet');
  const saved = (await pageApi(page, `/websites/${throwaway.id}`)).data;
  assert.deepEqual([saved.name, saved.timezone, saved.cookieMode, saved.retentionDays], ['New blog', 'Europe/Berlin', true, 400]);
  assert.equal(await page.locator('#ws-snippet').innerText(), saved.trackingSnippet);
  assert.match(saved.trackingSnippet, /data-cookie-mode="true"/);
  await page.locator('#ws-snippet-copy').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), saved.trackingSnippet);

  // A bad retention is refused under its field.
  await page.locator('#ws-retention').fill('5000');
  await page.locator('#ws-save').click();
  await page.locator('#ws-retention-error').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#ws-retention').getAttribute('aria-invalid'), 'true');
  await page.locator('#ws-retention').fill('');
  await page.locator('#ws-save').click();
  await page.locator('#ws-status').filter({ hasText: 'Saved' }).waitFor();
  assert.equal((await pageApi(page, `/websites/${throwaway.id}`)).data.retentionDays, null);
  await screenshot(page, 'dashboard-website-settings-saved');

  // Delete: cancelled first, then confirmed.
  await page.locator('#ws-delete').click();
  await page.locator('#confirm-dialog').waitFor({ state: 'visible' });
  await page.locator('#confirm-cancel').click();
  assert.equal((await pageApi(page, `/websites/${throwaway.id}`)).data.id, throwaway.id, 'still there');
  await page.locator('#ws-delete').click();
  await page.locator('#confirm-ok').click();
  await page.waitForURL(`${server.base}/`);
  const gone = await api(server.base, 'GET', `/websites/${throwaway.id}`, session);
  assert.equal(gone.status, 404);
  assertClean(page, 'website settings', [
    { method: 'PATCH', url: `${server.base}/api/v1/websites/${throwaway.id}`, status: 400 }, // 5000 days
  ]);
  await page.context().close();
});

// ---- 5. Phone width, keyboard, screenshots ----

test('at 390 px nothing scrolls sideways; screenshots at desktop and phone width', async () => {
  for (const [width, height, label] of [[1280, 900, 'desktop'], [390, 844, 'phone']]) {
    const page = await newPage(browser, { width, height, locale: 'en-US' });
    await logIn(page);
    await page.goto(`${server.base}/websites/${ids.shop}`);
    await ready(page);
    assert.ok(await scrollWidth(page) <= width, `dashboard at ${width} px: ${await scrollWidth(page)}`);
    await screenshot(page, `dashboard-${label}`);
    await page.locator('#panel-sources button.row[data-value="news.example"]').click();
    await ready(page);
    assert.ok(await scrollWidth(page) <= width, `filtered dashboard at ${width} px`);
    await page.locator('#custom-toggle').click();
    await page.locator('#export-menu summary').click();
    assert.ok(await scrollWidth(page) <= width, `custom range and export menu at ${width} px`);

    await page.goto(`${server.base}/websites/${ids.shop}/settings`);
    await page.locator('#ws-content').waitFor({ state: 'visible' });
    assert.ok(await scrollWidth(page) <= width, `website settings at ${width} px`);
    await screenshot(page, `dashboard-website-settings-${label}`);

    await page.goto(`${server.base}/settings#api-keys`);
    await page.locator('#api-key-loading').waitFor({ state: 'hidden' });
    assert.ok(await scrollWidth(page) <= width, `settings at ${width} px`);
    await page.locator('#api-key-name').fill('Reporting script');
    await page.locator('#api-key-generate').click();
    await page.locator('#api-key-new').waitFor({ state: 'visible' });
    await page.locator('#api-key-new-dismiss').click();
    assert.ok(await scrollWidth(page) <= width, `API keys at ${width} px`);
    await screenshot(page, `dashboard-settings-api-keys-${label}`);
    await page.evaluate(() => document.getElementById('api-keys').scrollIntoView({ block: 'start' }));
    await viewportScreenshot(page, `dashboard-settings-api-keys-${label}-section`);
    assertClean(page, `pages at ${width} px`);
    await page.context().close();
  }
});

test('every control of the dashboard is reached and used with the keyboard', async () => {
  const page = await newPage(browser, { width: 1280, height: 900, locale: 'en-US' });
  await logIn(page);
  await page.goto(`${server.base}/websites/${ids.shop}`);
  await ready(page);
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    if (!a) return '';
    return a.id || a.dataset.preset || a.dataset.report || (a.classList.contains('row') ? `row:${a.closest('[data-panel]').dataset.panel}` : '')
      || (a.classList.contains('panel-more') ? `more:${a.closest('[data-panel]').dataset.panel}` : '')
      || (a.tagName === 'SUMMARY' ? `summary:${a.parentElement.id || a.parentElement.className}` : '')
      || (a.classList.contains('help-button') ? `help:${a.closest('.stat').dataset.metric}` : a.tagName);
  });
  const reached = new Set();
  await page.locator('#website-back').focus();
  for (let i = 0; i < 140; i += 1) {
    await page.keyboard.press('Tab');
    reached.add(await focused());
  }
  for (const control of ['site-settings-link', 'today', '7d', '30d', 'month', '12m', 'custom-toggle', 'summary:export-menu',
    'help:uniqueVisitors', 'help:viewsPerSession', 'metric-select', 'summary:chart-table', 'entry-pages', 'utm-sources',
    'languages', 'screens', 'row:pages', 'row:sources', 'row:locations', 'row:devices', 'row:events', 'more:pages', 'summary:help']) {
    assert.ok(reached.has(control), `Tab reaches ${control} (reached: ${[...reached].join(', ')})`);
  }

  // Used by keyboard: a preset, the metric, a row, the chip's remove button, a help button.
  await page.locator('.period [data-preset="7d"]').focus();
  await page.keyboard.press('Enter');
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.get('period'), '7d');
  await page.locator('#metric-select').focus();
  await page.keyboard.press('ArrowDown');
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.get('metric'), 'pageviews');
  await page.locator('#panel-sources button.row').first().focus();
  await page.keyboard.press('Enter');
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.has('referrer'), true);
  await page.locator('#filter-list .chip-remove').focus();
  await page.keyboard.press('Enter');
  await ready(page);
  assert.equal(new URL(page.url()).searchParams.has('referrer'), false);
  await page.locator('#card-bounceRate .help-button').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#card-bounceRate .stat-help').isVisible(), true);
  assert.match(await page.locator('#card-bounceRate .stat-help').innerText(), /exactly one pageview/);
  await page.locator('#custom-toggle').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'range-from');
  await page.locator('#export-menu summary').focus();
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'export-csv');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#export-menu').getAttribute('open'), null);
  assertClean(page, 'keyboard');
  await page.context().close();
});

// ---- 6. jetrack demo, then serve ----

test('`jetrack demo` then `jetrack serve` shows a populated dashboard', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'jetrack-demo-'));
  const dataDir = path.join(root, 'data');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('JETRACK_')));
  Object.assign(env, { HOME: root, XDG_DATA_HOME: path.join(root, 'share') });
  const started = Date.now();
  const { stdout } = await promisify(execFile)(RELEASE_BINARY, ['--data-dir', dataDir, 'demo'], { env });
  const took = Date.now() - started;
  console.log(`# jetrack demo took ${took} ms`);
  const password = /with the password (\S+)/.exec(stdout)?.[1];
  const link = /(http:\/\/\S+\/websites\/([0-9a-f-]{36}))/.exec(stdout);
  assert.ok(password && link, stdout);
  assert.match(stdout, /200000 pageviews/);

  const demo = await startServer({ binary: true, args: ['--data-dir', dataDir], expectSetupLink: false });
  try {
    for (const [width, height, label] of [[1280, 900, 'desktop'], [390, 844, 'phone']]) {
      const page = await newPage(browser, { width, height, locale: 'en-US' });
      await logIn(page, demo.base, { email: 'demo@example.com', password });
      await page.goto(`${demo.base}/websites/${link[2]}`);
      await ready(page, 30_000);
      const visitors = Number(await page.locator('#card-uniqueVisitors').getAttribute('data-value'));
      const pageviews = Number(await page.locator('#card-totalPageviews').getAttribute('data-value'));
      assert.ok(visitors > 5_000 && pageviews > 30_000, `a populated dashboard: ${visitors} visitors, ${pageviews} pageviews`);
      assert.equal(await page.locator('#chart').getAttribute('data-points'), '30');
      for (const panel of ['pages', 'sources', 'locations', 'devices', 'events']) {
        assert.equal(await page.locator(`#panel-${panel} button.row`).count(), 10, panel);
      }
      assert.ok(await scrollWidth(page) <= width);
      await screenshot(page, `dashboard-demo-${label}`);
      await viewportScreenshot(page, `dashboard-demo-${label}-top`);
      assert.deepEqual(foreignRequests(page, demo.base), []);
      assert.deepEqual(problemsOf(page), []);
      await page.context().close();
    }
  } finally {
    await demo.stop();
    await rm(root, { recursive: true, force: true });
  }
});
