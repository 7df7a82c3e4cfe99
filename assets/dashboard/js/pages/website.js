// /websites/:id — a website's dashboard (SPEC 5): the live visitor count, cards with the
// change against the previous period, the time-series chart, the breakdown panels and the
// filters, all of it in the URL. A website without any pageview shows its snippet instead
// and switches to the statistics when the first pageview arrives.
import { api } from '../api.js';
import { cloneTemplate, el, setTitle } from '../dom.js';
import { fillSnippet } from '../snippet.js';
import { showWebsiteError } from '../website-error.js';
import { bucketLabel, createChart } from '../dashboard/chart.js';
import {
  CARDS, DEFINITIONS, SERIES, change,
} from '../dashboard/metrics.js';
import { createPanels, filterValueText } from '../dashboard/panels.js';
import {
  FILTERS, addDays, intervalFor, isDate, presetRange, previousRange, readView, spanDays,
  statsQuery, todayIn, withFilter, withoutFilter, writeView,
} from '../dashboard/view.js';

/** While the website has no data, how often to look for its first pageview. */
const EMPTY_POLL_MS = 5_000;
const MAX_DAYS = 3660;

const rangeFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
const formatDay = (ymd) => rangeFormat.format(new Date(`${ymd}T00:00:00Z`));
const formatRange = (from, to) => (from === to ? formatDay(from) : `${formatDay(from)} – ${formatDay(to)}`);

/** The live count: an EventSource on the realtime stream (SPEC 2.7). */
function startLive(page, websiteId, onFigures) {
  const count = page.querySelector('#live-count');
  const label = page.querySelector('#live-label');
  const live = page.querySelector('#live');
  const source = new EventSource(`/api/v1/websites/${encodeURIComponent(websiteId)}/stats/realtime/stream`);
  source.addEventListener('message', (event) => {
    let figures;
    try {
      figures = JSON.parse(event.data);
    } catch {
      return;
    }
    const n = figures.activeVisitors;
    count.textContent = String(n);
    label.textContent = n === 1 ? 'current visitor' : 'current visitors';
    live.classList.toggle('is-active', n > 0);
    live.classList.remove('is-offline');
    live.title = figures.pages.length
      ? `Active now on ${figures.pages.map((p) => `${p.value} (${p.activeVisitors})`).join(', ')}`
      : 'Visitors with any activity in the last 30 seconds';
    onFigures(figures);
  });
  source.addEventListener('error', () => {
    // The browser reconnects by itself; a closed source (the session ended) stays offline.
    live.classList.add('is-offline');
  });
  return () => source.close();
}

function buildCards(container) {
  const cards = new Map();
  for (const def of CARDS) {
    const card = cloneTemplate('tpl-stat-card').firstElementChild;
    card.id = `card-${def.key}`;
    card.dataset.metric = def.key;
    card.querySelector('.stat-name').textContent = def.label;
    card.querySelector('.stat-label').title = def.help;
    const help = card.querySelector('.stat-help');
    help.id = `card-${def.key}-help`;
    help.textContent = def.help;
    const button = card.querySelector('.help-button');
    button.setAttribute('aria-controls', help.id);
    button.setAttribute('aria-label', `What ${def.label.toLowerCase()} means`);
    button.addEventListener('click', () => {
      const open = help.hidden;
      help.hidden = !open;
      button.setAttribute('aria-expanded', String(open));
    });
    container.append(card);
    cards.set(def.key, card);
  }
  return cards;
}

function fillHelp(list) {
  list.replaceChildren(...DEFINITIONS.flatMap(([term, text]) => [el('dt', {}, term), el('dd', {}, text)]));
}

export async function renderWebsite(outlet, context) {
  const { params, signal } = context;
  setTitle('Website');
  const page = cloneTemplate('tpl-website').firstElementChild;
  outlet.append(page);
  let website;
  try {
    website = await api.get(`/websites/${encodeURIComponent(params.id)}`);
  } catch (error) {
    if (!signal.aborted) showWebsiteError(page, error, { box: 'site-error', title: 'site-error-title', message: 'site-error-message', content: 'site-overview' });
    return undefined;
  } finally {
    page.querySelector('#site-loading').hidden = true;
  }
  if (signal.aborted) return undefined;
  return showWebsite(page, website, context);
}

