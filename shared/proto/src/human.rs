//! Times and durations as error messages and the CLI show them to people: durations as
//! `30s`, `1.5s`, `250ms`, `2m`, `1h30m`; instants as RFC 3339 in UTC.

use std::time::Duration;

/// `d` the way a person writes it, rounded: milliseconds under a second (`250ms`), tenths
/// of a second under a minute (`4.2s`), whole seconds above (`1m30s`, `24h`).
pub fn duration(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms % 1_000 == 0 {
            format!("{}s", ms / 1_000)
        } else {
            let tenths = (ms + 50) / 100;
            if tenths % 10 == 0 {
                format!("{}s", tenths / 10)
            } else {
                format!("{}.{}s", tenths / 10, tenths % 10)
            }
        };
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1_000 % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC, to the millisecond
/// (`2026-11-30T12:00:00.117Z`).
pub fn instant(unix_ms: u64) -> String {
    let (days, ms_of_day) = (unix_ms / 86_400_000, unix_ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [
            (0, "0ms"),
            (250, "250ms"),
            (1_000, "1s"),
            (4_200, "4.2s"),
            (4_249, "4.2s"),
            (9_960, "10s"),
            (30_000, "30s"),
            (120_000, "2m"),
            (90_000, "1m30s"),
            (5_400_000, "1h30m"),
            (86_400_000, "24h"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration(Duration::from_millis(ms)), text, "{ms} ms");
        }
    }

    #[test]
    fn instants_are_rfc3339_utc() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(instant(1_796_032_332_117), "2026-11-30T09:52:12.117Z");
    }
}
