//! Operational metrics for the `/metrics` listener (docs/operations.md, "Metrics"), in the
//! Prometheus text format 0.0.4: requests by route template and status, request and commit
//! latency, ingest accepted and dropped, queue depth and database size. Nothing here is counted
//! per website.
//!
//! The series are `prometheus-client` families with typed labels. `observe_request` runs on
//! every HTTP request: it is two look-ups of an existing series under a shared read lock and no
//! allocation once a route and status have been seen.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ingest::input::Drop;
use crate::ingest::store::Kind;

/// The content type of the text exposition format 0.0.4, which `render` writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds in seconds for request and commit latency, from half a millisecond to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `reason` of `jetrack_ingest_dropped_total`: a reason shared by collect and import, or an
/// imported event refused for its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    Dropped(Drop),
    Invalid,
}

impl From<Drop> for DropReason {
    fn from(drop: Drop) -> Self {
        DropReason::Dropped(drop)
    }
}

impl EncodeLabelValue for DropReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            DropReason::Dropped(drop) => drop.as_str(),
            DropReason::Invalid => "invalid",
        }
        .encode(encoder)
    }
}

impl EncodeLabelValue for Kind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    /// From the route table, e.g. "/api/collect", "/websites/{id}", "(unmatched)".
    route: Cow<'static, str>,
    status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: Cow<'static, str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TypeLabels {
    r#type: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: DropReason,
}

type SizeGauge = Gauge<u64, AtomicU64>;

/// Sizes read when `/metrics` is scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gauges {
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub db_bytes: u64,
    pub wal_bytes: u64,
}

