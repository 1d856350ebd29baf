//! Latency histograms (HDR, microsecond resolution) and fairness figures.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies of one kind of call.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // 1 µs .. 10 min at 3 significant digits.
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid"))
    }
}

impl Latencies {
    /// Records one call.
    pub fn record(&mut self, took: Duration) {
        let micros = (took.as_micros() as u64).clamp(1, self.0.high());
        self.0.saturating_record(micros);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another client's histogram.
    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    /// The latency at `quantile` (0..=1), in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1_000.0
    }
}

/// The next number of a xorshift64 sequence (state never 0): cheap randomness for jitter
/// and operation mixes, reproducible from the seed.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Jain's fairness index of per-client counts: 1 when all are equal, `1/n` when one client
/// got everything.
pub fn jain(counts: &[u64]) -> f64 {
    let n = counts.len() as f64;
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    if squares == 0.0 {
        0.0
    } else {
        sum * sum / (n * squares)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_for_equal_shares_and_one_over_n_for_a_monopoly() {
        assert!((jain(&[5, 5, 5, 5]) - 1.0).abs() < 1e-9);
        assert!((jain(&[20, 0, 0, 0]) - 0.25).abs() < 1e-9);
        assert_eq!(jain(&[0, 0]), 0.0);
    }

    #[test]
    fn quantiles_come_from_the_recorded_latencies() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert!((l.ms(0.5) - 50.0).abs() < 0.1, "{}", l.ms(0.5));
        assert!((l.ms(0.99) - 99.0).abs() < 0.1, "{}", l.ms(0.99));
    }
}
