// Harness of the tracking-script tests: a mock collector that serves the script and records
// every POST /api/collect, a second origin that serves the tracked site, and a system
// Chromium driven by playwright-core (borrowed from tests/browser/node_modules, so there is
// one pinned copy of it in the repository).
//
// Both servers listen on 127.0.0.1 on free ports: different ports make different origins, so
// the script, its collector and the site are cross-origin as in production. Chromium counts
// 127.0.0.1 as localhost, so pages that should be tracked carry data-allow-localhost="true".

import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from '../browser/node_modules/playwright-core/index.mjs';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCRIPT_PATH = path.join(REPO_ROOT, 'assets', 'tracker', 'jetrack.js');

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

function close(server) {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

async function serveScript(res) {
  // Read on every request, so the file under test is always the one in the repository.
  const body = await readFile(SCRIPT_PATH);
  res.writeHead(200, {
    'Content-Type': 'text/javascript; charset=utf-8',
    'Cache-Control': 'no-store',
    'Access-Control-Allow-Origin': '*',
  });
  res.end(body);
}

/**
 * The mock collector. `hits` holds every request to /api/collect in arrival order:
 * `{method, contentType, origin, cookie, raw, body}` (`body` is the parsed JSON of a POST).
 */
export async function startCollector() {
  const hits = [];
  const scriptLoads = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://collector');
    if (req.method === 'GET' && url.pathname === '/js/jetrack.js') {
      scriptLoads.push(req.headers.referer || '');
      serveScript(res).catch((e) => { res.writeHead(500); res.end(String(e)); });
      return;
    }
    if (url.pathname === '/api/collect') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const hit = {
          method: req.method,
          contentType: req.headers['content-type'] || '',
          origin: req.headers.origin || '',
          cookie: req.headers.cookie || '',
          raw,
          body: null,
        };
        if (req.method === 'POST') {
          try {
            hit.body = JSON.parse(raw);
          } catch {
            hit.body = { unparsable: raw };
          }
        }
        hits.push(hit);
        if (req.method === 'OPTIONS') {
          res.writeHead(204, {
            'Access-Control-Allow-Origin': '*',
            'Access-Control-Allow-Methods': 'POST, OPTIONS',
            'Access-Control-Allow-Headers': 'Content-Type',
            'Access-Control-Max-Age': '86400',
          });
        } else {
          res.writeHead(req.method === 'POST' ? 202 : 405, { 'Access-Control-Allow-Origin': '*' });
        }
        res.end();
      });
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (req.method === 'GET' && url.pathname === '/landing') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>landing</title><p>outside the tracked site</p>');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const origin = await listen(server);

  /** Parsed POST bodies of one website id (every test uses its own id). */
  const events = (websiteId) => hits
    .filter((h) => h.method === 'POST' && h.body && h.body.websiteId === websiteId)
    .map((h) => h.body);

  /** Wait until `predicate(events(websiteId))` holds; fail with what arrived. */
  async function waitFor(websiteId, predicate, what, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const list = events(websiteId);
      if (predicate(list)) return list;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; received:\n${JSON.stringify(list, null, 1)}`);
      }
      await sleep(25);
    }
  }

  /**
   * A browser-context route that plays this collector on another origin (`https://...`): an
   * https page may not reach 127.0.0.1 (Chromium's local network access), so the https test
   * intercepts its script and collect requests and records them here.
   */
  async function routeAs(context, fakeOrigin) {
    await context.route(`${fakeOrigin}/**`, async (route) => {
      const req = route.request();
      const url = new URL(req.url());
      if (url.pathname === '/js/jetrack.js') {
        scriptLoads.push(req.headers().referer || '');
        await route.fulfill({ status: 200, contentType: 'text/javascript', body: await readFile(SCRIPT_PATH, 'utf8') });
        return;
      }
      if (url.pathname === '/api/collect' && req.method() === 'POST') {
        const headers = await req.allHeaders();
        const raw = req.postData() || '';
        let body;
        try {
          body = JSON.parse(raw);
        } catch {
          body = { unparsable: raw };
        }
        hits.push({
          method: 'POST', contentType: headers['content-type'] || '', origin: headers.origin || '',
          cookie: headers.cookie || '', raw, body,
        });
        await route.fulfill({ status: 202, headers: { 'Access-Control-Allow-Origin': '*' }, body: '' });
        return;
      }
      await route.fulfill({ status: 404, body: '' });
    });
  }

  return { origin, hits, scriptLoads, events, waitFor, routeAs, stop: () => close(server) };
}

/**
 * The tracked site: every GET path answers the page described by `site.page` (set by each
 * test before it navigates; the tests of a file run one after the other). `site.page` is
 * `{attrs: {name: value}, body: html, scriptSrc?: url}`; the snippet is
 * `<script defer src=scriptSrc ...attrs>`. `/js/jetrack.js` is served here too, for the
 * data-host-url test.
 */
export async function startSite(defaultScriptSrc) {
  const site = {
    origin: '',
    page: { attrs: {}, body: '' },
    stop: null,
  };
  const escape = (s) => String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://site');
    if (url.pathname === '/js/jetrack.js') {
      serveScript(res).catch((e) => { res.writeHead(500); res.end(String(e)); });
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const { attrs = {}, body = '', scriptSrc = defaultScriptSrc } = site.page;
    const attrText = Object.entries(attrs).map(([k, v]) => ` ${k}="${escape(v)}"`).join('');
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>site ${escape(url.pathname)}</title>
<script defer src="${escape(scriptSrc)}"${attrText}></script>
</head><body><h1>${escape(url.pathname)}</h1>
${body}
</body></html>`);
  });
  site.origin = await listen(server);
  site.stop = () => close(server);
  return site;
}

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

/**
 * A page in a new context (its own cookies and storage). `page.problems` collects uncaught
 * exceptions and console errors, which every test expects to stay empty.
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 720 },
    ...contextOptions,
  });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e && e.stack ? e.stack : e}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push(`console: ${m.text()}`);
  });
  return { context, page };
}

// Init scripts (they run in every document of the context before the page's own scripts).

/** document.visibilityState follows window.__vis, which the test flips. */
export const FAKE_VISIBILITY = `
  window.__vis = 'visible';
  Object.defineProperty(Document.prototype, 'visibilityState', {
    configurable: true, get() { return window.__vis; } });
  Object.defineProperty(Document.prototype, 'hidden', {
    configurable: true, get() { return window.__vis !== 'visible'; } });
`;

/** Counts every attempt to write a cookie or Web Storage, in window.__writes. */
export const COUNT_WRITES = `
  window.__writes = [];
  for (const m of ['setItem', 'removeItem', 'clear']) {
    const orig = Storage.prototype[m];
    Storage.prototype[m] = function (...args) {
      window.__writes.push('storage.' + m + ' ' + args.join(','));
      return orig.apply(this, args);
    };
  }
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  Object.defineProperty(Document.prototype, 'cookie', {
    configurable: true,
    get() { return cookie.get.call(this); },
    set(v) { window.__writes.push('cookie ' + v); cookie.set.call(this, v); },
  });
`;
