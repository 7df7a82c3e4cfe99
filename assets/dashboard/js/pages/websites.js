// The home page: the account's websites with their tracking snippets, and the form that
// adds one.
import { api } from '../api.js';
import { cloneTemplate, setTitle } from '../dom.js';
import { onSubmit, showGeneralError, trimmedValue } from '../forms.js';
import { fillSnippet } from '../snippet.js';
import { fillTimeZoneSelect } from '../timezones.js';

function websiteItem(website) {
  const item = cloneTemplate('tpl-website-item').firstElementChild;
  item.dataset.websiteId = website.id;
  const link = item.querySelector('.website-link');
  link.href = `/websites/${encodeURIComponent(website.id)}`;
  link.textContent = website.name;
  item.querySelector('.website-domain').textContent = website.domain;
  const zone = item.querySelector('.website-timezone');
  zone.textContent = website.timezone.replaceAll('_', ' ');
  zone.title = 'Time zone';
  fillSnippet(item, website);
  return item;
}

export function renderWebsites(outlet, { signal }) {
  setTitle('Websites');
  const page = cloneTemplate('tpl-websites');
  const $ = (id) => page.querySelector(`#${id}`);
  const list = $('website-list');
  const empty = $('website-empty');
  const form = $('website-form');
  const general = $('website-error');
  const status = $('website-status');
  const submit = $('website-submit');
  const loading = $('website-loading');
  const loadError = $('website-load-error');

  function showList() {
    list.hidden = list.children.length === 0;
    empty.hidden = list.children.length > 0;
  }

  fillTimeZoneSelect(form.elements.timezone);
  form.addEventListener('input', () => {
    status.textContent = '';
  });

  // A duplicate domain (409) or the account's website limit (403) has no field errors, so
  // onSubmit shows its message in #website-error.
  onSubmit(form, {
    submit, general, status, busyLabel: 'Adding…',
  }, async () => {
    const website = await api.post('/websites', {
      name: trimmedValue(form, 'name'),
      domain: trimmedValue(form, 'domain'),
      timezone: form.elements.timezone.value,
    });
    for (const old of list.querySelectorAll('.is-new')) old.classList.remove('is-new');
    const item = websiteItem(website);
    item.classList.add('is-new');
    list.append(item);
    showList();
    form.reset();
    fillTimeZoneSelect(form.elements.timezone);
    status.textContent = `Added ${website.domain}. Its snippet is ready to copy.`;
    item.scrollIntoView({ block: 'nearest' });
    item.querySelector('.snippet-copy').focus({ preventScroll: true });
  });

  outlet.append(page);

  (async () => {
    try {
      const websites = await api.get('/websites');
      if (signal.aborted) return;
      list.replaceChildren(...websites.map(websiteItem));
      showList();
    } catch (error) {
      if (signal.aborted) return;
      showGeneralError(loadError, `Could not load your websites: ${error.message}`);
    } finally {
      loading.hidden = true;
    }
  })();
}
