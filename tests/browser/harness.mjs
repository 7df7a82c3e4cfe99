// Shared harness of the headless-Chromium tests: a Jetrack server started the way the README
// says (or the release binary directly), isolated in a temporary HOME on a free port, and a
// system Chromium driven by playwright-core.
//
// Nothing here reads the machine's own Jetrack state: every JETRACK_* variable is removed,
// HOME and XDG_DATA_HOME point into a fresh temporary folder, and the server listens on
// 127.0.0.1:0, so a database or a server left on the machine cannot change a result.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

/** The repository root: two levels above tests/browser. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The static release executable (SPEC 9). */
export const RELEASE_BINARY = path.join(
  REPO_ROOT, 'target', 'x86_64-unknown-linux-gnu', 'release', 'jetrack',
);

export const SCREENSHOT_DIR = path.join(REPO_ROOT, 'target', 'screenshots');

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

/** How long the README command may take to print its listening line (cargo may build). */
const START_TIMEOUT_MS = 180_000;
/** How long `stop()` waits for a graceful exit before it kills the process group. */
const STOP_TIMEOUT_MS = 20_000;

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:(\d+))/;
const SETUP_LINK = /(https?:\/\/\S+\/setup\?token=[0-9A-Za-z]+)/;

// Process groups still running, killed when the test process exits whatever happens, so a
// failed test never leaves a server behind.
const running = new Set();
process.on('exit', () => {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** The first line of the README's first ```sh block: the command that starts the server. */
export async function readmeServeCommand() {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /^```sh[ \t]*\r?\n([\s\S]*?)^```/m.exec(readme);
  if (!block) throw new Error('README.md has no ```sh code block');
  const line = block[1].split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '');
  if (!line) throw new Error('the first ```sh block of README.md is empty');
  return line;
}

function shellQuote(word) {
  const s = String(word);
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/**
 * Starts a Jetrack server in a fresh temporary HOME.
 *
 * options:
 * - `args`: extra command-line words, appended to the command.
 * - `env`: extra environment variables (after the isolation ones, so they may override them).
 * - `binary: true`: run `target/x86_64-unknown-linux-gnu/release/jetrack serve` directly
 *   instead of the README's command (the binary must have been built).
 * - `expectSetupLink` (default true): wait for the setup link on stdout, and fail without it.
 *   Pass false for a server whose data dir already holds an account.
 *
 * Returns `{base, port, setupUrl, dataDir, tmp, home, command, child, stop(), stdout(),
 * stderr()}`. `stop()` sends SIGTERM to the whole process group (`cargo run` runs the real
 * executable as its child), waits until every process of it is gone and the output is
 * closed, removes the temporary folder and resolves to `{code, signal}` of the started
 * process, which is the server itself when the command is a simple one (see `script`).
 */
export async function startServer({ args = [], env = {}, binary = false, expectSetupLink = true } = {}) {
  const tmp = await mkdtemp(path.join(tmpdir(), 'jetrack-browser-'));
  const home = path.join(tmp, 'home');
  await mkdir(home, { recursive: true });

  const childEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('JETRACK_')) childEnv[key] = value;
  }
  // rustup and cargo find their toolchains and registry cache under the real HOME unless
  // told otherwise: keep them there, so only Jetrack sees the temporary HOME.
  for (const [key, dir] of [['RUSTUP_HOME', '.rustup'], ['CARGO_HOME', '.cargo']]) {
    if (!childEnv[key] && existsSync(path.join(homedir(), dir))) {
      childEnv[key] = path.join(homedir(), dir);
    }
  }
  Object.assign(childEnv, {
    HOME: home,
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    JETRACK_LISTEN: '127.0.0.1:0',
  }, env);

  let base;
  if (binary) {
    if (!existsSync(RELEASE_BINARY)) {
      throw new Error(`${RELEASE_BINARY} is missing: run \`cargo build --release\` first`);
    }
    base = `${shellQuote(RELEASE_BINARY)} serve`;
  } else {
    base = await readmeServeCommand();
  }
  const command = [base, ...args.map(shellQuote)].join(' ');
  // A simple command replaces the shell (and `cargo run` replaces itself with the program it
  // built), so the process we started is the server itself and its exit status is the
  // server's own.
  const script = /^[^;&|<>()`$\n]+$/.test(command) ? `exec ${command}` : command;

  // The data dir the server will use: an explicit one, else the platform default under the
  // temporary XDG_DATA_HOME.
  let dataDir = path.join(home, '.local', 'share', 'jetrack');
  if (childEnv.JETRACK_DATA_DIR) dataDir = path.resolve(REPO_ROOT, childEnv.JETRACK_DATA_DIR);
  const flag = args.findIndex((a) => a === '--data-dir' || String(a).startsWith('--data-dir='));
  if (flag >= 0) {
    const value = args[flag] === '--data-dir' ? args[flag + 1] : String(args[flag]).slice('--data-dir='.length);
    dataDir = path.resolve(REPO_ROOT, value);
  }

  const child = spawn('sh', ['-c', script], {
    cwd: REPO_ROOT,
    env: childEnv,
    detached: true, // its own process group, so stop() reaches cargo's child too
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child.pid);

  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => { out += chunk; });
  child.stderr.setEncoding('utf8').on('data', (chunk) => { err += chunk; });
  const closed = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let exited = null;
  closed.then((result) => { exited = result; });

  let stopped = null;
  async function stop() {
    if (stopped) return stopped;
    stopped = (async () => {
      if (groupAlive(child.pid)) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // gone meanwhile
        }
      }
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (groupAlive(child.pid) && Date.now() < deadline) await sleep(50);
      if (groupAlive(child.pid)) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        while (groupAlive(child.pid)) await sleep(50);
      }
      const result = await closed;
      running.delete(child.pid);
      await rm(tmp, { recursive: true, force: true });
      return result;
    })();
    return stopped;
  }

  const describe = () => `command: ${command}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`;

  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let match = null;
    // `serve` prints its address to stdout, after the setup link when there is one.
    while (!(match = LISTENING.exec(out))) {
      if (exited) {
        throw new Error(`the server exited before listening (${JSON.stringify(exited)})\n${describe()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`the server did not print its listening line in ${START_TIMEOUT_MS / 1000} s\n${describe()}`);
      }
      await sleep(50);
    }
    const origin = match[1];
    const port = Number(match[2]);

    let setupUrl = null;
    const linkDeadline = Date.now() + (expectSetupLink ? 5_000 : 300);
    for (;;) {
      const line = out.split('\n').find((l) => l.includes('/setup?token='));
      const link = line && SETUP_LINK.exec(line);
      if (link) {
        setupUrl = link[1];
        break;
      }
      if (Date.now() > linkDeadline) break;
      await sleep(20);
    }
    if (expectSetupLink && !setupUrl) {
      throw new Error(`the server printed no setup link on stdout\n${describe()}`);
    }

    const database = path.join(dataDir, 'jetrack.db');
    if (!existsSync(database)) {
      throw new Error(`the server is listening but ${database} does not exist\n${describe()}`);
    }

    return {
      base: origin,
      port,
      setupUrl,
      dataDir,
      tmp,
      home,
      command,
      child,
      stop,
      stdout: () => out,
      stderr: () => err,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A headless system Chromium (never a downloaded browser). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * A page in a new browser context (its own cookies) with the given viewport. The page
 * records, for the test to check:
 * - `page.consoleErrors`: `{text, url, pageUrl}` of every console message of type error
 *   (`url` is the resource or script the message is about, when the browser says);
 * - `page.pageErrors`: uncaught exceptions, as strings;
 * - `page.requests`: every request URL, in order;
 * - `page.failedResponses`: `{method, url, status}` of every response with status ≥ 400;
 * - `page.failedRequests`: `{url, method, error, pageUrl, navigation}` of requests that
 *   failed at the network level (no response, or cancelled by the browser).
 */
export async function newPage(browser, { width = 1280, height = 800, ...contextOptions } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, ...contextOptions });
  const page = await context.newPage();
  page.consoleErrors = [];
  page.pageErrors = [];
  page.requests = [];
  page.failedResponses = [];
  page.failedRequests = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      page.consoleErrors.push({ text: msg.text(), url: msg.location().url || '', pageUrl: page.url() });
    }
  });
  page.on('pageerror', (error) => {
    page.pageErrors.push(String(error && error.stack ? error.stack : error));
  });
  page.on('request', (request) => {
    page.requests.push(request.url());
  });
  page.on('response', (response) => {
    if (response.status() >= 400) {
      page.failedResponses.push({
        method: response.request().method(),
        url: response.url(),
        status: response.status(),
      });
    }
  });
  page.on('requestfailed', (request) => {
    page.failedRequests.push({
      url: request.url(),
      method: request.method(),
      error: request.failure()?.errorText || '',
      pageUrl: page.url(),
      navigation: request.isNavigationRequest(),
    });
  });
  return page;
}

