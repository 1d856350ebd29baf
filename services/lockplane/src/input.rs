//! Flags as people write them (`30s`, `forever`), checked against the bounds every lock
//! group enforces (`lock_core::Limits`), so a bad value is refused before any call, with
//! the flag, the value and what is allowed in units a person reads.

use std::time::Duration;

use lock_core::Limits;
use lockplane_proto::human;

/// Parses `30s`, `500ms`, `2m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let not_a_duration = || format!("{text:?} is not a duration like 30s, 500ms, 2m or 1h");
    let n: u64 = digits.parse().map_err(|_| not_a_duration())?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1_000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(not_a_duration)
}

/// A lease (`--ttl`): a duration within the groups' TTL bounds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let limits = Limits::default();
    let ttl = parse_duration(text)?;
    let (min, max) = (ms(limits.min_ttl_ms), ms(limits.max_ttl_ms));
    if ttl < min || ttl > max {
        return Err(format!(
            "must be between {} and {}",
            human::duration(min),
            human::duration(max)
        ));
    }
    Ok(ttl)
}

/// How long to wait for a lock (`--wait`): a duration, or `forever`.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    if text.trim() == "forever" {
        return Ok(Duration::MAX);
    }
    parse_duration(text).map_err(|e| format!("{e}, or forever"))
}

/// A lock key: 1..=512 bytes of UTF-8 without control characters.
pub fn parse_key(text: &str) -> Result<String, String> {
    let max = Limits::default().max_key_bytes as usize;
    check_text(text, max)?;
    Ok(text.to_string())
}

/// An owner string: 1..=256 bytes of UTF-8 without control characters.
pub fn parse_owner(text: &str) -> Result<String, String> {
    let max = Limits::default().max_owner_bytes as usize;
    check_text(text, max)?;
    Ok(text.to_string())
}

fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.is_empty() || text.len() > max {
        return Err(format!("must be 1..={max} bytes, got {} bytes", text.len()));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// `d` for a message: `forever` for an endless wait, else as people write durations.
pub fn show_wait(d: Duration) -> String {
    if d == Duration::MAX {
        "forever".into()
    } else {
        human::duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "1x", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_are_checked_against_the_groups_limits_in_readable_units() {
        assert_eq!(parse_ttl("0s"), Err("must be between 1ms and 24h".into()));
        assert_eq!(parse_ttl("25h"), Err("must be between 1ms and 24h".into()));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_wait("forever"), Ok(Duration::MAX));
        assert!(parse_wait("never").unwrap_err().ends_with("or forever"));
        assert_eq!(
            parse_key(""),
            Err("must be 1..=512 bytes, got 0 bytes".into())
        );
        assert!(parse_key(&"k".repeat(513)).is_err());
        assert!(parse_key("a\u{7}b").is_err());
        assert_eq!(parse_key("reports/daily"), Ok("reports/daily".into()));
        assert!(parse_owner(&"o".repeat(257)).is_err());
    }
}
