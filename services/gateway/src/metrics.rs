//! What `GET /metrics` reports: the gateway's own counters in the Prometheus text format — requests by
//! route and status, request latency by route, open session streams, the shard map's
//! version. Recording is a few relaxed atomic adds per request (no lock, no allocation).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The routes measured, as axum matched them; anything else counts as `other`.
const ROUTES: [&str; 11] = [
    "/v1/locks",
    "/v1/locks/{key}",
    "/v1/locks/{key}/acquire",
    "/v1/locks/{key}/renew",
    "/v1/locks/{key}/release",
    "/v1/sessions",
    "/v1/sessions/{id}/keepalive",
    "/v1/sessions/{id}",
    "/v1/sessions/{id}/stream",
    "/v1/openapi.json",
    "other",
];

/// Upper bounds of the latency buckets, in seconds (blocking acquires reach the last).
const BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 30.0, 300.0,
];

/// Statuses counted one by one: 100..=599.
const STATUSES: usize = 500;

/// One route's counters.
struct RouteStats {
    by_status: Vec<AtomicU64>,
    /// Requests at or under each bound of [`BUCKETS`] (cumulative when written out).
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl RouteStats {
    fn new() -> Self {
        Self {
            by_status: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// Everything `/metrics` reports.
pub struct Metrics {
    routes: Vec<RouteStats>,
    streams: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            routes: ROUTES.iter().map(|_| RouteStats::new()).collect(),
            streams: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// Where `route` (as axum matched it) is counted.
    pub fn route_index(route: Option<&str>) -> usize {
        route
            .and_then(|route| ROUTES.iter().position(|r| *r == route))
            .unwrap_or(ROUTES.len() - 1)
    }

    /// Counts one answered request of the route at `index`.
    pub fn record(&self, index: usize, status: u16, seconds: f64) {
        let stats = &self.routes[index];
        if let Some(slot) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| stats.by_status.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        stats
            .sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        stats.count.fetch_add(1, Ordering::Relaxed);
    }

    /// A session stream opened (`+1`) or closed (`-1`).
    pub fn stream_opened(&self, delta: i64) {
        self.streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition; `keepalives` is what the folded keepalive calls
    /// carried: `(calls, sessions)`.
    pub fn render(&self, shard_map_version: u64, keepalives: (u64, u64)) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP lockplane_gateway_requests_total HTTP requests answered, by route and status.\n");
        out.push_str("# TYPE lockplane_gateway_requests_total counter\n");
        for (route, stats) in ROUTES.iter().zip(&self.routes) {
            for (i, count) in stats.by_status.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "lockplane_gateway_requests_total{{route=\"{route}\",code=\"{}\"}} {count}",
                        i + 100
                    );
                }
            }
        }
        out.push_str("# HELP lockplane_gateway_request_duration_seconds Time to answer, by route (blocking acquires include their wait).\n");
        out.push_str("# TYPE lockplane_gateway_request_duration_seconds histogram\n");
        for (route, stats) in ROUTES.iter().zip(&self.routes) {
            let count = stats.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&stats.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "lockplane_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = stats.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "lockplane_gateway_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}\n\
                 lockplane_gateway_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\n\
                 lockplane_gateway_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lockplane_gateway_session_streams Open session WebSockets.\n\
             # TYPE lockplane_gateway_session_streams gauge\n\
             lockplane_gateway_session_streams {}\n\
             # HELP lockplane_gateway_shard_map_version Log index of the shard map this gateway routes by.\n\
             # TYPE lockplane_gateway_shard_map_version gauge\n\
             lockplane_gateway_shard_map_version {shard_map_version}\n\
             # HELP lockplane_gateway_keepalive_calls_total KeepAliveMany calls sent to lock groups (each one log entry).\n\
             # TYPE lockplane_gateway_keepalive_calls_total counter\n\
             lockplane_gateway_keepalive_calls_total {}\n\
             # HELP lockplane_gateway_keepalives_total Session keepalives those calls carried (one per session and group).\n\
             # TYPE lockplane_gateway_keepalives_total counter\n\
             lockplane_gateway_keepalives_total {}",
            self.streams.load(Ordering::Relaxed),
            keepalives.0,
            keepalives.1
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_status_and_latency_bucket() {
        let metrics = Metrics::default();
        let acquire = Metrics::route_index(Some("/v1/locks/{key}/acquire"));
        metrics.record(acquire, 200, 0.003);
        metrics.record(acquire, 200, 0.004);
        metrics.record(acquire, 409, 0.0005);
        metrics.record(Metrics::route_index(Some("/nope")), 404, 0.0001);
        metrics.stream_opened(1);
        let text = metrics.render(42, (3, 70));
        for line in [
            r#"lockplane_gateway_requests_total{route="/v1/locks/{key}/acquire",code="200"} 2"#,
            r#"lockplane_gateway_requests_total{route="/v1/locks/{key}/acquire",code="409"} 1"#,
            r#"lockplane_gateway_requests_total{route="other",code="404"} 1"#,
            r#"lockplane_gateway_request_duration_seconds_bucket{route="/v1/locks/{key}/acquire",le="0.001"} 1"#,
            r#"lockplane_gateway_request_duration_seconds_bucket{route="/v1/locks/{key}/acquire",le="0.005"} 3"#,
            r#"lockplane_gateway_request_duration_seconds_bucket{route="/v1/locks/{key}/acquire",le="+Inf"} 3"#,
            r#"lockplane_gateway_request_duration_seconds_count{route="/v1/locks/{key}/acquire"} 3"#,
            "lockplane_gateway_session_streams 1",
            "lockplane_gateway_shard_map_version 42",
            "lockplane_gateway_keepalive_calls_total 3",
            "lockplane_gateway_keepalives_total 70",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
