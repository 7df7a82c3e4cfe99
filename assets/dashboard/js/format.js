// Dates and times from the API (ISO-8601 UTC) in the reader's locale and time zone.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

export function formatDateTime(iso) {
  return dateTime.format(new Date(iso));
}

export function formatDate(iso) {
  return dateOnly.format(new Date(iso));
}

/** "5 minutes ago", "yesterday", "in 3 weeks"; "just now" within a minute. */
export function formatRelative(iso, now = Date.now()) {
  const seconds = (new Date(iso).getTime() - now) / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return 'just now';
}

/**
 * A <time> element showing `text` (by default the date and time), with the exact local
 * time as its tooltip.
 */
export function timeElement(iso, text = formatDateTime(iso)) {
  const time = document.createElement('time');
  time.dateTime = iso;
  time.title = formatDateTime(iso);
  time.textContent = text;
  return time;
}
