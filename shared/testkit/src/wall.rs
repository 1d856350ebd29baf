//! The wall clock as the audit trail stamps it: milliseconds since the Unix epoch, for
//! tests that build events and rows "now", an hour ago, or days ago.

/// Milliseconds since the Unix epoch, now.
///
/// # Panics
/// When the system clock is before 1970.
pub fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit in u64")
}
