// Settings → API Keys: generate a key (its secret shown once), list the keys, and the
// Danger Zone to regenerate or revoke one, each after a confirmation dialog.
import { api } from '../api.js';
import { copyButton } from '../clipboard.js';
import { confirmAction } from '../dialog.js';
import { el } from '../dom.js';
import {
  onSubmit, setBusy, showFieldError, showGeneralError, trimmedValue,
} from '../forms.js';
import { formatDate, formatRelative, timeElement } from '../format.js';

const MAX_KEYS = 20;
const SCOPES = { full: 'Full access', read: 'Read only' };

const keyLabel = (key) => `${key.prefix}…${key.name ? ` (${key.name})` : ''}`;

function prefixElement(key) {
  return el('code', { className: 'key-prefix', title: 'The start of the key' }, `${key.prefix}…`);
}

function expiryElement(key) {
  if (!key.expiresAt) return document.createTextNode('Never');
  if (new Date(key.expiresAt).getTime() <= Date.now()) {
    return el('span', { className: 'badge badge-danger' }, 'Expired ', timeElement(key.expiresAt, formatDate(key.expiresAt)));
  }
  return timeElement(key.expiresAt, formatDate(key.expiresAt));
}

function keyRow(key) {
  const cell = (label, ...content) => el('td', { dataset: { label } }, ...content);
  return el(
    'tr',
    { dataset: { keyId: key.id } },
    cell('Key', prefixElement(key)),
    cell('Name', key.name ? key.name : el('span', { className: 'muted' }, 'Unnamed')),
    cell('Access', el('span', { className: `badge badge-${key.scope}` }, SCOPES[key.scope] || key.scope)),
    cell('Created', timeElement(key.createdAt, formatDate(key.createdAt))),
    cell('Last used', key.lastUsedAt
      ? timeElement(key.lastUsedAt, formatRelative(key.lastUsedAt))
      : el('span', { className: 'muted' }, 'Never')),
    cell('Expires', expiryElement(key)),
  );
}

function dangerItem(key) {
  const button = (className, text) => el('button', {
    type: 'button',
    className: `button button-small ${className}`,
    dataset: { keyId: key.id },
    attrs: { 'aria-label': `${text} ${keyLabel(key)}` },
  }, text);
  return el(
    'li',
    { className: 'danger-item' },
    el('div', { className: 'danger-key' }, prefixElement(key),
      key.name ? el('span', { className: 'danger-key-name' }, key.name) : null),
    el('div', { className: 'danger-actions' },
      button('button-secondary api-key-regenerate', 'Regenerate Key'),
      button('button-danger api-key-revoke', 'Revoke API Key')),
  );
}

