//! Operational metrics for the `/metrics` listener (SPEC 7.3), in the Prometheus text format
//! 0.0.4: requests by route template and status, request and commit latency, ingest accepted
//! and dropped, queue depth and database size. Nothing here is counted per website.
//!
//! `observe_request` runs on every HTTP request, so recording is atomics behind one shared read
//! lock; all sorting and formatting happens when `/metrics` is scraped.

use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds in seconds for request and commit latency, from half a millisecond to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Ingest activity types; each is rendered, at 0 when none arrived, so dashboards see the series.
pub const INGEST_TYPES: &[&str] = &["pageview", "event", "heartbeat"];

/// Drop reasons that are always rendered; any other reason given appears once it is counted.
pub const DROP_REASONS: &[&str] = &["bot", "unknown-website", "hostname", "quota", "spam"];

/// Lock-free histogram with fixed upper bounds in seconds (Prometheus `le` buckets).
///
/// Each bucket counts only its own observations; they are summed into cumulative `le` counts
/// when rendered, so `observe` touches two atomics. The total count is the sum of the buckets,
/// which keeps `le="+Inf"` equal to `_count` even while observations race with a scrape.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, then one for observations above the last bound.
    buckets: Box<[AtomicU64]>,
    /// Nanoseconds wrap after 584 years of total observed time, far beyond any process life.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Panics when `bounds` are not finite and strictly increasing: a programming error.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        assert!(
            bounds.iter().all(|b| b.is_finite()) && bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must be finite and strictly increasing"
        );
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // `le` is inclusive: a duration equal to a bound belongs to that bound's bucket.
        let bucket = self.bounds.partition_point(|&bound| bound < secs);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Total of the observed durations.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed))
    }

    /// Cumulative counts, one per bound and a last one for `+Inf`; the last is the count.
    pub fn cumulative_counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .scan(0u64, |total, b| {
                *total = total.wrapping_add(b.load(Ordering::Relaxed));
                Some(*total)
            })
            .collect()
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative: self.cumulative_counts(),
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

/// A histogram read once, so `le="+Inf"` and `_count` come from the same numbers.
struct HistogramSnapshot {
    bounds: &'static [f64],
    cumulative: Vec<u64>,
    sum_nanos: u64,
}

/// Sizes read when `/metrics` is scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub db_bytes: u64,
    pub wal_bytes: u64,
}

/// All counters and histograms of the process. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    requests: RwLock<RequestSeries>,
    accepted: LabelledCounters,
    dropped: LabelledCounters,
    commit_latency: Histogram,
}

/// Request series, created on a route and status's first request and then only read-locked.
#[derive(Debug, Default)]
struct RequestSeries {
    by_route_status: HashMap<(&'static str, u16), StatusSeries>,
    /// The latency histogram of each route, shared by all its statuses.
    durations: HashMap<&'static str, Arc<Histogram>>,
}

#[derive(Debug)]
struct StatusSeries {
    requests: AtomicU64,
    duration: Arc<Histogram>,
}

impl StatusSeries {
    fn record(&self, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.duration.observe(elapsed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: RwLock::new(RequestSeries::default()),
            accepted: LabelledCounters::new(
                "jetrack_ingest_accepted_total",
                "Ingest activities accepted for storage, by type.",
                "type",
                INGEST_TYPES,
            ),
            dropped: LabelledCounters::new(
                "jetrack_ingest_dropped_total",
                "Ingest activities dropped before storage, by reason.",
                "reason",
                DROP_REASONS,
            ),
            commit_latency: Histogram::new(LATENCY_BUCKETS),
        }
    }

