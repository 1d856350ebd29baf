//! How much memory Redis uses, for the *System Health* dashboard: `INFO memory` every
//! 10 s over the cache's connection (a Redis Cluster answers from each master, and the
//! figures are summed), recorded in the cache's stats; unknown while Redis does not
//! answer.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::StatusCache;

/// How often Redis is asked.
const EVERY: Duration = Duration::from_secs(10);

/// How long the answer may take.
const PATIENCE: Duration = Duration::from_secs(1);

/// Asks Redis for its memory every [`EVERY`], for as long as the task runs.
pub async fn watch(cache: Arc<StatusCache>) {
    loop {
        if let Some(mut conn) = cache.link.conn() {
            let mut info = redis::cmd("INFO");
            info.arg("memory");
            let asked = info.query_async::<Value>(&mut conn);
            let bytes = match tokio::time::timeout(PATIENCE, asked).await {
                Ok(Ok(answer)) => used_memory(&answer),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "status cache: INFO memory failed");
                    None
                }
                Err(_) => {
                    tracing::debug!("status cache: INFO memory timed out");
                    None
                }
            };
            // Unknown (0, not shown) rather than an old figure while Redis does not answer.
            cache.stats.set_redis_used_memory(bytes.unwrap_or(0));
        } else {
            cache.stats.set_redis_used_memory(0);
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// `used_memory` from an `INFO` answer: one server's text, or a map of each server's.
fn used_memory(answer: &Value) -> Option<u64> {
    match answer {
        Value::BulkString(bytes) => field(&String::from_utf8_lossy(bytes)),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => field(text),
        Value::Map(servers) => servers
            .iter()
            .map(|(_, info)| used_memory(info))
            .sum::<Option<u64>>(),
        _ => None,
    }
}

fn field(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_server_or_sums_a_cluster() {
        let one = "# Memory\r\nused_memory:1024\r\nused_memory_human:1K\r\n";
        assert_eq!(used_memory(&Value::BulkString(one.into())), Some(1024));
        let cluster = Value::Map(vec![
            (
                Value::SimpleString("a:1".into()),
                Value::BulkString(one.into()),
            ),
            (
                Value::SimpleString("b:2".into()),
                Value::VerbatimString {
                    format: redis::VerbatimFormat::Text,
                    text: "used_memory:2048\r\n".into(),
                },
            ),
        ]);
        assert_eq!(used_memory(&cluster), Some(3072));
        assert_eq!(used_memory(&Value::Nil), None);
    }
}
