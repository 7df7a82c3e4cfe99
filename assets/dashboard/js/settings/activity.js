// Settings → Recent security activity: the account's audit log, newest first, 20 at a time.
import { api } from '../api.js';
import { el } from '../dom.js';
import { formatRelative, timeElement } from '../format.js';

const PAGE_SIZE = 20;

const LABELS = {
  login: 'Signed in',
  login_failed: 'Failed sign-in',
  logout: 'Signed out',
  password_changed: 'Password changed',
  key_created: 'API key created',
  key_regenerated: 'API key regenerated',
  key_revoked: 'API key revoked',
  website_created: 'Website added',
  website_deleted: 'Website deleted',
};

// Worth a second look when the account owner did not expect it.
const NOTABLE = new Set(['login_failed', 'password_changed', 'key_revoked', 'website_deleted']);

function row(entry) {
  const label = LABELS[entry.action] || entry.action;
  return el(
    'tr',
    { dataset: { action: entry.action } },
    el('td', { dataset: { label: 'When' } }, el('span', {}, timeElement(entry.at), ' ',
      el('span', { className: 'muted relative' }, `(${formatRelative(entry.at)})`))),
    el('td', { dataset: { label: 'Activity' } },
      el('span', { className: NOTABLE.has(entry.action) ? 'activity notable' : 'activity' }, label)),
    el('td', { className: 'mono', dataset: { label: 'IP address' } }, entry.ip || '—'),
    el('td', { className: 'detail', dataset: { label: 'Details' } }, entry.detail || '—'),
  );
}

/** Fills the #security-activity section of `root`; returns {refresh} for other sections. */
export function setupActivity(root, { signal }) {
  const table = root.querySelector('#security-activity-list');
  const body = table.tBodies[0];
  const loading = root.querySelector('#security-activity-loading');
  const empty = root.querySelector('#security-activity-empty');
  const error = root.querySelector('#security-activity-error');
  const more = root.querySelector('#security-activity-more');
  table.tabIndex = -1;

  let page = 0;
  let generation = 0; // a refresh makes answers to older requests stale

  async function load(next, { replace }) {
    const mine = ++generation;
    more.disabled = true;
    try {
      const { data, meta } = await api.getPage(`/account/audit-log?limit=${PAGE_SIZE}&page=${next}`);
      if (signal.aborted || mine !== generation) return;
      const rows = data.map(row);
      if (replace) body.replaceChildren(...rows);
      else body.append(...rows);
      page = next;
      error.hidden = true;
      const hadFocus = document.activeElement === more;
      more.hidden = !(meta.pagination && meta.pagination.hasMore);
      if (hadFocus && more.hidden) table.focus();
    } catch (failure) {
      if (signal.aborted || mine !== generation) return;
      error.textContent = `Could not load the activity: ${failure.message}`;
      error.hidden = false;
    } finally {
      if (mine === generation) {
        more.disabled = false;
        loading.hidden = true;
        table.hidden = body.rows.length === 0;
        empty.hidden = body.rows.length > 0 || !error.hidden;
      }
    }
  }

  more.addEventListener('click', () => load(page + 1, { replace: false }));
  load(1, { replace: true });

  return {
    refresh: () => load(1, { replace: true }),
  };
}
