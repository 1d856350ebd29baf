//! The audit-trail flags of `node`, `dev` and `cluster up`: the Kafka brokers every group
//! leader publishes its applied changes to, the topic, and how many unpublished events a
//! group keeps while the brokers are away. A malformed broker list stops start-up.

use clap::Args;
use lockplane_node::audit::{AuditConfig, DEFAULT_BACKLOG_LIMIT, DEFAULT_TOPIC};

use crate::failure::usage;

/// Flags of the audit publisher.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Publish every applied change to Kafka (bootstrap servers `HOST:PORT[,HOST:PORT…]`).
    /// Without it nothing is published and no outbox is kept.
    #[arg(long, env = "LOCKPLANE_KAFKA", value_name = "BROKERS")]
    kafka: Option<String>,
    /// The audit topic (created with 12 partitions when missing).
    #[arg(long, env = "LOCKPLANE_AUDIT_TOPIC", default_value = DEFAULT_TOPIC)]
    audit_topic: String,
    /// Most unpublished audit events each group keeps while the brokers are away; past it
    /// the oldest are dropped (and counted) and locks keep being served.
    #[arg(
        long,
        env = "LOCKPLANE_AUDIT_BACKLOG_LIMIT",
        default_value_t = DEFAULT_BACKLOG_LIMIT,
        value_parser = parse_backlog_limit,
        value_name = "EVENTS"
    )]
    audit_backlog_limit: usize,
}

/// Most events `--audit-backlog-limit` may ask for, per group.
const MOST_BACKLOG: usize = 100_000_000;

fn parse_backlog_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MOST_BACKLOG).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number in 1..={MOST_BACKLOG}"
        )),
    }
}

/// Checks a broker list: `HOST:PORT` items separated by commas.
pub fn check_brokers(list: &str) -> Result<String, String> {
    let brokers: Vec<&str> = list.split(',').map(str::trim).collect();
    for broker in &brokers {
        let port = broker.rsplit_once(':').and_then(|(host, port)| {
            (!host.is_empty()).then_some(())?;
            port.parse::<u16>().ok().filter(|p| *p > 0)
        });
        if port.is_none() {
            return Err(format!(
                "{broker:?} is not HOST:PORT (expected HOST:PORT[,HOST:PORT…], got {list:?})"
            ));
        }
    }
    Ok(brokers.join(","))
}

impl AuditArgs {
    /// The publisher's settings, if `--kafka` is given.
    pub fn config(&self) -> anyhow::Result<Option<AuditConfig>> {
        let Some(list) = &self.kafka else {
            return Ok(None);
        };
        let brokers = match check_brokers(list) {
            Ok(brokers) => brokers,
            Err(e) => usage!("--kafka: {e}"),
        };
        if self.audit_topic.is_empty()
            || self.audit_topic.len() > 249
            || !self
                .audit_topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            usage!(
                "--audit-topic: {:?} is not a Kafka topic name (1..=249 of a-z, A-Z, 0-9, '.', '_', '-')",
                self.audit_topic
            );
        }
        let mut config = AuditConfig::new(brokers);
        config.topic.clone_from(&self.audit_topic);
        config.backlog_limit = self.audit_backlog_limit;
        Ok(Some(config))
    }

    /// Passes the same settings to a child node (`cluster up`).
    pub fn pass_to(&self, child: &mut std::process::Command) {
        child.env_remove("LOCKPLANE_KAFKA");
        if let Some(brokers) = &self.kafka {
            child
                .arg("--kafka")
                .arg(brokers)
                .arg("--audit-topic")
                .arg(&self.audit_topic)
                .arg("--audit-backlog-limit")
                .arg(self.audit_backlog_limit.to_string());
        }
    }
}

/// The audit flags of `dev` and `cluster up`: the publisher's, and the database of an
/// audit consumer they run.
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// The publisher's flags.
    #[command(flatten)]
    pub publish: AuditArgs,
    /// With `--kafka`: also run an audit consumer storing the audit trail in this
    /// PostgreSQL (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`); ignored without.
    #[arg(
        long,
        env = "LOCKPLANE_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    postgres: Option<String>,
}

impl PipelineArgs {
    /// The publisher's settings and the consumer's database URL, each if given (the URL
    /// only with a broker: `LOCKPLANE_POSTGRES_URL` may be set for `lockplane audit`); a
    /// malformed one stops start-up (exit 64).
    pub fn check(&self) -> anyhow::Result<(Option<AuditConfig>, Option<String>)> {
        let publish = self.publish.config()?;
        let Some(url) = &self.postgres else {
            return Ok((publish, None));
        };
        if let Err(e) = lockplane_audit_consumer::check_postgres_url(url) {
            usage!("--postgres: {e}");
        }
        if publish.is_none() {
            eprintln!("--postgres (or LOCKPLANE_POSTGRES_URL) is ignored without --kafka");
            return Ok((None, None));
        }
        Ok((publish, Some(url.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_are_host_port_items() {
        assert_eq!(
            check_brokers("127.0.0.1:9092, kafka-2:9093"),
            Ok("127.0.0.1:9092,kafka-2:9093".to_string())
        );
        for bad in ["kafka", ":9092", "kafka:0", "kafka:99999", "a:1,,b:2"] {
            let e = check_brokers(bad).unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_backlog_limit_is_bounded() {
        assert_eq!(parse_backlog_limit("1000"), Ok(1_000));
        for bad in ["0", "-1", "lots"] {
            assert!(parse_backlog_limit(bad).unwrap_err().contains(bad));
        }
    }
}