    /// One finished HTTP request: route template (e.g. "/api/collect",
    /// "/api/v1/websites/{id}", "(unmatched)"), status code, duration.
    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        if let Some(series) = read(&self.requests).by_route_status.get(&(route, status)) {
            series.record(elapsed);
            return;
        }
        // First request of this route and status: another thread may have added it meanwhile,
        // so both maps go through `entry`. Route templates are a fixed set, kept for good.
        let mut requests = write(&self.requests);
        let route: &'static str = match requests.durations.get_key_value(route) {
            Some((&known, _)) => known,
            None => Box::leak(route.to_string().into_boxed_str()),
        };
        let duration = Arc::clone(
            requests
                .durations
                .entry(route)
                .or_insert_with(|| Arc::new(Histogram::new(LATENCY_BUCKETS))),
        );
        requests
            .by_route_status
            .entry((route, status))
            .or_insert_with(|| StatusSeries {
                requests: AtomicU64::new(0),
                duration,
            })
            .record(elapsed);
    }

    /// An accepted ingest activity; kind is "pageview", "event" or "heartbeat".
    pub fn accepted(&self, kind: &'static str, n: u64) {
        self.accepted.add(kind, n);
    }

    /// A dropped ingest activity; reason is "bot", "unknown-website", "hostname", "quota",
    /// "spam", or any other reason, which is then rendered too.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.dropped.add(reason, n);
    }

    /// The writer's commit latency histogram; the db writer thread observes on it directly.
    pub fn commit_latency(&self) -> &Histogram {
        &self.commit_latency
    }

    /// The Prometheus text exposition (format 0.0.4) of everything plus the gauges.
    pub fn render(&self, gauges: &Gauges) -> String {
        // Copy under the lock, format after it, so a scrape holds up no request for long.
        let (mut statuses, mut durations) = {
            let requests = read(&self.requests);
            let statuses: Vec<(&str, u16, u64)> = requests
                .by_route_status
                .iter()
                .map(|(&(route, status), s)| (route, status, s.requests.load(Ordering::Relaxed)))
                .collect();
            let durations: Vec<(&str, HistogramSnapshot)> = requests
                .durations
                .iter()
                .map(|(&route, h)| (route, h.snapshot()))
                .collect();
            (statuses, durations)
        };
        statuses.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        durations.sort_unstable_by(|a, b| a.0.cmp(b.0));

        let mut out = String::with_capacity(4096 + 1024 * durations.len());

        let name = "jetrack_http_requests_total";
        write_header(
            &mut out,
            name,
            "counter",
            "HTTP requests answered, by route template and status.",
        );
        for (route, status, count) in &statuses {
            let status = status.to_string();
            write_sample(
                &mut out,
                name,
                &[("route", route), ("status", &status)],
                count,
            );
        }

        let name = "jetrack_http_request_duration_seconds";
        write_header(
            &mut out,
            name,
            "histogram",
            "Time to answer an HTTP request, by route template.",
        );
        for (route, snapshot) in &durations {
            write_histogram(&mut out, name, &[("route", route)], snapshot);
        }

        self.accepted.write_to(&mut out);
        self.dropped.write_to(&mut out);

        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            write_header(out, name, "gauge", help);
            write_sample(out, name, &[], value);
        };
        gauge(
            &mut out,
            "jetrack_ingest_queue_depth",
            "Activities waiting in the write queue.",
            gauges.queue_depth,
        );
        gauge(
            &mut out,
            "jetrack_ingest_queue_capacity",
            "Activities the write queue can hold.",
            gauges.queue_capacity,
        );

        let name = "jetrack_db_commit_duration_seconds";
        write_header(
            &mut out,
            name,
            "histogram",
            "Time the database writer takes to commit one batch.",
        );
        write_histogram(&mut out, name, &[], &self.commit_latency.snapshot());

        gauge(
            &mut out,
            "jetrack_db_size_bytes",
            "Size of the database file.",
            gauges.db_bytes,
        );
        gauge(
            &mut out,
            "jetrack_db_wal_size_bytes",
            "Size of the database's write-ahead log.",
            gauges.wal_bytes,
        );

        out
    }
}

/// A counter family with one label: the expected values are plain atomics, anything else goes
/// to a locked map, which stays cheap because unexpected values are rare.
#[derive(Debug)]
struct LabelledCounters {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    known: &'static [&'static str],
    counts: Box<[AtomicU64]>,
    others: Mutex<HashMap<&'static str, u64>>,
}

