// The IANA time zones this browser knows, for a website's time zone select.

export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function knownTimeZones() {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return []; // Older browsers: the browser's own zone and UTC are still offered.
  }
}

/** Fills `select` with "UTC" and every IANA zone, `selected` (default: the browser's) chosen. */
export function fillTimeZoneSelect(select, selected = browserTimeZone()) {
  const zones = new Set(knownTimeZones());
  zones.delete('UTC');
  zones.add(selected);
  zones.delete('UTC');
  const sorted = ['UTC', ...Array.from(zones).sort()];
  select.replaceChildren(...sorted.map((zone) => {
    const option = document.createElement('option');
    option.value = zone;
    option.textContent = zone.replaceAll('_', ' ');
    return option;
  }));
  select.value = selected;
}
