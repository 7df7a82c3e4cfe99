// /websites/:id — a website's overview: what it is and the snippet that tracks it. The
// statistics dashboard grows here.
import { api } from '../api.js';
import { cloneTemplate, setTitle } from '../dom.js';
import { formatDate, timeElement } from '../format.js';
import { fillSnippet } from '../snippet.js';

function showOverview(page, website) {
  const $ = (id) => page.querySelector(`#${id}`);
  setTitle(website.name);
  $('site-name').textContent = website.name;
  $('site-domain').textContent = website.domain;
  $('site-detail-domain').textContent = website.domain;
  $('site-timezone').textContent = website.timezone.replaceAll('_', ' ');
  $('site-cookie-mode').textContent = website.cookieMode
    ? 'On: a first-party cookie recognises returning visitors'
    : 'Off: no cookies, a visitor is recognised for one day';
  $('site-retention').textContent = website.retentionDays
    ? `${website.retentionDays} days`
    : 'Forever';
  $('site-created').replaceChildren(timeElement(website.createdAt, formatDate(website.createdAt)));
  $('site-snippet-domain').textContent = website.domain;
  fillSnippet($('site-overview'), website);
  $('site-overview').hidden = false;
  // Only one <h1> may remain: the router focuses the first one.
  $('site-error').remove();
}

function showError(page, error) {
  const $ = (id) => page.querySelector(`#${id}`);
  const title = {
    404: 'Website not found',
    403: 'No access to this website',
  }[error.status] || 'The website could not be loaded';
  setTitle(title);
  $('site-error-title').textContent = title;
  $('site-error-message').textContent = error.status === 404
    ? 'There is no website at this address. It may have been deleted.'
    : error.message;
  $('site-error').hidden = false;
  $('site-overview').remove();
}

export async function renderWebsite(outlet, { params, signal }) {
  setTitle('Website');
  const page = cloneTemplate('tpl-website').firstElementChild;
  outlet.append(page);
  try {
    const website = await api.get(`/websites/${encodeURIComponent(params.id)}`);
    if (signal.aborted) return;
    showOverview(page, website);
  } catch (error) {
    if (signal.aborted) return;
    showError(page, error);
  } finally {
    page.querySelector('#site-loading').hidden = true;
  }
}