function showWebsite(page, website, { query, setQuery, onQuery }) {
  const $ = (id) => page.querySelector(`#${id}`);
  const id = encodeURIComponent(website.id);
  const zone = website.timezone;
  setTitle(website.name);
  $('site-name').textContent = website.name;
  $('site-domain').textContent = website.domain;
  $('site-settings-link').href = `/websites/${id}/settings`;
  $('site-error').remove();
  $('site-overview').hidden = false;

  const dashboard = $('dashboard');
  const cards = buildCards($('cards'));
  fillHelp($('help-list'));
  const chart = createChart($('chart'));
  let view = readView(query, todayIn(zone));
  let hasData = false;
  let emptyTimer = 0;
  let generation = 0;
  let stopped = false;

  const panels = createPanels($('panels'), {
    websiteId: website.id,
    onFilter: (name, value) => {
      setView(withFilter(view, name, value));
      // The rows are drawn again: keep the keyboard on the new filter's chip.
      $('filter-list').querySelector(`.chip-remove[data-filter="${name}"]`).focus();
    },
    onTab: (panel, report) => setView({ ...view, tabs: { ...view.tabs, [panel]: report } }, 'panels'),
  });

  // ---- The controls reflect the view ----

  function syncControls() {
    for (const button of page.querySelectorAll('.period .seg')) {
      button.setAttribute('aria-pressed', String(button.dataset.preset === view.preset));
    }
    $('metric-select').value = view.metric;
    $('range-from').value = view.from;
    $('range-to').value = view.to;
    const prev = previousRange(view.from, view.to);
    $('range-label').textContent = `${formatRange(view.from, view.to)} · ${zone.replaceAll('_', ' ')} · compared with ${formatRange(prev.from, prev.to)}`;
    const exportQuery = (format) => `/api/v1/websites/${id}/export?${new URLSearchParams({ from: view.from, to: view.to, format })}`;
    $('export-csv').href = exportQuery('csv');
    $('export-ndjson').href = exportQuery('ndjson');
    const list = $('filter-list');
    list.replaceChildren(...view.filters.map(([name, value]) => {
      const label = (FILTERS.find(([n]) => n === name) || [name, name])[1];
      const text = filterValueText(name, value);
      const remove = el('button', {
        type: 'button',
        className: 'chip-remove',
        dataset: { filter: name },
        attrs: { 'aria-label': `Remove the filter ${label} is ${text}` },
      }, el('span', { attrs: { 'aria-hidden': 'true' } }, '×'));
      return el('li', { className: 'chip', dataset: { filter: name, value } },
        el('span', { className: 'chip-name' }, `${label} is `),
        el('strong', { className: 'chip-value' }, text),
        remove);
    }));
    $('filters').hidden = view.filters.length === 0;
  }

  // ---- Loading ----

  async function loadMain(gen) {
    const main = await api.get(`/websites/${id}/stats/main?${statsQuery(view, { compare: 'previous' })}`);
    if (gen !== generation) return false;
    if (!hasData) {
      const any = main.totalPageviews > 0 || (main.previous && main.previous.totalPageviews > 0);
      if (!any && !(await anyPageview())) {
        showEmpty();
        return false;
      }
      if (gen !== generation) return false;
      showDashboard();
    }
    for (const def of CARDS) {
      const card = cards.get(def.key);
      const value = main[def.key];
      const previous = main.previous ? main.previous[def.key] : 0;
      card.dataset.value = String(value);
      card.querySelector('.stat-value').textContent = def.format(value);
      const delta = change(value, previous, def.lowerIsBetter);
      const changeEl = card.querySelector('.stat-change');
      changeEl.textContent = delta.text;
      changeEl.className = `stat-change tone-${delta.tone}`;
      changeEl.title = `Previous period: ${def.format(previous)}`;
      changeEl.setAttribute('aria-label', `${delta.text} against the previous period (${def.format(previous)})`);
    }
    return true;
  }

  async function loadChart(gen) {
    const interval = intervalFor(view);
    const series = SERIES[view.metric];
    const rows = await api.get(`/websites/${id}/stats/timeseries?${statsQuery(view, { interval })}`);
    if (gen !== generation) return;
    const dates = rows.map((r) => r.date);
    const values = rows.map((r) => r[series.field]);
    $('chart-heading').textContent = series.label;
    $('chart-table-metric').textContent = series.label;
    $('chart').dataset.metric = view.metric;
    $('chart').dataset.interval = interval;
    chart.show({
      dates, values, interval, label: series.label, format: series.format, integer: series.integer,
    });
    const total = values.length;
    $('chart-summary').textContent = `${series.label} per ${interval}, ${total} ${total === 1 ? 'point' : 'points'}; the table below lists them.`;
    $('chart-table').tBodies[0].replaceChildren(...rows.map((r) => el(
      'tr',
      { dataset: { date: r.date } },
      el('td', {}, bucketLabel(r.date, interval, true)),
      el('td', { dataset: { value: String(r[series.field]) } }, series.format(r[series.field])),
    )));
  }

  /** (Re)loads what `scope` names for the current view: everything, the chart, the panels. */
  async function refresh(scope = 'all') {
    generation += 1;
    const gen = generation;
    dashboard.dataset.ready = '';
    dashboard.setAttribute('aria-busy', 'true');
    syncControls();
    const error = $('stats-error');
    try {
      const work = [];
      if (scope === 'all') work.push(loadMain(gen).then((shown) => shown && Promise.all([loadChart(gen), panels.load(view)])));
      if (scope === 'chart') work.push(loadChart(gen));
      if (scope === 'panels') work.push(panels.load(view));
      await Promise.all(work);
      error.hidden = true;
    } catch (e) {
      if (gen !== generation || stopped) return;
      error.textContent = `Could not load the statistics: ${e.message}`;
      error.hidden = false;
    }
    if (gen === generation && !stopped) {
      dashboard.dataset.ready = location.search;
      dashboard.removeAttribute('aria-busy');
    }
  }

  /** A new view, recorded as a new history entry. */
  function setView(next, scope = 'all') {
    view = next;
    setQuery(writeView(view));
    refresh(scope);
  }

  onQuery((search) => {
    view = readView(search, todayIn(zone));
    refresh();
  });

  // ---- Empty state: the snippet until the first pageview ----

  async function anyPageview() {
    const today = todayIn(zone);
    const main = await api.get(`/websites/${id}/stats/main?from=${addDays(today, -(MAX_DAYS - 1))}&to=${today}`);
    return main.totalPageviews > 0;
  }

  function showEmpty() {
    $('site-empty').hidden = false;
    dashboard.hidden = true;
    clearInterval(emptyTimer);
    emptyTimer = setInterval(checkFirstPageview, EMPTY_POLL_MS);
  }

  function showDashboard() {
    hasData = true;
    clearInterval(emptyTimer);
    $('site-empty').hidden = true;
    dashboard.hidden = false;
  }

  let checking = false;
  async function checkFirstPageview() {
    if (hasData || checking || stopped) return;
    checking = true;
    try {
      if (await anyPageview() && !stopped && !hasData) {
        // The current range may be an old one from the URL: show the one with today.
        if (view.to < todayIn(zone)) view = { ...view, ...presetRange('30d', todayIn(zone)), preset: '30d' };
        setQuery(writeView(view), { replace: true });
        showDashboard();
        $('first-pageview').hidden = false;
        await refresh();
      }
    } catch {
      // Tried again at the next poll.
    } finally {
      checking = false;
    }
  }

  fillSnippet($('site-empty'), website);
  const stopLive = startLive(page, website.id, (figures) => {
    if (!hasData && figures.activeVisitors > 0) checkFirstPageview();
  });

  // ---- Controls ----

  for (const button of page.querySelectorAll('.period .seg[data-preset]')) {
    if (button.dataset.preset === 'custom') continue;
    button.addEventListener('click', () => {
      $('custom-range').hidden = true;
      $('custom-toggle').setAttribute('aria-expanded', 'false');
      const range = presetRange(button.dataset.preset, todayIn(zone));
      setView({ ...view, ...range, preset: button.dataset.preset });
    });
  }
  $('custom-toggle').addEventListener('click', () => {
    const form = $('custom-range');
    form.hidden = !form.hidden;
    $('custom-toggle').setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) $('range-from').focus();
  });
  $('custom-range').addEventListener('submit', (event) => {
    event.preventDefault();
    const from = $('range-from').value;
    const to = $('range-to').value;
    const error = $('range-error');
    let problem = '';
    if (!isDate(from) || !isDate(to)) problem = 'Choose both dates.';
    else if (from > to) problem = 'The start must not be after the end.';
    else if (spanDays(from, to) > MAX_DAYS) problem = `A range can span at most ${MAX_DAYS.toLocaleString()} days.`;
    error.textContent = problem;
    error.hidden = !problem;
    if (problem) return;
    setView({
      ...view, from, to, preset: 'custom',
    });
  });
  $('metric-select').addEventListener('change', (event) => {
    setView({ ...view, metric: event.target.value }, 'chart');
  });
  $('filter-list').addEventListener('click', (event) => {
    const button = event.target.closest('.chip-remove');
    if (!button) return;
    const index = view.filters.findIndex(([n]) => n === button.dataset.filter);
    setView(withoutFilter(view, button.dataset.filter));
    // Keep the keyboard near: the next chip's button, else the first card.
    const next = $('filter-list').querySelectorAll('.chip-remove')[index]
      || $('filter-list').querySelector('.chip-remove:last-of-type');
    (next || $('range-label')).focus();
  });
  $('filters-clear').addEventListener('click', () => {
    setView({ ...view, filters: [] });
    $('range-label').focus();
  });
  $('range-label').tabIndex = -1;
  const exportMenu = $('export-menu');
  exportMenu.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && exportMenu.open) {
      exportMenu.open = false;
      exportMenu.querySelector('summary').focus();
    }
  });
  const closeExport = (event) => {
    if (exportMenu.open && !exportMenu.contains(event.target)) exportMenu.open = false;
  };
  document.addEventListener('click', closeExport);

  // The URL always holds the whole view, also when it came from the defaults.
  setQuery(writeView(view), { replace: true });
  refresh();

  return () => {
    stopped = true;
    generation += 1;
    clearInterval(emptyTimer);
    stopLive();
    chart.destroy();
    document.removeEventListener('click', closeExport);
  };
}
