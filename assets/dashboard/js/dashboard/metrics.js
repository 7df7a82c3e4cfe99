// What the dashboard shows of each figure: its name, how it is written and what it means
// (the definitions of SPEC 4, shown on the cards and in the help panel).

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { minimumFractionDigits: 0, maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

export function formatCount(n) {
  return integer.format(n);
}

export function formatCompact(n) {
  return Math.abs(n) >= 10_000 ? compact.format(n) : integer.format(n);
}

export function formatPercent(n) {
  return `${decimal.format(n)}%`;
}

/** Seconds as "1h 02m", "3m 05s" or "42s". */
export function formatDuration(seconds) {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(rest).padStart(2, '0')}s`;
  return `${rest}s`;
}

export function formatDecimal(n) {
  return decimal.format(n);
}

const SESSION = 'A visit (session) is one visitor’s activity with no gap of 30 minutes or more; it belongs to the day of its first pageview.';

/** The cards, in order: the `main` field each shows. */
export const CARDS = [
  {
    key: 'uniqueVisitors',
    label: 'Visitors',
    format: formatCount,
    help: 'Unique visitors: distinct visitors among the pageviews counted in the range. Without cookie mode a visitor is recognised for one day, so a person who comes on two days counts twice.',
  },
  {
    key: 'totalPageviews',
    label: 'Pageviews',
    format: formatCount,
    help: 'Pageviews in the range whose visit is selected by the filters; with a page or hostname filter, only the pageviews of that page or hostname.',
  },
  {
    key: 'totalSessions',
    label: 'Visits',
    format: formatCount,
    help: `Visits (sessions) that began in the range. ${SESSION} Only visits with a pageview count.`,
  },
  {
    key: 'bounceRate',
    label: 'Bounce rate',
    format: formatPercent,
    lowerIsBetter: true,
    help: 'The share of those visits with exactly one pageview in the whole visit, in percent.',
  },
  {
    key: 'avgSessionDuration',
    label: 'Visit duration',
    format: formatDuration,
    help: 'The mean time from a visit’s first to its last activity. Heartbeats, sent every 15 s while a page is visible, count, so a one-page visit read for two minutes lasts about two minutes.',
  },
  {
    key: 'viewsPerSession',
    label: 'Views per visit',
    format: formatDecimal,
    help: 'All pageviews of the visits counted (also any after the end of the range) divided by the number of visits.',
  },
];

/** The chart's metrics: the time-series field each draws. DAU is visitors per day. */
export const SERIES = {
  visitors: { field: 'uniqueVisitors', label: 'Visitors', format: formatCount, integer: true },
  pageviews: { field: 'totalPageviews', label: 'Pageviews', format: formatCount, integer: true },
  sessions: { field: 'totalSessions', label: 'Visits', format: formatCount, integer: true },
  bounce: { field: 'bounceRate', label: 'Bounce rate', format: formatPercent },
  duration: { field: 'avgSessionDuration', label: 'Visit duration', format: formatDuration },
  dau: { field: 'uniqueVisitors', label: 'Daily visitors (DAU)', format: formatCount, integer: true },
};

/** The help panel: every definition, including those not on a card. */
export const DEFINITIONS = [
  ...CARDS.map(({ label, help }) => [label, help]),
  ['Daily visitors (DAU)', 'Distinct visitors with a pageview on that day, in the website’s time zone.'],
  ['Current visitors', 'Distinct visitors with any activity (pageview, event or heartbeat) in the last 30 seconds.'],
  ['Filters', 'A filter selects visits: by their entry page, exit page, referrer, UTM tags, country, browser, operating system, device, language or screen size (those of the visit’s first pageview); a page or hostname filter selects visits with a pageview of it; an event filter selects visits with that event. Several filters select visits that match all of them.'],
  ['Percentages in the lists', 'A row’s visitors divided by all visitors of the range with the same filters.'],
  ['Dates', 'Days start at midnight in the website’s time zone; the last day of the range is included.'],
];

/**
 * The change from `previous` to `current` as `{text, tone}`: a relative change in percent
 * ("+12%"), tone "up"/"down" for good/bad news given whether lower is better.
 */
export function change(current, previous, lowerIsBetter = false) {
  if (previous === 0 && current === 0) return { text: 'No change', tone: 'flat' };
  if (previous === 0) return { text: 'New', tone: lowerIsBetter ? 'bad' : 'good' };
  const pct = ((current - previous) / previous) * 100;
  const rounded = Math.round(pct);
  if (rounded === 0) return { text: '0%', tone: 'flat' };
  const better = lowerIsBetter ? rounded < 0 : rounded > 0;
  return { text: `${rounded > 0 ? '+' : '−'}${integer.format(Math.abs(rounded))}%`, tone: better ? 'good' : 'bad' };
}