/** A full-page screenshot at `<repo>/target/screenshots/<name>.png`; returns its path. */
export async function screenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  // From the top: a full-page capture of a scrolled page paints the sticky top bar where the
  // viewport was, in the middle of the picture.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide' });
  return file;
}

/**
 * The problems the page saw, as sentences (an empty list when all is well): console errors,
 * uncaught exceptions, requests that failed at the network level, and responses with a
 * status ≥ 400 except the `expected` ones: a list of `{url, status, method?}` (url exact, or
 * a RegExp), each of which must have happened exactly as often as it is listed. A "Failed to
 * load resource: … status of N" console message is allowed only for such an expected
 * response (same URL and status). Use as `assert.deepEqual(problemsOf(page, [...]), [])`.
 */
export function problemsOf(page, expected = []) {
  const problems = [];
  const matches = (e, r) => (e.url instanceof RegExp ? e.url.test(r.url) : e.url === r.url)
    && e.status === r.status && (!e.method || e.method === r.method);

  const unused = [...expected];
  for (const response of page.failedResponses) {
    const i = unused.findIndex((e) => matches(e, response));
    if (i >= 0) unused.splice(i, 1);
    else problems.push(`unexpected response ${response.status} to ${response.method} ${response.url}`);
  }
  for (const e of unused) problems.push(`expected response ${e.status} to ${e.method || ''} ${e.url} did not happen`);

  const loadFailed = /^Failed to load resource: the server responded with a status of (\d+)/;
  for (const message of page.consoleErrors) {
    const m = loadFailed.exec(message.text);
    const allowed = m && expected.some((e) => matches(
      { ...e, method: undefined }, { url: message.url, status: Number(m[1]) },
    ));
    if (!allowed) problems.push(`console error on ${message.pageUrl}: ${message.text} (${message.url})`);
  }
  for (const error of page.pageErrors) problems.push(`uncaught exception: ${error}`);
  for (const failed of page.failedRequests) {
    // A GET the browser cancelled (net::ERR_ABORTED) because the page went on to another
    // document, e.g. the favicon or a finished 401 when the app sends the browser to /login,
    // is not a fault. Anything else that got no response is.
    if (failed.method === 'GET' && failed.error === 'net::ERR_ABORTED') continue;
    problems.push(`request without response: ${failed.method} ${failed.url} (${failed.error}) on ${failed.pageUrl}`);
  }
  return problems;
}

/** The request URLs of the page that do not go to `origin`. */
export function foreignRequests(page, origin) {
  return page.requests.filter((url) => {
    try {
      return new URL(url).origin !== origin;
    } catch {
      return true;
    }
  });
}

/**
 * A screenshot of the viewport only, as the page is scrolled now, at
 * `<repo>/target/screenshots/<name>.png`; returns its path. For a modal dialog (a full-page
 * capture paints its backdrop over the first screen only) or a section scrolled into view.
 */
export async function viewportScreenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false, animations: 'disabled', caret: 'hide' });
  return file;
}