impl LabelledCounters {
    fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        known: &'static [&'static str],
    ) -> Self {
        LabelledCounters {
            name,
            help,
            label,
            known,
            counts: known.iter().map(|_| AtomicU64::new(0)).collect(),
            others: Mutex::new(HashMap::new()),
        }
    }

    fn add(&self, label: &'static str, n: u64) {
        match self.known.iter().position(|&k| k == label) {
            Some(i) => {
                self.counts[i].fetch_add(n, Ordering::Relaxed);
            }
            None => {
                let mut others = lock(&self.others);
                let count = others.entry(label).or_default();
                *count = count.wrapping_add(n);
            }
        }
    }

    /// Every known label (0 when unused) and every other label seen, sorted by label.
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut all: Vec<(&'static str, u64)> = self
            .known
            .iter()
            .zip(self.counts.iter())
            .map(|(&label, count)| (label, count.load(Ordering::Relaxed)))
            .collect();
        all.extend(
            lock(&self.others)
                .iter()
                .map(|(&label, &count)| (label, count)),
        );
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }

    fn write_to(&self, out: &mut String) {
        write_header(out, self.name, "counter", self.help);
        for (value, count) in self.snapshot() {
            write_sample(out, self.name, &[(self.label, value)], count);
        }
    }
}

fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One `name{labels} value` line; label values are escaped as the text format requires.
fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The `_bucket` lines (cumulative, ending with `+Inf`), then `_sum` in seconds and `_count`.
fn write_histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
    let bucket = format!("{name}_bucket");
    let les = h
        .bounds
        .iter()
        .map(|b| b.to_string())
        .chain(["+Inf".to_string()]);
    for (le, count) in les.zip(&h.cumulative) {
        let mut with_le = labels.to_vec();
        with_le.push(("le", &le));
        write_sample(out, &bucket, &with_le, count);
    }
    let count = h.cumulative.last().copied().unwrap_or(0);
    write_sample(
        out,
        &format!("{name}_sum"),
        labels,
        h.sum_nanos as f64 / 1e9,
    );
    write_sample(out, &format!("{name}_count"), labels, count);
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