/// All series of the process. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    accepted: Family<TypeLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    commit_latency: Histogram,
    queue_depth: SizeGauge,
    queue_capacity: SizeGauge,
    db_bytes: SizeGauge,
    wal_bytes: SizeGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("jetrack"),
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            accepted: Family::default(),
            dropped: Family::default(),
            commit_latency: latency_histogram(),
            queue_depth: SizeGauge::default(),
            queue_capacity: SizeGauge::default(),
            db_bytes: SizeGauge::default(),
            wal_bytes: SizeGauge::default(),
        };
        // Every type and reason is rendered, at 0 when none arrived, so dashboards see them.
        for kind in Kind::ALL {
            m.accepted.get_or_create_owned(&TypeLabels { r#type: kind });
        }
        let reasons = Drop::ALL.map(DropReason::from);
        for reason in reasons.into_iter().chain([DropReason::Invalid]) {
            m.dropped.get_or_create_owned(&ReasonLabels { reason });
        }

        // Exposed as `jetrack_` + name. Counters are registered without `_total`, which the
        // encoder appends; the encoder also ends each help text with a full stop.
        let registry = &mut m.registry;
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            m.durations.clone(),
        );
        registry.register(
            "ingest_accepted",
            "Ingest activities accepted for storage, by type",
            m.accepted.clone(),
        );
        registry.register(
            "ingest_dropped",
            "Ingest activities dropped before storage, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "ingest_queue_depth",
            "Activities waiting in the write queue",
            m.queue_depth.clone(),
        );
        registry.register(
            "ingest_queue_capacity",
            "Activities the write queue can hold",
            m.queue_capacity.clone(),
        );
        registry.register(
            "db_commit_duration_seconds",
            "Time the database writer takes to commit one batch",
            m.commit_latency.clone(),
        );
        registry.register(
            "db_size_bytes",
            "Size of the database file",
            m.db_bytes.clone(),
        );
        registry.register(
            "db_wal_size_bytes",
            "Size of the database's write-ahead log",
            m.wal_bytes.clone(),
        );
        m
    }

    /// One finished HTTP request: route template, status code, duration.
    pub fn observe_request(
        &self,
        route: impl Into<Cow<'static, str>>,
        status: u16,
        elapsed: Duration,
    ) {
        let route = route.into();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// `n` accepted ingest activities of `kind`.
    pub fn accepted(&self, kind: Kind, n: u64) {
        self.accepted
            .get_or_create(&TypeLabels { r#type: kind })
            .inc_by(n);
    }

    /// `n` ingest activities dropped for `reason`.
    pub fn dropped(&self, reason: DropReason, n: u64) {
        self.dropped
            .get_or_create(&ReasonLabels { reason })
            .inc_by(n);
    }

    /// One commit of the database writer.
    pub fn observe_commit(&self, elapsed: Duration) {
        self.commit_latency.observe(elapsed.as_secs_f64());
    }

    /// The text exposition (format 0.0.4) of every series, with the gauges as given.
    pub fn render(&self, gauges: &Gauges) -> String {
        // Two scrapes at once may each show the other's sizes; both were just read.
        self.queue_depth.set(gauges.queue_depth);
        self.queue_capacity.set(gauges.queue_capacity);
        self.db_bytes.set(gauges.db_bytes);
        self.wal_bytes.set(gauges.wal_bytes);
        let mut out = String::with_capacity(8192);
        // Writing to a String fails only if a value cannot be formatted; say so, but serve
        // what there is rather than fail the scrape.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics could not all be written");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The value of the sample line `series` (name and labels as written).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect(l))
        })
    }

    /// The `# TYPE` lines in order: (name, type).
    fn families(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
            .collect()
    }

    #[test]
    fn a_fresh_scrape_names_every_family_type_and_reason() {
        let text = Metrics::new().render(&Gauges::default());
        // The request families appear with the first request.
        assert_eq!(
            families(&text),
            [
                ("jetrack_ingest_accepted_total", "counter"),
                ("jetrack_ingest_dropped_total", "counter"),
                ("jetrack_ingest_queue_depth", "gauge"),
                ("jetrack_ingest_queue_capacity", "gauge"),
                ("jetrack_db_commit_duration_seconds", "histogram"),
                ("jetrack_db_size_bytes", "gauge"),
                ("jetrack_db_wal_size_bytes", "gauge"),
            ]
        );
        for kind in ["pageview", "event", "heartbeat"] {
            let series = format!("jetrack_ingest_accepted_total{{type=\"{kind}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
        }
        for reason in [
            "bot",
            "unknown-website",
            "hostname",
            "quota",
            "spam",
            "invalid",
        ] {
            let series = format!("jetrack_ingest_dropped_total{{reason=\"{reason}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}\n{text}");
        }
        assert!(
            text.contains("# HELP jetrack_ingest_dropped_total Ingest activities dropped before storage, by reason.\n"),
            "{text}"
        );
        // The 0.0.4 format: no OpenMetrics end marker.
        assert!(!text.contains("# EOF"), "{text}");
        assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    }

    #[test]
    fn requests_are_counted_by_route_and_status_and_timed_by_route() {
        let m = Metrics::new();
        m.observe_request("/api/collect", 202, ms(3));
        m.observe_request("/api/collect", 202, ms(3));
        m.observe_request("/api/collect", 400, ms(20));
        m.observe_request("(unmatched)", 404, Duration::from_micros(100));
        let text = m.render(&Gauges::default());
        let requests = |route: &str, status: u16| {
            let series =
                format!("jetrack_http_requests_total{{route=\"{route}\",status=\"{status}\"}}");
            sample(&text, &series)
        };
        assert_eq!(requests("/api/collect", 202), Some(2.0));
        assert_eq!(requests("/api/collect", 400), Some(1.0));
        assert_eq!(requests("(unmatched)", 404), Some(1.0));
        let duration = |suffix: &str, labels: &str| {
            let series = format!("jetrack_http_request_duration_seconds_{suffix}{{{labels}}}");
            sample(&text, &series)
        };
        // 3 ms, 3 ms, 20 ms: none by 2.5 ms, two by 5 ms, all three from 25 ms on.
        let collect = "route=\"/api/collect\"";
        for (le, want) in [
            ("0.0025", 0.0),
            ("0.005", 2.0),
            ("0.01", 2.0),
            ("0.025", 3.0),
            ("+Inf", 3.0),
        ] {
            let labels = format!("{collect},le=\"{le}\"");
            assert_eq!(duration("bucket", &labels), Some(want), "le {le}\n{text}");
        }
        assert_eq!(duration("count", collect), Some(3.0));
        assert!((duration("sum", collect).unwrap() - 0.026).abs() < 1e-12);
        assert_eq!(
            duration("bucket", "route=\"(unmatched)\",le=\"0.0005\""),
            Some(1.0)
        );
    }

    #[test]
    fn a_commit_equal_to_a_bound_counts_in_that_bound() {
        let m = Metrics::new();
        m.observe_commit(ms(5));
        m.observe_commit(ms(5) + Duration::from_micros(1));
        m.observe_commit(ms(1000));
        m.observe_commit(Duration::from_secs(11));
        let text = m.render(&Gauges::default());
        let bucket = |le: &str| {
            sample(
                &text,
                &format!("jetrack_db_commit_duration_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        // Bounds are written as Prometheus writes them: 1, not 1.0.
        for (le, want) in [
            ("0.0025", 0.0),
            ("0.005", 1.0),
            ("0.01", 2.0),
            ("0.5", 2.0),
            ("1", 3.0),
            ("10", 3.0),
            ("+Inf", 4.0),
        ] {
            assert_eq!(bucket(le), Some(want), "le {le}\n{text}");
        }
        let buckets = text
            .lines()
            .filter(|l| l.starts_with("jetrack_db_commit_duration_seconds_bucket"))
            .count();
        assert_eq!(buckets, LATENCY_BUCKETS.len() + 1);
        let count = sample(&text, "jetrack_db_commit_duration_seconds_count");
        assert_eq!(count, Some(4.0));
        let sum = sample(&text, "jetrack_db_commit_duration_seconds_sum").unwrap();
        assert!((sum - 12.010_001).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn ingest_counters_add_up_by_type_and_reason() {
        let m = Metrics::new();
        m.accepted(Kind::Pageview, 3);
        m.accepted(Kind::Pageview, 2);
        m.accepted(Kind::Event, 7);
        m.dropped(Drop::Bot.into(), 4);
        m.dropped(Drop::UnknownWebsite.into(), 1);
        m.dropped(DropReason::Invalid, 2);
        let text = m.render(&Gauges::default());
        let accepted = |t: &str| {
            sample(
                &text,
                &format!("jetrack_ingest_accepted_total{{type=\"{t}\"}}"),
            )
        };
        assert_eq!(accepted("pageview"), Some(5.0));
        assert_eq!(accepted("event"), Some(7.0));
        assert_eq!(accepted("heartbeat"), Some(0.0));
        let dropped = |r: &str| {
            sample(
                &text,
                &format!("jetrack_ingest_dropped_total{{reason=\"{r}\"}}"),
            )
        };
        assert_eq!(dropped("bot"), Some(4.0));
        assert_eq!(dropped("unknown-website"), Some(1.0));
        assert_eq!(dropped("invalid"), Some(2.0));
        assert_eq!(dropped("spam"), Some(0.0));
    }

    #[test]
    fn gauges_are_rendered_as_given() {
        let m = Metrics::new();
        let gauges = Gauges {
            queue_depth: 17,
            queue_capacity: 10_000,
            db_bytes: 123_456_789,
            wal_bytes: 4096,
        };
        let text = m.render(&gauges);
        assert_eq!(sample(&text, "jetrack_ingest_queue_depth"), Some(17.0));
        assert_eq!(
            sample(&text, "jetrack_ingest_queue_capacity"),
            Some(10_000.0)
        );
        assert_eq!(sample(&text, "jetrack_db_size_bytes"), Some(123_456_789.0));
        assert_eq!(sample(&text, "jetrack_db_wal_size_bytes"), Some(4096.0));
        let text = m.render(&Gauges::default());
        assert_eq!(sample(&text, "jetrack_ingest_queue_depth"), Some(0.0));
    }

    #[test]
    fn metrics_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Metrics>();
    }
}
