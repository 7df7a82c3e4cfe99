// Helpers of the end-to-end ingestion test (ingest.test.mjs): a tiny site on its own local
// origin, the Jetrack API from Node, the database read back with sql.js (SQLite compiled to
// WebAssembly: no native build, no sqlite3 command needed), and the visitor id of SPEC 3.4.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';

import initSqlJs from 'sql.js';

/**
 * An HTTP server on 127.0.0.1 and a free port that answers `pages[pathname]` (HTML) and 404
 * otherwise. Its pages are reached as http://127.0.0.1:<port>/… and, as another origin, as
 * http://localhost:<port>/…. Returns `{port, hits, close()}`; `hits` lists `host path` of
 * every request it got.
 */
export async function startSite(pages) {
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.headers.host} ${req.url}`);
    const page = pages[new URL(req.url, 'http://x').pathname];
    if (page === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(typeof page === 'function' ? page(req) : page);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    hits,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** `{status, headers, json}` of a call to `<base>/api/v1<path>` from Node. */
export async function api(base, method, path, { cookie, csrf, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (cookie) headers.Cookie = cookie;
  if (csrf) headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

/**
 * Creates the first account through `POST /auth/setup` with the printed setup link's token;
 * returns `{cookie, csrf}` of its session.
 */
export async function setupAccount(server, account) {
  const token = new URL(server.setupUrl).searchParams.get('token');
  const response = await api(server.base, 'POST', '/auth/setup', { body: { token, ...account } });
  if (response.status !== 201) throw new Error(`setup: ${response.status} ${JSON.stringify(response.json)}`);
  const setCookie = response.headers.getSetCookie().find((c) => c.startsWith('jetrack_session='));
  if (!setCookie) throw new Error('setup set no jetrack_session cookie');
  return { cookie: setCookie.split(';')[0], csrf: response.json.data.csrfToken };
}

/** SPEC 3.4, cookie mode: the first 8 bytes of SHA-256(website id ‖ the bj_vid UUID), read as
 * a big-endian signed 64-bit integer (as `visits.visitor` stores it), as a BigInt. */
export function cookieVisitorId(websiteId, uuid) {
  const digest = createHash('sha256').update(websiteId.toLowerCase()).update(uuid.toLowerCase()).digest();
  return digest.readBigInt64BE(0);
}

/**
 * The database file read into memory (the server must have stopped, so that everything is in
 * the main file), with its rows resolved like tests/common/ingest.rs resolves them. Visitor
 * ids are BigInt (they exceed 2^53), other integers Number. Call `close()` when done.
 */
export async function readDatabase(file) {
  const SQL = await initSqlJs();
  const db = new SQL.Database(await readFile(file));
  const rows = (sql, params = []) => {
    const statement = db.prepare(sql);
    statement.bind(params);
    const out = [];
    while (statement.step()) out.push(statement.getAsObject());
    statement.free();
    return out;
  };
  const s = (col) => `(SELECT value FROM strings WHERE id = v.${col}) AS ${col}`;
  const site = (websiteId) => rows('SELECT num FROM sites WHERE website_id = ?', [websiteId])[0]?.num;
  return {
    integrity: rows('PRAGMA integrity_check').map((r) => r.integrity_check),
    site,
    pageviews: (websiteId) => rows(
      `SELECT p.at, p.visit, h.value AS hostname, s.value AS path FROM pageviews p
       JOIN strings h ON h.id = p.hostname JOIN strings s ON s.id = p.path
       WHERE p.site = ? ORDER BY p.at, p.seq`, [site(websiteId)],
    ),
    events: (websiteId) => rows(
      `SELECT e.at, e.visit, n.value AS name, e.props FROM events e
       JOIN strings n ON n.id = e.name WHERE e.site = ? ORDER BY e.at, e.seq`, [site(websiteId)],
    ).map((e) => ({ ...e, props: e.props === null ? null : JSON.parse(e.props) })),
    visits: (websiteId) => rows(
      `SELECT v.id, CAST(v.visitor AS TEXT) AS visitor, v.first_at, v.last_at, v.pv_first_at,
              v.pv_last_at, v.pageviews, v.events, ${s('entry')}, ${s('exit')}, ${s('hostname')},
              ${s('referrer')}, ${s('utm_source')}, ${s('utm_medium')}, ${s('utm_campaign')},
              ${s('utm_term')}, ${s('utm_content')}, v.country, ${s('browser')}, ${s('os')},
              ${s('device')}, ${s('language')}, ${s('screen')}
       FROM visits v WHERE v.site = ? ORDER BY v.first_at, v.id`, [site(websiteId)],
    ).map((v) => ({ ...v, visitor: BigInt(v.visitor) })),
    close: () => db.close(),
  };
}
