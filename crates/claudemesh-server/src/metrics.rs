//! The server's operational metrics, in Prometheus's text format.
//!
//! One process-wide registry: the code that does the work records into it
//! (a counter add or a histogram observe, a few atomics, no lock on the hot
//! path once a label set has been seen), whether or not anyone scrapes. It is
//! exposed only on the address `--metrics-bind` names (off by default, so a
//! default deployment publishes nothing new); see `app::metrics_listener`.
//!
//! Names follow Prometheus's conventions: a `claudemesh_` prefix, base units
//! (seconds, bytes), `_total` on counters. Labels are route templates and
//! stable codes, never anything a user typed (a path carries device codes).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Latency buckets, in seconds: from a fraction of a millisecond (the
/// broker's target) to several seconds (a waiting device-code poll).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// Operations per writer transaction (at most `writer::MAX_BATCH`).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

pub struct Metrics {
    registry: Registry,
    /// Requests answered, by method, route template and status.
    pub http_requests: IntCounterVec,
    /// Time to answer, by method and route template.
    pub http_duration: HistogramVec,
    /// Broker sessions connected to this instance now.
    pub broker_sessions: IntGauge,
    /// Messages stored (accepted from a sender).
    pub broker_messages_in: IntCounter,
    /// Message frames written to recipients' sessions.
    pub broker_messages_out: IntCounter,
    /// From a message's `sent_at` to its frame leaving for a recipient.
    pub broker_delivery: Histogram,
    /// Error frames sent and sessions refused, by stable code.
    pub broker_refusals: IntCounterVec,
    /// Copies refused or skipped for want of a grant, by capability.
    pub broker_grant_drops: IntCounterVec,
    /// Events that did not fit a session's queue (the session then reads
    /// the table once it has caught up: nothing is lost).
    pub broker_queue_overflows: IntCounter,
    pub broker_backlog_read_failures: IntCounter,
    /// Operations waiting for the writer, seen when it takes a batch.
    pub broker_writer_queue: IntGauge,
    /// Operations per writer transaction.
    pub broker_writer_batch: Histogram,
    /// Time to write and commit one batch.
    pub broker_writer_commit: Histogram,
    /// From an instance sending a bus event to another receiving it.
    pub broker_bus_lag: Histogram,
    /// Bus events, by direction (`sent`, `received`).
    pub broker_bus_events: IntCounterVec,
    /// Connections (HTTP or WebSocket) closed because their peer read
    /// nothing for the write-stall timeout.
    pub stalled_connections_closed: IntCounter,
    /// Database connections, by state (`idle`, `in_use`), read at scrape.
    pub db_connections: IntGaugeVec,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    #[expect(
        clippy::expect_used,
        reason = "a metric is refused only for a malformed name or labels, fixed strings here: the unit test below builds them all"
    )]
    fn new() -> Self {
        let registry = Registry::new();
        let latency = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let http_requests = IntCounterVec::new(
            Opts::new("claudemesh_http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )
        .expect("metric");
        let http_duration = HistogramVec::new(
            latency(
                "claudemesh_http_request_duration_seconds",
                "Time to answer an HTTP request",
            ),
            &["method", "route"],
        )
        .expect("metric");
        let broker_sessions = IntGauge::new(
            "claudemesh_broker_sessions",
            "Broker sessions connected to this instance",
        )
        .expect("metric");
        let broker_messages_in = IntCounter::new(
            "claudemesh_broker_messages_in_total",
            "Messages accepted and stored",
        )
        .expect("metric");
        let broker_messages_out = IntCounter::new(
            "claudemesh_broker_messages_out_total",
            "Message frames written to recipients' sessions",
        )
        .expect("metric");
        let broker_delivery = Histogram::with_opts(latency(
            "claudemesh_broker_delivery_seconds",
            "From a message's sent_at to its frame leaving for a recipient",
        ))
        .expect("metric");
        let broker_refusals = IntCounterVec::new(
            Opts::new(
                "claudemesh_broker_refusals_total",
                "Error frames sent and sessions refused, by code",
            ),
            &["code"],
        )
        .expect("metric");
        let broker_grant_drops = IntCounterVec::new(
            Opts::new(
                "claudemesh_broker_grant_drops_total",
                "Message copies refused or skipped for want of a grant, by capability",
            ),
            &["capability"],
        )
        .expect("metric");
        let broker_queue_overflows = IntCounter::new(
            "claudemesh_broker_queue_overflows_total",
            "Events that did not fit a session's queue (read from the table later)",
        )
        .expect("metric");
        let broker_backlog_read_failures = IntCounter::new(
            "claudemesh_broker_backlog_read_failures_total",
            "Reads of a session's waiting messages that failed (tried again on the connection)",
        )
        .expect("metric");
        let broker_writer_queue = IntGauge::new(
            "claudemesh_broker_writer_queue",
            "Operations waiting for the broker's writer",
        )
        .expect("metric");
        let broker_writer_batch = Histogram::with_opts(
            HistogramOpts::new(
                "claudemesh_broker_writer_batch_size",
                "Operations per broker writer transaction",
            )
            .buckets(BATCH_BUCKETS.to_vec()),
        )
        .expect("metric");
        let broker_writer_commit = Histogram::with_opts(latency(
            "claudemesh_broker_writer_commit_seconds",
            "Time to write and commit one broker batch",
        ))
        .expect("metric");
        let broker_bus_lag = Histogram::with_opts(latency(
            "claudemesh_broker_bus_lag_seconds",
            "From one instance sending a bus event to another receiving it",
        ))
        .expect("metric");
        let broker_bus_events = IntCounterVec::new(
            Opts::new(
                "claudemesh_broker_bus_events_total",
                "Events between instances, by direction",
            ),
            &["direction"],
        )
        .expect("metric");
        let stalled_connections_closed = IntCounter::new(
            "claudemesh_stalled_connections_closed_total",
            "Connections closed because their peer read nothing for the write-stall timeout",
        )
        .expect("metric");
        let db_connections = IntGaugeVec::new(
            Opts::new(
                "claudemesh_db_connections",
                "Database pool connections, by state",
            ),
            &["state"],
        )
        .expect("metric");
        let metrics = Self {
            registry,
            http_requests,
            http_duration,
            broker_sessions,
            broker_messages_in,
            broker_messages_out,
            broker_delivery,
            broker_refusals,
            broker_grant_drops,
            broker_queue_overflows,
            broker_backlog_read_failures,
            broker_writer_queue,
            broker_writer_batch,
            broker_writer_commit,
            broker_bus_lag,
            broker_bus_events,
            stalled_connections_closed,
            db_connections,
        };
        metrics.register_all();
        metrics
    }

    #[expect(
        clippy::expect_used,
        reason = "registration fails only for a name registered twice, which the unit test below would catch"
    )]
    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 17] = [
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.broker_sessions.clone()),
            Box::new(self.broker_messages_in.clone()),
            Box::new(self.broker_messages_out.clone()),
            Box::new(self.broker_delivery.clone()),
            Box::new(self.broker_refusals.clone()),
            Box::new(self.broker_grant_drops.clone()),
            Box::new(self.broker_queue_overflows.clone()),
            Box::new(self.broker_backlog_read_failures.clone()),
            Box::new(self.broker_writer_queue.clone()),
            Box::new(self.broker_writer_batch.clone()),
            Box::new(self.broker_writer_commit.clone()),
            Box::new(self.broker_bus_lag.clone()),
            Box::new(self.broker_bus_events.clone()),
            Box::new(self.stalled_connections_closed.clone()),
            Box::new(self.db_connections.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric registered once");
        }
    }

    /// Everything, in Prometheus's text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec fails only on a malformed family, which the
        // registry does not hold.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Records one answered HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Counts one broker refusal (an error frame or a refused session).
    pub fn refusal(&self, code: &str) {
        self.broker_refusals.with_label_values(&[code]).inc();
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Milliseconds since the Unix epoch on this machine's clock (for the
/// latencies measured against a time another process or instance stamped).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds from `since_ms` (wall clock) to now; `None` when the stamp is in
/// the future (clocks of two machines disagree) or absent.
pub fn seconds_since(since_ms: i64) -> Option<f64> {
    let elapsed = wall_ms().checked_sub(since_ms)?;
    (elapsed >= 0).then(|| elapsed as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_help_and_type() {
        let metrics = Metrics::new();
        metrics.observe_request("GET", "/healthz", 200, 0.001);
        metrics.refusal("not_permitted");
        metrics.broker_sessions.inc();
        let text = metrics.render();
        assert!(
            text.contains("# TYPE claudemesh_http_requests_total counter"),
            "{text}"
        );
        assert!(text.contains(
            "claudemesh_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ));
        assert!(text.contains("claudemesh_broker_refusals_total{code=\"not_permitted\"} 1"));
        assert!(text.contains("claudemesh_broker_sessions 1"));
        assert!(text.contains("# TYPE claudemesh_http_request_duration_seconds histogram"));
    }

    #[test]
    fn a_stamp_from_the_future_has_no_latency() {
        assert_eq!(seconds_since(wall_ms() + 60_000), None);
        let past = seconds_since(wall_ms() - 1_500).unwrap();
        assert!((1.4..10.0).contains(&past), "{past}");
    }
}
