//! Acquires as this node's lock API answered them: how each ended, how long it took, and
//! whether it found the key held. Recording is a few atomic adds (every label is resolved
//! when the node starts).

use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};
use telemetry::metrics::{DURATION_BUCKETS_SECONDS, LATENCY_BUCKETS_SECONDS};

use lockplane_proto::RpcError;
use lockplane_proto::lock::{AcquireReply, ErrorCode};

use super::counter_vec;

/// Largest error code counted under its own name (others count as `internal`).
const MAX_CODE: i32 = 64;

/// The acquire metrics.
pub struct AcquireMetrics {
    granted: IntCounter,
    granted_after_wait: IntCounter,
    /// By error code number; `None` for numbers the build does not know.
    refused: Vec<Option<IntCounter>>,
    contended: IntCounter,
    duration_seconds: Histogram,
    wait_seconds: Histogram,
}

impl AcquireMetrics {
    /// Registers `lockplane_lock_acquisitions_total{result}`,
    /// `lockplane_lock_contended_total`, `lockplane_lock_acquire_duration_seconds` and
    /// `lockplane_lock_wait_duration_seconds`.
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let by_result = counter_vec(
            registry,
            "lockplane_lock_acquisitions_total",
            "Acquires answered, by result: granted, granted_after_wait, or the error code \
             (held, wait_timed_out, not_leader, unavailable, ...).",
            &["result"],
        )?;
        let refused = (0..=MAX_CODE)
            .map(|n| {
                ErrorCode::try_from(n)
                    .ok()
                    .map(|code| by_result.with_label_values(&[&result_label(code)]))
            })
            .collect();
        let contended = IntCounter::new(
            "lockplane_lock_contended_total",
            "Acquires that found the key held: refused as held, or queued.",
        )?;
        registry.register(Box::new(contended.clone()))?;
        let duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "lockplane_lock_acquire_duration_seconds",
                "Seconds to answer an acquire that did not queue (granted at once, or \
                 refused).",
            )
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
        )?;
        registry.register(Box::new(duration_seconds.clone()))?;
        let wait_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "lockplane_lock_wait_duration_seconds",
                "Seconds a blocking acquire spent queued until it was granted or its wait \
                 ended.",
            )
            .buckets(DURATION_BUCKETS_SECONDS.to_vec()),
        )?;
        registry.register(Box::new(wait_seconds.clone()))?;
        Ok(Self {
            granted: by_result.with_label_values(&["granted"]),
            granted_after_wait: by_result.with_label_values(&["granted_after_wait"]),
            refused,
            contended,
            duration_seconds,
            wait_seconds,
        })
    }

    /// Records one answered acquire that took `seconds`.
    pub fn record(&self, answer: &Result<AcquireReply, tonic::Status>, seconds: f64) {
        let queued = match answer {
            Ok(reply) if reply.waited => {
                self.granted_after_wait.inc();
                true
            }
            Ok(_) => {
                self.granted.inc();
                false
            }
            Err(status) => {
                let code = RpcError::from(status.clone()).code();
                let counter = usize::try_from(i32::from(code))
                    .ok()
                    .and_then(|i| self.refused.get(i))
                    .and_then(Option::as_ref)
                    .or(self.refused[0].as_ref());
                if let Some(counter) = counter {
                    counter.inc();
                }
                if code == ErrorCode::Held {
                    self.contended.inc();
                }
                matches!(
                    code,
                    ErrorCode::WaitTimedOut | ErrorCode::WaitEnded | ErrorCode::WaitRenewed
                )
            }
        };
        if queued {
            self.contended.inc();
            self.wait_seconds.observe(seconds);
        } else {
            self.duration_seconds.observe(seconds);
        }
    }
}

/// The `result` label of refusals with `code`: its name in lower case (`wait_timed_out`).
fn result_label(code: ErrorCode) -> String {
    code.as_str_name().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use lockplane_proto::error_status;
    use lockplane_proto::lock::ErrorDetail;

    use super::*;

    fn value(registry: &Registry, name: &str, result: Option<&str>) -> f64 {
        let text = telemetry::metrics::render(&[registry]);
        let line = match result {
            Some(r) => format!("{name}{{result=\"{r}\"}} "),
            None => format!("{name} "),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    #[test]
    fn counts_each_answer_under_its_result() {
        let registry = Registry::new();
        let metrics = AcquireMetrics::new(&registry).unwrap();
        let reply = |waited| AcquireReply {
            fencing_token: 1,
            ttl_ms: 1,
            session: None,
            waited,
        };
        let refused = |code| error_status(ErrorDetail::new(code, "x"));
        metrics.record(&Ok(reply(false)), 0.001);
        metrics.record(&Ok(reply(true)), 2.0);
        metrics.record(&Err(refused(ErrorCode::Held)), 0.001);
        metrics.record(&Err(refused(ErrorCode::WaitTimedOut)), 5.0);
        metrics.record(&Err(tonic::Status::deadline_exceeded("late")), 1.0);
        let total = "lockplane_lock_acquisitions_total";
        assert_eq!(value(&registry, total, Some("granted")), 1.0);
        assert_eq!(value(&registry, total, Some("granted_after_wait")), 1.0);
        assert_eq!(value(&registry, total, Some("held")), 1.0);
        assert_eq!(value(&registry, total, Some("wait_timed_out")), 1.0);
        assert_eq!(value(&registry, total, Some("unavailable")), 1.0);
        assert_eq!(
            value(&registry, "lockplane_lock_contended_total", None),
            3.0
        );
        assert_eq!(
            value(
                &registry,
                "lockplane_lock_wait_duration_seconds_count",
                None
            ),
            2.0
        );
        assert_eq!(
            value(
                &registry,
                "lockplane_lock_acquire_duration_seconds_count",
                None
            ),
            3.0
        );
    }
}
