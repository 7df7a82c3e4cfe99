// The breakdown panels: every dimension of the statistics API (SPEC 2.6) in five panels with
// tabs, ten rows at a time with "Show more", each row a button that filters the dashboard.
import { api } from '../api.js';
import { cloneTemplate, el } from '../dom.js';
import { formatCount, formatPercent } from './metrics.js';
import { NONE, statsQuery } from './view.js';

const regionNames = (() => {
  try {
    return new Intl.DisplayNames(undefined, { type: 'region' });
  } catch {
    return null;
  }
})();
const languageNames = (() => {
  try {
    return new Intl.DisplayNames(undefined, { type: 'language' });
  } catch {
    return null;
  }
})();

function countryName(code) {
  try {
    return (regionNames && regionNames.of(code)) || code;
  } catch {
    return code;
  }
}

function languageName(code) {
  try {
    return (languageNames && languageNames.of(code)) || code;
  } catch {
    return code;
  }
}

const SCREENS = {
  xs: 'Phone (< 576 px)', sm: 'Small tablet (576–767 px)', md: 'Tablet (768–991 px)', lg: 'Laptop (992–1439 px)', xl: 'Desktop (≥ 1440 px)',
};

const sessionColumn = { field: 'totalSessions', label: 'Visits', format: formatCount };

/**
 * Each tab: the API report, its filter parameter, how its empty (null) value reads, the
 * second column, and how a value reads.
 */
export const PANELS = [
  {
    id: 'pages',
    title: 'Pages',
    tabs: [
      { report: 'pages', label: 'Top pages', filter: 'path', column: { field: 'totalPageviews', label: 'Views', format: formatCount } },
      { report: 'entry-pages', label: 'Entry', filter: 'entryPage', column: sessionColumn },
      { report: 'exit-pages', label: 'Exit', filter: 'exitPage', column: sessionColumn },
      { report: 'hostnames', label: 'Hostnames', filter: 'hostname', column: { field: 'totalPageviews', label: 'Views', format: formatCount } },
    ],
  },
  {
    id: 'sources',
    title: 'Sources',
    tabs: [
      { report: 'referrers', label: 'Referrers', filter: 'referrer', none: 'Direct / none', column: sessionColumn },
      { report: 'utm-sources', label: 'UTM source', filter: 'utmSource', none: '(not set)', column: sessionColumn },
      { report: 'utm-mediums', label: 'Medium', filter: 'utmMedium', none: '(not set)', column: sessionColumn },
      { report: 'utm-campaigns', label: 'Campaign', filter: 'utmCampaign', none: '(not set)', column: sessionColumn },
      { report: 'utm-terms', label: 'Term', filter: 'utmTerm', none: '(not set)', column: sessionColumn },
      { report: 'utm-contents', label: 'Content', filter: 'utmContent', none: '(not set)', column: sessionColumn },
    ],
  },
  {
    id: 'locations',
    title: 'Locations',
    tabs: [
      { report: 'countries', label: 'Countries', filter: 'country', none: 'Unknown', name: countryName, column: sessionColumn },
      { report: 'languages', label: 'Languages', filter: 'language', none: 'Unknown', name: languageName, column: sessionColumn },
    ],
  },
  {
    id: 'devices',
    title: 'Devices',
    tabs: [
      { report: 'browsers', label: 'Browsers', filter: 'browser', none: 'Unknown', column: sessionColumn },
      { report: 'os', label: 'OS', filter: 'os', none: 'Unknown', column: sessionColumn },
      { report: 'devices', label: 'Devices', filter: 'device', none: 'Unknown', name: (v) => v.charAt(0).toUpperCase() + v.slice(1), column: sessionColumn },
      { report: 'screens', label: 'Screens', filter: 'screen', none: 'Unknown', name: (v) => SCREENS[v] || v, column: sessionColumn },
    ],
  },
  {
    id: 'events',
    title: 'Events',
    tabs: [
      { report: 'events', label: 'Custom events', filter: 'event', column: { field: 'totalEvents', label: 'Events', format: formatCount } },
    ],
  },
];

/** How a filter's value reads on a chip: the same words as the rows. */
export function filterValueText(name, value) {
  for (const panel of PANELS) {
    const tab = panel.tabs.find((t) => t.filter === name);
    if (!tab) continue;
    if (value === NONE) return tab.none || '(none)';
    return tab.name ? tab.name(value) : value;
  }
  return value;
}

const PAGE_SIZE = 10;

/**
 * Builds the panels into `container`. `onFilter(name, value)` is called when a row is chosen
 * and `onTab(panelId, report)` when a tab is (report null for a panel's first tab).
 * Returns `{load(view)}`, which (re)loads every panel's tab for the view and resolves when
 * all are drawn.
 */
