// The time-series chart, drawn with uPlot (assets/dashboard/vendor/uplot, MIT licence, loaded
// as a classic script before the modules). One point per bucket of the API's answer; the x
// axis is the bucket's index, labelled with its local date or hour, so that the 23- and
// 25-hour days of daylight saving need no clock arithmetic here.

const MONTHS = new Intl.DateTimeFormat(undefined, { month: 'short', year: 'numeric', timeZone: 'UTC' });
const DAYS = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const LONG_DAYS = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric', timeZone: 'UTC' });

/** A bucket's label: "13:00" for an hour (the site's local time), "Mar 5" for a day or week. */
export function bucketLabel(date, interval, long = false) {
  if (interval === 'hour') {
    const day = DAYS.format(new Date(`${date.slice(0, 10)}T00:00:00Z`));
    const hour = date.slice(11, 16);
    return long ? `${day}, ${hour}` : hour;
  }
  const at = new Date(`${date.slice(0, 10)}T00:00:00Z`);
  if (interval === 'month') return MONTHS.format(at);
  if (interval === 'week') return long ? `Week of ${DAYS.format(at)}` : DAYS.format(at);
  return (long ? LONG_DAYS : DAYS).format(at);
}

/** Steps between the y axis's lines for counts: whole numbers only. */
const COUNT_STEPS = [1, 2, 5].flatMap((d) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7].map((m) => d * m))
  .sort((a, b) => a - b);

const STYLE = {
  line: '#4f46e5',
  fill: 'rgba(79, 70, 229, 0.10)',
  axis: '#5d6679',
  grid: '#eceef2',
  font: '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
};

/**
 * A chart in `container`. `show({dates, values, interval, label, format, integer})` draws a
 * series (`integer`: a count, whose axis has whole steps);
 * `destroy()` removes it. The chart follows the container's width.
 */
export function createChart(container) {
  let plot = null;
  let labels = [];
  let longLabels = [];
  let format = String;

  const height = () => (container.clientWidth < 560 ? 200 : 260);

  const observer = new ResizeObserver(() => {
    if (plot && container.clientWidth > 0) {
      plot.setSize({ width: container.clientWidth, height: height() });
    }
  });
  observer.observe(container);

  function options(series) {
    const n = series.values.length;
    return {
      width: Math.max(container.clientWidth, 200),
      height: height(),
      padding: [12, 12, 0, 4],
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 8 } },
      scales: {
        x: { time: false, range: () => (n > 1 ? [0, n - 1] : [-0.5, 0.5]) },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        {
          stroke: STYLE.axis,
          font: STYLE.font,
          grid: { show: false },
          ticks: { show: false },
          space: 56,
          incrs: [1, 2, 3, 4, 6, 7, 12, 14, 24, 30, 48, 60, 90, 120, 180, 365],
          values: (u, splits) => splits.map((i) => (Number.isInteger(i) ? labels[i] ?? '' : '')),
        },
        {
          stroke: STYLE.axis,
          font: STYLE.font,
          grid: { stroke: STYLE.grid, width: 1 },
          ticks: { show: false },
          size: 64,
          ...(series.integer ? { incrs: COUNT_STEPS } : {}),
          values: (u, splits) => splits.map((v) => format(v)),
        },
      ],
      series: [
        { label: 'Period', value: (u, i) => (i == null ? '–' : longLabels[i] ?? '') },
        {
          label: series.label,
          stroke: STYLE.line,
          fill: STYLE.fill,
          width: 2,
          points: { show: n <= 62, size: 5, fill: STYLE.line },
          value: (u, v) => (v == null ? '–' : format(v)),
        },
      ],
    };
  }

  return {
    show(series) {
      labels = series.dates.map((d) => bucketLabel(d, series.interval));
      longLabels = series.dates.map((d) => bucketLabel(d, series.interval, true));
      format = series.format;
      const data = [series.values.map((_, i) => i), series.values];
      if (plot) plot.destroy();
      plot = new window.uPlot(options(series), data, container);
      container.dataset.points = String(series.values.length);
    },
    destroy() {
      observer.disconnect();
      if (plot) plot.destroy();
      plot = null;
    },
  };
}
