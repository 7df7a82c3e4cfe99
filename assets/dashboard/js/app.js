// Entry point of the logged-in dashboard (app.html): check the session, then hand the
// page to the router.
import { api, setUnauthorizedHandler } from './api.js';
import { cloneTemplate, setTitle } from './dom.js';
import { initNav, setActiveNav } from './nav.js';
import { startRouter } from './router.js';
import { notFound, routes } from './routes.js';
import { setAccount } from './session.js';

const outlet = document.getElementById('main');

function goToLogin() {
  const next = location.pathname + location.search + location.hash;
  location.replace(`/login?next=${encodeURIComponent(next)}`);
}

function showStartupError(error) {
  setTitle('Unavailable');
  const page = cloneTemplate('tpl-startup-error');
  page.querySelector('#startup-error-message').textContent = error.message;
  page.querySelector('#startup-retry').addEventListener('click', () => location.reload());
  outlet.replaceChildren(page);
}

async function start() {
  setUnauthorizedHandler(goToLogin);
  let session;
  try {
    session = await api.get('/auth/session');
  } catch (error) {
    if (error.status !== 401) showStartupError(error);
    return;
  }
  setAccount(session.account);
  initNav(session.account);
  await startRouter({ routes, notFound, outlet, onRoute: setActiveNav });
}

start();
