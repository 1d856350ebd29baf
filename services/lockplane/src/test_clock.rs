//! The clock-jump test hook of `lockplane node` (`--test-clock-offset-file`, hidden): the
//! node's wall clock is the system clock plus the number of milliseconds the file holds,
//! read at start and whenever the file changes. The fault suite writes it to jump a node's
//! clock by minutes, forward and back. The node reads the wall clock only once, at start
//! (leases run on the monotonic timer), so a jump matters when the node starts with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lockplane_node::clock::ShiftedClock;

/// How often the file is read again.
const POLL: Duration = Duration::from_millis(100);

/// The offset the file holds: a signed whole number of milliseconds (an empty file is 0).
pub fn read_offset(path: &Path) -> anyhow::Result<i64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the clock offset file {}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse().with_context(|| {
        format!(
            "the clock offset file {} holds {text:?}: expected a signed number of milliseconds",
            path.display()
        )
    })
}

/// A wall clock shifted by the offset `path` holds now.
pub fn clock_from(path: &Path) -> anyhow::Result<Arc<ShiftedClock>> {
    let clock = Arc::new(ShiftedClock::default());
    clock.set_offset_ms(read_offset(path)?);
    Ok(clock)
}

/// Follows changes of the file for as long as the node runs, printing each jump.
pub async fn follow(id: u64, path: PathBuf, clock: Arc<ShiftedClock>) {
    loop {
        tokio::time::sleep(POLL).await;
        match read_offset(&path) {
            Ok(offset) if offset != clock.offset_ms() => {
                clock.set_offset_ms(offset);
                println!(
                    "lockplane node {id}: test hook: the wall clock is now {offset:+} ms off \
                     (lease time is monotonic and does not follow it)"
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!("lockplane node {id}: test hook: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_a_signed_number_of_milliseconds_and_anything_else_is_named() {
        let dir = std::env::temp_dir().join(format!("lp-clock-offset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("offset");
        for (text, offset) in [("300000\n", 300_000), ("-300000", -300_000), ("", 0)] {
            std::fs::write(&file, text).unwrap();
            assert_eq!(read_offset(&file).unwrap(), offset);
        }
        std::fs::write(&file, "5 minutes").unwrap();
        let error = format!("{:#}", read_offset(&file).unwrap_err());
        assert!(
            error.contains("\"5 minutes\"") && error.contains("milliseconds"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
