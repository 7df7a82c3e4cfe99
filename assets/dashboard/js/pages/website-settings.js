// /websites/:id/settings — a website's settings (SPEC 5): name, domain, time zone, cookie
// mode, retention, the snippet with its copy button, and deletion behind a confirmation.
import { api } from '../api.js';
import { cancelConfirm, confirmAction } from '../dialog.js';
import { cloneTemplate, setTitle } from '../dom.js';
import {
  onSubmit, setBusy, showFieldError, showGeneralError, trimmedValue,
} from '../forms.js';
import { navigate } from '../router.js';
import { fillSnippet } from '../snippet.js';
import { showWebsiteError } from '../website-error.js';
import { fillTimeZoneSelect } from '../timezones.js';

function fill(page, website) {
  const $ = (id) => page.querySelector(`#${id}`);
  setTitle(`${website.name} settings`);
  $('ws-title').textContent = website.name;
  $('ws-domain-label').textContent = website.domain;
  const form = $('ws-form');
  form.elements.name.value = website.name;
  form.elements.domain.value = website.domain;
  fillTimeZoneSelect(form.elements.timezone, website.timezone);
  form.elements.cookieMode.checked = website.cookieMode;
  form.elements.retentionDays.value = website.retentionDays ?? '';
  $('ws-snippet').textContent = website.trackingSnippet;
  page.querySelector('#ws-snippet-section .snippet-domain').textContent = website.domain;
}

export async function renderWebsiteSettings(outlet, { params, signal }) {
  setTitle('Website settings');
  const page = cloneTemplate('tpl-website-settings').firstElementChild;
  const $ = (id) => page.querySelector(`#${id}`);
  outlet.append(page);
  const path = `/websites/${encodeURIComponent(params.id)}`;
  $('ws-back').href = path;
  let website;
  try {
    website = await api.get(path);
  } catch (error) {
    if (!signal.aborted) showWebsiteError(page, error, { box: 'ws-error', title: 'ws-error-title', message: 'ws-error-message', content: 'ws-content' });
    return undefined;
  } finally {
    page.querySelector('#ws-loading').hidden = true;
  }
  if (signal.aborted) return undefined;
  $('ws-error').remove();
  $('ws-content').hidden = false;
  fill(page, website);
  fillSnippet($('ws-snippet-section'), website);

  const form = $('ws-form');
  const status = $('ws-status');
  form.addEventListener('input', () => {
    status.textContent = '';
  });
  onSubmit(form, {
    submit: $('ws-save'), general: $('ws-form-error'), status, busyLabel: 'Saving…',
  }, async () => {
    const raw = form.elements.retentionDays.value.trim();
    let retentionDays = null;
    if (raw !== '') {
      retentionDays = Number(raw);
      if (!Number.isInteger(retentionDays)) {
        showFieldError(form.elements.retentionDays, 'Keep data for must be a whole number of days.');
        form.elements.retentionDays.focus();
        return;
      }
    }
    const cookieModeBefore = website.cookieMode;
    website = await api.patch(path, {
      name: trimmedValue(form, 'name'),
      domain: trimmedValue(form, 'domain'),
      timezone: form.elements.timezone.value,
      cookieMode: form.elements.cookieMode.checked,
      retentionDays,
    });
    fill(page, website);
    if (website.cookieMode !== cookieModeBefore) $('ws-repaste').hidden = false;
    status.textContent = website.cookieMode !== cookieModeBefore
      ? 'Saved. The snippet changed: paste the new one into your pages.'
      : 'Saved';
  });

  $('ws-delete').addEventListener('click', async (event) => {
    const button = event.currentTarget;
    const confirmed = await confirmAction({
      title: `Delete ${website.name}?`,
      message: `Every visit and statistic of ${website.domain} is deleted with it. This cannot be undone.`,
      confirmLabel: 'Delete website',
    });
    if (!confirmed) return;
    const error = $('ws-delete-error');
    showGeneralError(error, '');
    setBusy(button, true, 'Deleting…');
    try {
      await api.delete(path);
      navigate('/');
    } catch (e) {
      showGeneralError(error, `Could not delete the website: ${e.message}`);
      setBusy(button, false);
    }
  });

  return cancelConfirm;
}
