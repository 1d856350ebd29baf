//! The fencing resource the run's clients write to, as a storage service that checks
//! fencing tokens would: a write with a token below the highest one it has seen for the
//! key is refused. A refusal is what fencing is for when the writer's lease had run out
//! (a paused client); it is a mutual-exclusion violation when the writer's lease was still
//! valid, since then two clients held the key at once.
//!
//! Other processes (the paused client) reach it over TCP on the edge host's loopback: one
//! line `WRITE <key> <token> <owner> <lease-valid 0|1>` answered `OK` or `REFUSED`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the resource saw.
#[derive(Debug, Default, Clone)]
pub struct FenceStats {
    /// Writes accepted.
    pub accepted: u64,
    /// Writes refused from writers whose lease had run out: fencing at work.
    pub fenced: u64,
    /// Writes refused from writers whose lease was valid: two holders.
    pub violations: Vec<String>,
}

/// The highest token the resource accepted for each key, and who wrote with it.
type Highest = HashMap<String, (u64, String)>;

/// The resource: the highest token seen per key.
#[derive(Default)]
pub struct Fence {
    state: Mutex<(Highest, FenceStats)>,
}

impl Fence {
    /// One write by `owner` holding `key` with `token`; `lease_valid` is whether the
    /// writer's lease (counted from when it asked) had not run out. True when accepted.
    pub fn write(&self, key: &str, token: u64, owner: &str, lease_valid: bool) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (highest, stats) = &mut *state;
        let seen = highest.entry(key.to_string()).or_insert((0, String::new()));
        if token >= seen.0 {
            *seen = (token, owner.to_string());
            stats.accepted += 1;
            return true;
        }
        if lease_valid {
            stats.violations.push(format!(
                "{key}: {owner}'s write with token {token} refused while its lease was valid ({} wrote with token {})",
                seen.1, seen.0
            ));
        } else {
            stats.fenced += 1;
        }
        false
    }

    /// What the resource saw so far.
    pub fn stats(&self) -> FenceStats {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Serves writes from other processes on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            let fence = Arc::clone(&self);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let answer = match words.as_slice() {
                        ["WRITE", key, token, owner, valid] => match token.parse() {
                            Ok(token) if fence.write(key, token, owner, *valid == "1") => "OK\n",
                            Ok(_) => "REFUSED\n",
                            Err(_) => "BAD\n",
                        },
                        _ => "BAD\n",
                    };
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_token_is_refused_and_counted_by_whether_its_lease_was_valid() {
        let fence = Fence::default();
        assert!(fence.write("k", 5, "a", true));
        assert!(fence.write("k", 5, "a", true));
        assert!(fence.write("k", 7, "b", true));
        assert!(!fence.write("k", 5, "a", false));
        assert_eq!(fence.stats().fenced, 1);
        assert!(!fence.write("k", 5, "a", true));
        assert_eq!(fence.stats().violations.len(), 1);
        assert_eq!(fence.stats().accepted, 3);
    }
}
