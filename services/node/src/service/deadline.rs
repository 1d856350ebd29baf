//! The request deadline a gRPC caller set (`grpc-timeout`), so every proposal and wait is
//! bounded by what the caller is still waiting for.

use std::time::Duration;

/// Used when the caller set no deadline: long enough for an election, short enough that a
/// cut-off minority answers `UNAVAILABLE` before a client gives up.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Most of a deadline kept back so the answer reaches the caller before it gives up.
const MAX_MARGIN: Duration = Duration::from_millis(50);

/// How long the server may work on a request: the caller's deadline (or
/// [`DEFAULT_DEADLINE`] when none or an unreadable one was sent) less a margin of a tenth,
/// at most [`MAX_MARGIN`], for the answer's way back.
pub fn of<T>(request: &tonic::Request<T>) -> Duration {
    let deadline = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(parse)
        .unwrap_or(DEFAULT_DEADLINE);
    deadline - (deadline / 10).min(MAX_MARGIN)
}

/// Parses a `grpc-timeout` value: at most eight digits and a unit (`H`, `M`, `S`, `m`,
/// `u`, `n`).
fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3_600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_refuses_garbage() {
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1500m"), Some(Duration::from_millis(1_500)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse("10n"), Some(Duration::from_nanos(10)));
        for bad in ["", "S", "5", "5x", "-1S", "123456789S", "1.5S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