/** Fills the #api-keys section of `root`; `onChange()` runs after every change to the keys. */
export function setupApiKeys(root, { signal, onChange }) {
  // Looked up once: `root` is a template fragment that empties when the page is inserted.
  const elements = new Map();
  for (const node of root.querySelectorAll('#api-keys [id]')) elements.set(node.id, node);
  const $ = (id) => elements.get(id);
  const form = $('api-key-form');
  const formError = $('api-key-error');
  const generate = $('api-key-generate');
  const table = $('api-key-list');
  const danger = $('api-keys-danger');
  const status = $('api-keys-status');
  const actionError = $('api-keys-action-error');
  const newBox = $('api-key-new');
  const newValue = $('api-key-new-value');

  let keys = [];
  let shownKeyId = null; // whose secret the once-only box shows

  function render() {
    table.tBodies[0].replaceChildren(...keys.map(keyRow));
    $('api-keys-danger-list').replaceChildren(...keys.map(dangerItem));
    table.hidden = keys.length === 0;
    danger.hidden = keys.length === 0;
    $('api-key-empty').hidden = keys.length > 0;
    $('api-key-count').textContent = `${keys.length} of ${MAX_KEYS} keys`;
  }

  function showNewKey(id, secret, heading) {
    shownKeyId = id;
    $('api-key-new-heading').textContent = heading;
    newValue.value = secret;
    $('api-key-copy-status').textContent = '';
    newBox.hidden = false;
    newValue.focus();
    newValue.select();
  }

  function hideNewKey() {
    shownKeyId = null;
    newValue.value = '';
    newBox.hidden = true;
  }

  async function load() {
    try {
      keys = await api.get('/account/api-keys');
      if (signal.aborted) return;
      render();
    } catch (error) {
      if (signal.aborted) return;
      showGeneralError(actionError, `Could not load your API keys: ${error.message}`);
    } finally {
      $('api-key-loading').hidden = true;
    }
  }

  function expiresInDays() {
    const input = form.elements.expiresInDays;
    if (input.validity.badInput) return NaN;
    const raw = input.value.trim();
    return raw === '' ? undefined : Number(raw);
  }

  onSubmit(form, {
    submit: generate, general: formError, busyLabel: 'Generating…',
  }, async () => {
    status.textContent = '';
    const days = expiresInDays();
    if (Number.isNaN(days)) {
      showFieldError(form.elements.expiresInDays, 'Enter a number of days, or leave it empty.');
      form.elements.expiresInDays.focus();
      return;
    }
    const { key: secret, ...view } = await api.post('/account/api-keys', {
      name: trimmedValue(form, 'name') || undefined,
      scope: form.elements.scope.value,
      expiresInDays: days,
    });
    keys.push(view);
    render();
    form.reset();
    showNewKey(view.id, secret, 'Your new API key');
    onChange();
  });

  async function regenerate(button, key) {
    const confirmed = await confirmAction({
      title: 'Regenerate this API key?',
      message: `${keyLabel(key)} gets a new secret. The current one stops working at once, so every program that uses it needs the new key.`,
      confirmLabel: 'Regenerate Key',
    });
    if (!confirmed) return;
    setBusy(button, true, 'Regenerating…');
    try {
      const { key: secret, ...view } = await api.post(`/account/api-keys/${encodeURIComponent(key.id)}/regenerate`);
      keys = keys.map((k) => (k.id === view.id ? view : k));
      render();
      showNewKey(view.id, secret, `Your regenerated API key${view.name ? ` “${view.name}”` : ''}`);
      status.textContent = `Key ${key.prefix}… was replaced by ${view.prefix}…`;
      onChange();
    } catch (error) {
      setBusy(button, false);
      showGeneralError(actionError, error.message);
    }
  }

  async function revoke(button, key) {
    const confirmed = await confirmAction({
      title: 'Revoke this API key?',
      message: `${keyLabel(key)} will be deleted. Programs that use it stop working at once. This cannot be undone.`,
      confirmLabel: 'Revoke API Key',
    });
    if (!confirmed) return;
    setBusy(button, true, 'Revoking…');
    try {
      await api.delete(`/account/api-keys/${encodeURIComponent(key.id)}`);
      keys = keys.filter((k) => k.id !== key.id);
      if (shownKeyId === key.id) hideNewKey();
      render();
      status.textContent = `Key ${keyLabel(key)} was revoked.`;
      $('api-key-list-heading').focus();
      onChange();
    } catch (error) {
      setBusy(button, false);
      showGeneralError(actionError, error.message);
      // Someone else revoked it already: show the list as it is now.
      if (error.status === 404) load();
    }
  }

  $('api-keys-danger-list').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-key-id]');
    const key = button && keys.find((k) => k.id === button.dataset.keyId);
    if (!key || button.disabled) return;
    showGeneralError(actionError, '');
    status.textContent = '';
    if (button.classList.contains('api-key-revoke')) revoke(button, key);
    else regenerate(button, key);
  });

  copyButton($('api-key-copy'), () => newValue.value, $('api-key-copy-status'));
  $('api-key-new-dismiss').addEventListener('click', () => {
    hideNewKey();
    $('api-key-name').focus();
  });

  load();
  return () => hideNewKey();
}