export function createPanels(container, { websiteId, onFilter, onTab }) {
  const panels = PANELS.map((def) => {
    const node = cloneTemplate('tpl-panel').firstElementChild;
    const $ = (sel) => node.querySelector(sel);
    node.id = `panel-${def.id}`;
    node.dataset.panel = def.id;
    const titleId = `panel-${def.id}-title`;
    $('.panel-title').id = titleId;
    $('.panel-title').textContent = def.title;
    node.setAttribute('aria-labelledby', titleId);
    const tabs = $('.panel-tabs');
    tabs.setAttribute('aria-label', `${def.title}: show`);
    if (def.tabs.length === 1) tabs.hidden = true;
    const state = {
      def, node, tab: def.tabs[0], page: 1, generation: 0, view: null,
    };
    for (const tab of def.tabs) {
      const button = el('button', {
        type: 'button', className: 'tab', dataset: { report: tab.report }, attrs: { 'aria-pressed': 'false' },
      }, tab.label);
      button.addEventListener('click', () => {
        if (state.tab === tab) return;
        onTab(def.id, tab.report === def.tabs[0].report ? null : tab.report);
      });
      tabs.append(button);
    }
    $('.panel-more').addEventListener('click', () => loadPage(state, state.page + 1));
    $('.rows').addEventListener('click', (event) => {
      const row = event.target.closest('button.row');
      if (!row) return;
      onFilter(state.tab.filter, row.dataset.filterValue);
    });
    container.append(node);
    return state;
  });

  function rowFor(tab, item) {
    const isNone = item.value === null || item.value === '';
    const text = isNone ? (tab.none || '(none)') : (tab.name ? tab.name(item.value) : item.value);
    const filterValue = isNone ? NONE : item.value;
    const bar = el('span', { className: 'row-bar', attrs: { 'aria-hidden': 'true' } });
    bar.style.width = `${Math.max(0, Math.min(100, item.percentage))}%`;
    const second = tab.column;
    const button = el(
      'button',
      {
        type: 'button',
        className: 'row',
        title: `Filter by ${text}`,
        dataset: { filterValue, value: isNone ? '' : item.value, visitors: String(item.uniqueVisitors) },
        attrs: {
          'aria-label': `${text}: ${formatCount(item.uniqueVisitors)} visitors (${formatPercent(item.percentage)}), ${second.format(item[second.field])} ${second.label.toLowerCase()}. Filter by it`,
        },
      },
      bar,
      el('span', { className: `row-value${isNone ? ' row-none' : ''}` }, text),
      el('span', { className: 'row-metric' }, second.format(item[second.field])),
      el('span', { className: 'row-visitors' }, formatCount(item.uniqueVisitors)),
    );
    return el('li', {}, button);
  }

  async function loadPage(state, page) {
    const { node, tab, view } = state;
    const generation = state.generation;
    const more = node.querySelector('.panel-more');
    const error = node.querySelector('.panel-error');
    if (page > 1) {
      more.disabled = true;
      more.setAttribute('aria-busy', 'true');
    }
    try {
      const { data, meta } = await api.getPage(`/websites/${encodeURIComponent(websiteId)}/stats/${tab.report}?${statsQuery(view, { limit: PAGE_SIZE, page })}`);
      if (generation !== state.generation) return;
      const rows = node.querySelector('.rows');
      const items = data.map((item) => rowFor(tab, item));
      if (page === 1) rows.replaceChildren(...items);
      else rows.append(...items);
      state.page = page;
      more.hidden = !(meta.pagination && meta.pagination.hasMore);
      node.querySelector('.panel-empty').hidden = rows.children.length > 0;
      node.querySelector('.panel-columns').hidden = rows.children.length === 0;
      error.hidden = true;
      if (page > 1 && items.length) items[0].querySelector('button').focus();
    } catch (e) {
      if (generation !== state.generation) return;
      error.textContent = `Could not load ${tab.label.toLowerCase()}: ${e.message}`;
      error.hidden = false;
    } finally {
      if (generation === state.generation) {
        node.querySelector('.panel-loading').hidden = true;
        more.disabled = false;
        more.removeAttribute('aria-busy');
        node.dataset.ready = 'true';
      }
    }
  }

  return {
    /** Loads every panel for `view`; resolves when all are drawn. */
    load(view) {
      return Promise.all(panels.map((state) => {
        const { def, node } = state;
        const wanted = view.tabs[def.id];
        state.tab = def.tabs.find((t) => t.report === wanted) || def.tabs[0];
        state.view = view;
        state.generation += 1;
        state.page = 1;
        node.dataset.report = state.tab.report;
        node.dataset.ready = 'false';
        for (const button of node.querySelectorAll('.tab')) {
          button.setAttribute('aria-pressed', String(button.dataset.report === state.tab.report));
        }
        node.querySelector('.panel-col-value').textContent = state.tab.label;
        node.querySelector('.panel-col-metric').textContent = state.tab.column.label;
        node.querySelector('.panel-loading').hidden = false;
        return loadPage(state, 1);
      }));
    },
  };
}