// A panic elsewhere while a lock was held leaves the counters intact, so metrics carry on
// instead of spreading the panic to every request.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A strict reader of the text format: every line is a HELP, a TYPE or a sample, HELP and
    /// TYPE come once per family before its samples, and each sample belongs to the family
    /// declared last. Panics with the offending line otherwise.
    fn parse(text: &str) -> (Vec<(String, String)>, Vec<Sample>) {
        assert!(text.ends_with('\n'), "exposition must end with a newline");
        let mut families: Vec<(String, String)> = Vec::new();
        let mut helped: Vec<String> = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect(line);
                assert!(!help.is_empty(), "empty help: {line}");
                assert!(!helped.iter().any(|h| h == name), "HELP twice: {line}");
                helped.push(name.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect(line);
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert_eq!(
                    helped.last().map(String::as_str),
                    Some(name),
                    "TYPE without HELP: {line}"
                );
                assert!(
                    !families.iter().any(|(n, _)| n == name),
                    "TYPE twice: {line}"
                );
                families.push((name.to_string(), kind.to_string()));
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let sample = parse_sample(line);
            let (family, kind) = families.last().expect("sample before any TYPE");
            let belongs = if kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| sample.name == format!("{family}{suffix}"))
            } else {
                &sample.name == family
            };
            assert!(belongs, "sample outside its family {family}: {line}");
            samples.push(sample);
        }
        (families, samples)
    }

    fn parse_sample(line: &str) -> Sample {
        let mut chars = line.chars().peekable();
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '{' || c == ' ' {
                break;
            }
            assert!(
                c.is_ascii_alphanumeric() || c == '_' || c == ':',
                "bad name: {line}"
            );
            name.push(c);
            chars.next();
        }
        assert!(!name.is_empty(), "no metric name: {line}");
        let mut labels = Vec::new();
        if chars.next_if_eq(&'{').is_some() {
            loop {
                let mut label = String::new();
                for c in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    assert!(
                        c.is_ascii_alphanumeric() || c == '_',
                        "bad label name: {line}"
                    );
                    label.push(c);
                }
                assert!(!label.is_empty(), "empty label name: {line}");
                assert_eq!(chars.next(), Some('"'), "unquoted label value: {line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect(line) {
                        '"' => break,
                        '\\' => match chars.next().expect(line) {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other}: {line}"),
                        },
                        '\n' => panic!("raw newline in label value: {line}"),
                        c => value.push(c),
                    }
                }
                labels.push((label, value));
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    _ => panic!("bad label list: {line}"),
                }
            }
        }
        assert_eq!(chars.next(), Some(' '), "no space before value: {line}");
        let value: String = chars.collect();
        assert!(!value.contains(' '), "timestamp or extra field: {line}");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value not a float: {line}"));
        Sample {
            name,
            labels,
            value,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The value of the one sample with exactly these name and labels.
    fn find(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.label(k) == Some(*v))
            })
            .collect();
        assert_eq!(matching.len(), 1, "{name} {labels:?}: {matching:?}");
        matching[0].value
    }

    /// The samples of a one-label family as (label value, value), in output order.
    fn by_label<'a>(samples: &'a [Sample], name: &str, label: &str) -> Vec<(&'a str, f64)> {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.label(label).expect(label), s.value))
            .collect()
    }

    /// The `_bucket` values of one histogram series, in output order, with their `le`.
    fn buckets(samples: &[Sample], family: &str, route: Option<&str>) -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket") && s.label("route") == route)
            .map(|s| (s.label("le").expect("le").to_string(), s.value))
            .collect()
    }

    /// Every histogram series: `le` bounds increasing and ending in `+Inf`, counts cumulative,
    /// `+Inf` equal to `_count`.
    fn check_histograms(families: &[(String, String)], samples: &[Sample]) {
        for (family, _) in families.iter().filter(|(_, kind)| kind == "histogram") {
            let counts: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.name == format!("{family}_count"))
                .collect();
            for count in counts {
                let route = count.label("route");
                let series = buckets(samples, family, route);
                let les: Vec<f64> = series.iter().map(|(le, _)| le.parse().expect(le)).collect();
                assert_eq!(series.last().map(|(le, _)| le.as_str()), Some("+Inf"));
                assert!(
                    les.windows(2).all(|w| w[0] < w[1]),
                    "{family} {route:?}: {les:?}"
                );
                assert!(
                    series.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{family} {route:?}: {series:?}"
                );
                assert_eq!(series.last().map(|(_, v)| *v), Some(count.value));
                let sum = samples
                    .iter()
                    .filter(|s| s.name == format!("{family}_sum") && s.label("route") == route)
                    .count();
                assert_eq!(sum, 1, "{family} {route:?} needs one _sum");
            }
        }
    }

    fn render_and_parse(m: &Metrics, gauges: &Gauges) -> (Vec<(String, String)>, Vec<Sample>) {
        let (families, samples) = parse(&m.render(gauges));
        check_histograms(&families, &samples);
        (families, samples)
    }

    const FAMILIES: [(&str, &str); 9] = [
        ("jetrack_http_requests_total", "counter"),
        ("jetrack_http_request_duration_seconds", "histogram"),
        ("jetrack_ingest_accepted_total", "counter"),
        ("jetrack_ingest_dropped_total", "counter"),
        ("jetrack_ingest_queue_depth", "gauge"),
        ("jetrack_ingest_queue_capacity", "gauge"),
        ("jetrack_db_commit_duration_seconds", "histogram"),
        ("jetrack_db_size_bytes", "gauge"),
        ("jetrack_db_wal_size_bytes", "gauge"),
    ];

    fn expected_families() -> Vec<(String, String)> {
        FAMILIES
            .iter()
            .map(|(n, k)| (n.to_string(), k.to_string()))
            .collect()
    }

    #[test]
    fn fresh_metrics_render_every_family_once_with_zeroes() {
        let (families, samples) = render_and_parse(&Metrics::new(), &Gauges::default());
        assert_eq!(families, expected_families());
        assert_eq!(
            by_label(&samples, "jetrack_ingest_accepted_total", "type"),
            [("event", 0.0), ("heartbeat", 0.0), ("pageview", 0.0)]
        );
        assert_eq!(
            by_label(&samples, "jetrack_ingest_dropped_total", "reason"),
            [
                ("bot", 0.0),
                ("hostname", 0.0),
                ("quota", 0.0),
                ("spam", 0.0),
                ("unknown-website", 0.0)
            ]
        );
        assert!(!samples.iter().any(|s| s.name.starts_with("jetrack_http_")));
        // The commit histogram is always there: 14 bounds + `+Inf`, `_sum`, `_count`.
        let commit: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name.starts_with("jetrack_db_commit_duration_seconds"))
            .collect();
        assert_eq!(commit.len(), LATENCY_BUCKETS.len() + 3);
        assert!(
            commit
                .iter()
                .all(|s| s.value == 0.0 && s.labels.iter().all(|(k, _)| k == "le"))
        );
    }

    #[test]
    fn requests_are_counted_by_route_and_status_and_timed_by_route() {
        let m = Metrics::new();
        m.observe_request("/api/collect", 202, ms(3));
        m.observe_request("/api/collect", 202, ms(3));
        m.observe_request("/api/collect", 400, ms(20));
        m.observe_request("/api/v1/websites/{id}", 200, ms(1200));
        m.observe_request("(unmatched)", 404, Duration::from_micros(100));
        let (_, samples) = render_and_parse(&m, &Gauges::default());

        let total = "jetrack_http_requests_total";
        assert_eq!(
            find(
                &samples,
                total,
                &[("route", "/api/collect"), ("status", "202")]
            ),
            2.0
        );
        assert_eq!(
            find(
                &samples,
                total,
                &[("route", "/api/collect"), ("status", "400")]
            ),
            1.0
        );
        assert_eq!(
            find(
                &samples,
                total,
                &[("route", "/api/v1/websites/{id}"), ("status", "200")]
            ),
            1.0
        );
        assert_eq!(
            find(
                &samples,
                total,
                &[("route", "(unmatched)"), ("status", "404")]
            ),
            1.0
        );
        assert_eq!(samples.iter().filter(|s| s.name == total).count(), 4);

        let family = "jetrack_http_request_duration_seconds";
        let mut les: Vec<String> = LATENCY_BUCKETS.iter().map(|b| b.to_string()).collect();
        les.push("+Inf".into());
        let with_les =
            |counts: [f64; 15]| -> Vec<(String, f64)> { les.iter().cloned().zip(counts).collect() };
        // 3 ms, 3 ms, 20 ms: none by 2.5 ms, two by 5 ms and 10 ms, all three from 25 ms on.
        assert_eq!(
            buckets(&samples, family, Some("/api/collect")),
            with_les([0., 0., 0., 2., 2., 3., 3., 3., 3., 3., 3., 3., 3., 3., 3.])
        );
        // 1.2 s: first counted at the 2.5 s bound.
        assert_eq!(
            buckets(&samples, family, Some("/api/v1/websites/{id}")),
            with_les([0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1., 1., 1.])
        );
        // 0.1 ms: in every bucket.
        assert_eq!(
            buckets(&samples, family, Some("(unmatched)")),
            with_les([1.; 15])
        );

        let sum = format!("{family}_sum");
        let count = format!("{family}_count");
        assert!((find(&samples, &sum, &[("route", "/api/collect")]) - 0.026).abs() < 1e-12);
        assert!((find(&samples, &sum, &[("route", "/api/v1/websites/{id}")]) - 1.2).abs() < 1e-12);
        assert!((find(&samples, &sum, &[("route", "(unmatched)")]) - 0.0001).abs() < 1e-12);
        assert_eq!(find(&samples, &count, &[("route", "/api/collect")]), 3.0);
        assert_eq!(
            find(&samples, &count, &[("route", "/api/v1/websites/{id}")]),
            1.0
        );
        assert_eq!(find(&samples, &count, &[("route", "(unmatched)")]), 1.0);
    }

    #[test]
    fn series_are_sorted_by_route_then_status_whatever_the_arrival_order() {
        let m = Metrics::new();
        for (route, status) in [
            ("/b", 500),
            ("/a", 404),
            ("/b", 200),
            ("/a", 200),
            ("/a", 30),
        ] {
            m.observe_request(route, status, ms(1));
        }
        let text = m.render(&Gauges::default());
        assert_eq!(text, m.render(&Gauges::default()));
        let (_, samples) = parse(&text);
        let order: Vec<(&str, &str)> = samples
            .iter()
            .filter(|s| s.name == "jetrack_http_requests_total")
            .map(|s| {
                (
                    s.label("route").expect("route"),
                    s.label("status").expect("status"),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                ("/a", "30"),
                ("/a", "200"),
                ("/a", "404"),
                ("/b", "200"),
                ("/b", "500")
            ]
        );
        let routes: Vec<&str> = samples
            .iter()
            .filter(|s| s.name == "jetrack_http_request_duration_seconds_count")
            .map(|s| s.label("route").expect("route"))
            .collect();
        assert_eq!(routes, ["/a", "/b"]);
    }

    #[test]
    fn a_duration_equal_to_a_bound_counts_in_that_bound() {
        static BOUNDS: &[f64] = &[0.005, 0.01];
        let h = Histogram::new(BOUNDS);
        h.observe(ms(5));
        h.observe(ms(5) + Duration::from_nanos(1));
        h.observe(ms(10));
        h.observe(Duration::from_secs(11));
        assert_eq!(h.cumulative_counts(), [1, 3, 4]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), Duration::from_nanos(11_020_000_001));
        assert_eq!(h.bounds(), BOUNDS);
    }

    #[test]
    fn commit_latency_renders_without_labels_and_sum_in_seconds() {
        let m = Metrics::new();
        m.commit_latency().observe(ms(2));
        m.commit_latency().observe(ms(40));
        m.commit_latency().observe(ms(1500));
        let (_, samples) = render_and_parse(&m, &Gauges::default());
        let family = "jetrack_db_commit_duration_seconds";
        let series = buckets(&samples, family, None);
        let at = |le: &str| series.iter().find(|(l, _)| l == le).map(|(_, v)| *v);
        assert_eq!(at("0.001"), Some(0.0));
        assert_eq!(at("0.0025"), Some(1.0));
        assert_eq!(at("0.05"), Some(2.0));
        assert_eq!(at("1"), Some(2.0));
        assert_eq!(at("2.5"), Some(3.0));
        assert_eq!(at("+Inf"), Some(3.0));
        assert!((find(&samples, &format!("{family}_sum"), &[]) - 1.542).abs() < 1e-12);
        assert_eq!(find(&samples, &format!("{family}_count"), &[]), 3.0);
    }

    #[test]
    fn ingest_counters_add_up_and_unknown_reasons_appear() {
        let m = Metrics::new();
        m.accepted("pageview", 3);
        m.accepted("pageview", 2);
        m.accepted("event", 7);
        m.dropped("bot", 4);
        m.dropped("spam", 1);
        m.dropped("rate-limited", 2);
        m.dropped("rate-limited", 1);
        let (_, samples) = render_and_parse(&m, &Gauges::default());
        let accepted = "jetrack_ingest_accepted_total";
        assert_eq!(find(&samples, accepted, &[("type", "pageview")]), 5.0);
        assert_eq!(find(&samples, accepted, &[("type", "event")]), 7.0);
        assert_eq!(find(&samples, accepted, &[("type", "heartbeat")]), 0.0);
        let dropped = "jetrack_ingest_dropped_total";
        assert_eq!(find(&samples, dropped, &[("reason", "bot")]), 4.0);
        assert_eq!(find(&samples, dropped, &[("reason", "spam")]), 1.0);
        assert_eq!(find(&samples, dropped, &[("reason", "rate-limited")]), 3.0);
        for reason in ["unknown-website", "hostname", "quota"] {
            assert_eq!(find(&samples, dropped, &[("reason", reason)]), 0.0);
        }
        assert_eq!(samples.iter().filter(|s| s.name == dropped).count(), 6);
    }

    #[test]
    fn gauges_are_rendered_as_given() {
        let gauges = Gauges {
            queue_depth: 17,
            queue_capacity: 10_000,
            db_bytes: 123_456_789,
            wal_bytes: 4096,
        };
        let (_, samples) = render_and_parse(&Metrics::new(), &gauges);
        assert_eq!(find(&samples, "jetrack_ingest_queue_depth", &[]), 17.0);
        assert_eq!(
            find(&samples, "jetrack_ingest_queue_capacity", &[]),
            10_000.0
        );
        assert_eq!(find(&samples, "jetrack_db_size_bytes", &[]), 123_456_789.0);
        assert_eq!(find(&samples, "jetrack_db_wal_size_bytes", &[]), 4096.0);
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        let route = "/odd\"route\\with\nnewline";
        m.observe_request(route, 200, ms(1));
        m.dropped("say \"no\"", 1);
        let text = m.render(&Gauges::default());
        assert!(text.contains(
            "jetrack_http_requests_total{route=\"/odd\\\"route\\\\with\\nnewline\",status=\"200\"} 1\n"
        ));
        assert!(text.contains("jetrack_ingest_dropped_total{reason=\"say \\\"no\\\"\"} 1\n"));
        let (families, samples) = parse(&text);
        check_histograms(&families, &samples);
        assert_eq!(
            find(
                &samples,
                "jetrack_http_requests_total",
                &[("route", route), ("status", "200")]
            ),
            1.0
        );
        assert_eq!(
            find(
                &samples,
                "jetrack_http_request_duration_seconds_count",
                &[("route", route)]
            ),
            1.0
        );
        assert_eq!(
            find(
                &samples,
                "jetrack_ingest_dropped_total",
                &[("reason", "say \"no\"")]
            ),
            1.0
        );
    }

    #[test]
    fn counts_from_concurrent_threads_add_up() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        let route = if i % 2 == 0 { "/a" } else { "/b" };
                        let status = if i % 10 == 0 { 500 } else { 200 };
                        m.observe_request(route, status, ms(1));
                        m.accepted("pageview", 1);
                        m.dropped("bot", 1);
                        m.dropped("rate-limited", 1);
                        m.commit_latency().observe(ms(2));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let (_, samples) = render_and_parse(&m, &Gauges::default());
        // Per thread: 5,000 even i on /a, of which 1,000 are multiples of 10 (500); 5,000 odd
        // i on /b, all 200. Four threads.
        let total = "jetrack_http_requests_total";
        assert_eq!(
            find(&samples, total, &[("route", "/a"), ("status", "200")]),
            16_000.0
        );
        assert_eq!(
            find(&samples, total, &[("route", "/a"), ("status", "500")]),
            4_000.0
        );
        assert_eq!(
            find(&samples, total, &[("route", "/b"), ("status", "200")]),
            20_000.0
        );
        let count = "jetrack_http_request_duration_seconds_count";
        let sum = "jetrack_http_request_duration_seconds_sum";
        for route in ["/a", "/b"] {
            assert_eq!(find(&samples, count, &[("route", route)]), 20_000.0);
            assert!((find(&samples, sum, &[("route", route)]) - 20.0).abs() < 1e-9);
        }
        assert_eq!(
            find(
                &samples,
                "jetrack_ingest_accepted_total",
                &[("type", "pageview")]
            ),
            40_000.0
        );
        assert_eq!(
            find(
                &samples,
                "jetrack_ingest_dropped_total",
                &[("reason", "bot")]
            ),
            40_000.0
        );
        assert_eq!(
            find(
                &samples,
                "jetrack_ingest_dropped_total",
                &[("reason", "rate-limited")]
            ),
            40_000.0
        );
        assert_eq!(
            find(&samples, "jetrack_db_commit_duration_seconds_count", &[]),
            40_000.0
        );
        assert!(
            (find(&samples, "jetrack_db_commit_duration_seconds_sum", &[]) - 80.0).abs() < 1e-9
        );
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn unsorted_bounds_are_refused() {
        Histogram::new(&[0.1, 0.01]);
    }

    #[test]
    fn metrics_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Metrics>();
        send_sync::<Histogram>();
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }
}
