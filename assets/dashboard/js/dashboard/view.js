// The dashboard's view: date range, chart metric, filters and the panels' tabs, kept in the
// URL's query string so that a view can be bookmarked and shared. Dates are YYYY-MM-DD in
// the website's time zone, as the statistics API takes them.

/** The filters of the statistics API (SPEC 2.6), in its order, with how a chip names them. */
export const FILTERS = [
  ['hostname', 'Hostname'],
  ['path', 'Page'],
  ['entryPage', 'Entry page'],
  ['exitPage', 'Exit page'],
  ['referrer', 'Referrer'],
  ['utmSource', 'UTM source'],
  ['utmMedium', 'UTM medium'],
  ['utmCampaign', 'UTM campaign'],
  ['utmTerm', 'UTM term'],
  ['utmContent', 'UTM content'],
  ['country', 'Country'],
  ['browser', 'Browser'],
  ['os', 'Operating system'],
  ['device', 'Device'],
  ['language', 'Language'],
  ['screen', 'Screen size'],
  ['event', 'Event'],
];

/** The value of a filter that selects the empty value (direct traffic, not set, unknown). */
export const NONE = '(none)';

export const PRESETS = ['today', '7d', '30d', 'month', '12m'];
export const METRICS = ['visitors', 'pageviews', 'sessions', 'bounce', 'duration', 'dau'];
const DEFAULT_PRESET = '30d';
const DEFAULT_METRIC = 'visitors';
const MAX_DAYS = 3660;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

// ---- Dates (as UTC midnights, so that adding days never meets a daylight-saving change) ----

function toDate(ymd) {
  return new Date(`${ymd}T00:00:00Z`);
}

function toYmd(date) {
  return date.toISOString().slice(0, 10);
}

export function isDate(value) {
  return DATE.test(value || '') && toYmd(toDate(value)) === value;
}

export function addDays(ymd, days) {
  const date = toDate(ymd);
  date.setUTCDate(date.getUTCDate() + days);
  return toYmd(date);
}

/** Days from `from` to `to`, both included. */
export function spanDays(from, to) {
  return Math.round((toDate(to) - toDate(from)) / 86_400_000) + 1;
}

/** Today's date in the IANA zone `zone`. */
export function todayIn(zone, now = new Date()) {
  const parts = {};
  for (const { type, value } of new Intl.DateTimeFormat('en-US', {
    timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(now)) parts[type] = value;
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** The dates a preset stands for, on the website's `today`. */
export function presetRange(preset, today) {
  switch (preset) {
    case 'today':
      return { from: today, to: today };
    case '7d':
      return { from: addDays(today, -6), to: today };
    case 'month':
      return { from: `${today.slice(0, 8)}01`, to: today };
    case '12m': {
      const date = toDate(`${today.slice(0, 8)}01`);
      date.setUTCMonth(date.getUTCMonth() - 11);
      return { from: toYmd(date), to: today };
    }
    default:
      return { from: addDays(today, -29), to: today };
  }
}

/** The equally long period just before `from`..`to` (what `compare=previous` compares with). */
export function previousRange(from, to) {
  const days = spanDays(from, to);
  return { from: addDays(from, -days), to: addDays(from, -1) };
}

/** The time-series interval for a range: hours for up to 2 days, months for 12 months. */
export function intervalFor(view) {
  if (view.metric === 'dau') return 'day';
  const days = spanDays(view.from, view.to);
  if (days <= 2) return 'hour';
  if (view.preset === '12m' || days > 400) return 'month';
  if (days > 92) return 'week';
  return 'day';
}

// ---- The view and the URL ----

/**
 * Reads the view from a query string. Missing or bad dates fall back to the preset (default
 * 30 days) on the website's `today`; a known preset with dates keeps the dates, which is what
 * the link was saved with.
 */
export function readView(query, today) {
  const preset = [...PRESETS, 'custom'].includes(query.get('period')) ? query.get('period') : null;
  let from = query.get('from');
  let to = query.get('to');
  const datesOk = isDate(from) && isDate(to) && from <= to && spanDays(from, to) <= MAX_DAYS;
  let chosen = preset;
  if (!datesOk) {
    chosen = preset && preset !== 'custom' ? preset : DEFAULT_PRESET;
    ({ from, to } = presetRange(chosen, today));
  } else if (!chosen) {
    chosen = PRESETS.find((p) => {
      const r = presetRange(p, today);
      return r.from === from && r.to === to;
    }) || 'custom';
  }
  const filters = [];
  for (const [name] of FILTERS) {
    const value = query.get(name);
    if (value !== null && value !== '') filters.push([name, value]);
  }
  const tabs = {};
  for (const [key, value] of query) {
    if (key.endsWith('Tab')) tabs[key.slice(0, -3)] = value;
  }
  const metric = METRICS.includes(query.get('metric')) ? query.get('metric') : DEFAULT_METRIC;
  return { preset: chosen, from, to, metric, filters, tabs };
}

/** The query string of a view (dates always, so a saved link shows the same days). */
export function writeView(view) {
  const query = new URLSearchParams();
  query.set('period', view.preset);
  query.set('from', view.from);
  query.set('to', view.to);
  if (view.metric !== DEFAULT_METRIC) query.set('metric', view.metric);
  for (const [name, value] of view.filters) query.set(name, value);
  for (const [panel, tab] of Object.entries(view.tabs)) {
    if (tab) query.set(`${panel}Tab`, tab);
  }
  return `?${query}`;
}

/** The statistics API's parameters for the view's range and filters. */
export function statsQuery(view, extra = {}) {
  const query = new URLSearchParams({ from: view.from, to: view.to });
  for (const [name, value] of view.filters) query.set(name, value);
  for (const [name, value] of Object.entries(extra)) query.set(name, value);
  return query.toString();
}

/** The view with the filter `name` set to `value` (replacing one on the same dimension). */
export function withFilter(view, name, value) {
  const filters = view.filters.filter(([n]) => n !== name);
  filters.push([name, value]);
  const order = FILTERS.map(([n]) => n);
  filters.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
  return { ...view, filters };
}

export function withoutFilter(view, name) {
  return { ...view, filters: view.filters.filter(([n]) => n !== name) };
}
