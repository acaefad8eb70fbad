//! Prometheus metrics: HTTP requests by route and status with latency histograms, SCIM
//! operations by resource and kind, and database pool usage (sampled at scrape time).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::access::FeedStats;
use crate::store::Store;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    scim_ops: IntCounterVec,
    pool: IntGaugeVec,
    user_reads_memory: IntCounter,
    user_reads_database: IntCounter,
    /// Change-feed catch-ups and read barriers (sampled from `Access` at scrape time).
    catch_ups: IntCounter,
    barriers: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "rolecall_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "rolecall_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["route", "method"],
        )?;
        let scim_ops = IntCounterVec::new(
            Opts::new(
                "rolecall_scim_operations_total",
                "Successful SCIM operations by resource and kind",
            ),
            &["resource", "kind"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "rolecall_db_pool_connections",
                "Database pool connections by pool and state",
            ),
            &["pool", "state"],
        )?;
        let user_reads = IntCounterVec::new(
            Opts::new(
                "rolecall_scim_user_reads_total",
                "SCIM reads of one user by id, userName or externalId, by where they were \
                 answered from (see README)",
            ),
            &["source"],
        )?;
        let catch_ups = IntCounter::new(
            "rolecall_feed_catch_ups_total",
            "Catch-ups with the change feed (one audit-log query each, plus what it names)",
        )?;
        let barriers = IntCounter::new(
            "rolecall_feed_barriers_total",
            "Read barriers: reads that waited for a catch-up started after they arrived \
             (PostgreSQL single-user reads; they share catch-ups)",
        )?;
        registry.register(Box::new(catch_ups.clone()))?;
        registry.register(Box::new(barriers.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(scim_ops.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(user_reads.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            scim_ops,
            pool,
            user_reads_memory: user_reads.with_label_values(&["memory"]),
            user_reads_database: user_reads.with_label_values(&["database"]),
            catch_ups,
            barriers,
        })
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// A single-user SCIM read, answered from memory or from the database.
    pub fn user_read(&self, from_memory: bool) {
        if from_memory {
            self.user_reads_memory.inc();
        } else {
            self.user_reads_database.inc();
        }
    }

    pub fn scim_op(&self, resource: &str, kind: &str) {
        self.scim_ops.with_label_values(&[resource, kind]).inc();
    }

    /// The text exposition, with pool gauges and the feed's counters sampled now.
    pub fn render(&self, store: &Store, feed: FeedStats) -> String {
        for (counter, now) in [
            (&self.catch_ups, feed.catch_ups),
            (&self.barriers, feed.barriers),
        ] {
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        for (name, size, idle) in store.pool_stats() {
            let idle = idle as i64;
            self.pool.with_label_values(&[name, "idle"]).set(idle);
            self.pool
                .with_label_values(&[name, "in_use"])
                .set(i64::from(size) - idle);
        }
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
