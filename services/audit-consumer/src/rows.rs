//! Audit events as `lock_audit` rows, column by column (the insert binds one array per
//! column), deduplicated within a batch.

use std::collections::HashSet;

use lockplane_proto::audit::AuditEvent;

/// The `schema_version`s this consumer reads.
pub const KNOWN_SCHEMA_VERSIONS: std::ops::RangeInclusive<u32> = 1..=1;

/// Why a message is not a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// The payload is not an `AuditEvent`.
    #[error("not a lockplane.audit.v1.AuditEvent: {0}")]
    Decode(String),
    /// A schema version this consumer does not know (a newer publisher).
    #[error("schema_version {0} is not one this consumer reads (1)")]
    SchemaVersion(u32),
    /// A number the table cannot hold.
    #[error("{field} {value} is out of range")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// `details_json` is not a JSON object.
    #[error("details_json is not a JSON object: {0}")]
    Details(String),
    /// PostgreSQL refused the row itself (its data, not the connection).
    #[error("PostgreSQL refused the row: {0}")]
    Refused(String),
}

/// The latest `timestamp_ms` PostgreSQL stores (9999-12-31T23:59:59.999Z).
const LATEST_MS: u64 = 253_402_300_799_999;

/// `text` as PostgreSQL's `text` can hold it: NUL characters (which it cannot store) become
/// U+FFFD.
fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_string()
    }
}

/// `details_json` as `jsonb` can hold it: a JSON object, `\u0000` replaced as in text.
fn details(json: &str) -> Result<String, Unreadable> {
    if json.is_empty() {
        return Ok("{}".to_string());
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Unreadable::Details(e.to_string()))?;
    if !value.is_object() {
        return Err(Unreadable::Details("not an object".to_string()));
    }
    Ok(if json.contains("\\u0000") {
        json.replace("\\u0000", "\\ufffd")
    } else {
        json.to_string()
    })
}

/// An event's identity in the trail.
pub type Identity = (u32, u64, u32);

/// A batch of rows, one vector per column of `lock_audit`.
#[derive(Debug, Default)]
pub struct Rows {
    /// `group_id`.
    pub group_id: Vec<i32>,
    /// `log_index`.
    pub log_index: Vec<i64>,
    /// `position`.
    pub position: Vec<i32>,
    /// `timestamp`, in ms since the Unix epoch.
    pub timestamp_ms: Vec<i64>,
    /// `event_type`, as the schema names it (`ACQUIRED`, ...).
    pub event_type: Vec<String>,
    /// `tenant` (name).
    pub tenant: Vec<String>,
    /// `tenant_id`.
    pub tenant_id: Vec<i64>,
    /// `resource_id`: the key, or `None` for events without one.
    pub resource_id: Vec<Option<String>>,
    /// `owner_id`.
    pub owner_id: Vec<Option<String>>,
    /// `fencing_token`.
    pub fencing_token: Vec<Option<i64>>,
    /// `session_id`, in decimal as the REST API shows it.
    pub session_id: Vec<Option<String>>,
    /// `region`.
    pub region: Vec<String>,
    /// `details`, JSON text.
    pub details: Vec<String>,
    /// `schema_version`.
    pub schema_version: Vec<i32>,
    seen: HashSet<Identity>,
}

fn bigint(field: &'static str, value: u64) -> Result<i64, Unreadable> {
    i64::try_from(value).map_err(|_| Unreadable::OutOfRange { field, value })
}

/// The payload as an event this consumer can store.
pub fn decode(payload: &[u8]) -> Result<AuditEvent, Unreadable> {
    use prost::Message as _;
    let event = AuditEvent::decode(payload).map_err(|e| Unreadable::Decode(e.to_string()))?;
    if !KNOWN_SCHEMA_VERSIONS.contains(&event.schema_version) {
        return Err(Unreadable::SchemaVersion(event.schema_version));
    }
    Ok(event)
}

impl Rows {
    /// Adds `event` unless the batch already has its identity; `Ok(false)` for a copy.
    pub fn push(&mut self, event: &AuditEvent) -> Result<bool, Unreadable> {
        let log_index = bigint("log_index", event.log_index)?;
        if event.timestamp_ms > LATEST_MS {
            return Err(Unreadable::OutOfRange {
                field: "timestamp_ms",
                value: event.timestamp_ms,
            });
        }
        let timestamp_ms = bigint("timestamp_ms", event.timestamp_ms)?;
        let details = details(&event.details_json)?;
        let tenant_id = bigint("tenant_id", event.tenant_id)?;
        let fencing_token = bigint("fencing_token", event.fencing_token)?;
        if !self
            .seen
            .insert((event.group_id, event.log_index, event.position))
        {
            return Ok(false);
        }
        let text = |s: &str| (!s.is_empty()).then(|| storable(s));
        self.group_id.push(event.group_id as i32);
        self.log_index.push(log_index);
        self.position.push(event.position as i32);
        self.timestamp_ms.push(timestamp_ms);
        self.event_type
            .push(event.event_type().as_str_name().to_string());
        self.tenant.push(storable(&event.tenant));
        self.tenant_id.push(tenant_id);
        self.resource_id.push(text(&event.key));
        self.owner_id.push(text(&event.owner));
        self.fencing_token
            .push((fencing_token != 0).then_some(fencing_token));
        self.session_id
            .push((event.session_id != 0).then(|| event.session_id.to_string()));
        self.region.push(storable(&event.region));
        self.details.push(details);
        self.schema_version.push(event.schema_version as i32);
        Ok(true)
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.group_id.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.group_id.is_empty()
    }

    /// The days (ms since the epoch at each day's start, UTC) the rows fall on.
    pub fn days(&self) -> Vec<i64> {
        let mut days: Vec<i64> = self
            .timestamp_ms
            .iter()
            .map(|ms| ms - ms.rem_euclid(DAY_MS))
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    }
}

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

#[cfg(test)]
mod tests {
    use lockplane_proto::audit::EventType;
    use prost::Message as _;

    use super::*;

    fn event(index: u64) -> AuditEvent {
        let mut e = AuditEvent {
            schema_version: 1,
            group_id: 3,
            log_index: index,
            position: 0,
            timestamp_ms: 1_764_547_200_000 + index,
            key: "order:12345".into(),
            owner: "billing".into(),
            fencing_token: index,
            ..AuditEvent::default()
        };
        e.set_event_type(EventType::Acquired);
        e
    }

    #[test]
    fn copies_in_a_batch_become_one_row_and_empty_fields_null() {
        let mut rows = Rows::default();
        assert_eq!(rows.push(&event(7)), Ok(true));
        assert_eq!(rows.push(&event(7)), Ok(false));
        let mut session = event(8);
        session.key.clear();
        session.owner.clear();
        session.fencing_token = 0;
        session.session_id = u64::MAX;
        assert_eq!(rows.push(&session), Ok(true));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.event_type[0], "ACQUIRED");
        assert_eq!(rows.resource_id, [Some("order:12345".to_string()), None]);
        assert_eq!(rows.session_id[1].as_deref(), Some("18446744073709551615"));
        assert_eq!(rows.details[0], "{}");
        assert_eq!(rows.days(), [1_764_547_200_000]);
    }

    #[test]
    fn unreadable_messages_are_named() {
        assert!(matches!(decode(b"\xff\xff"), Err(Unreadable::Decode(_))));
        let mut newer = event(1);
        newer.schema_version = 2;
        assert_eq!(
            decode(&newer.encode_to_vec()),
            Err(Unreadable::SchemaVersion(2))
        );
        assert_eq!(decode(&event(1).encode_to_vec()), Ok(event(1)));
        let mut huge = event(1);
        huge.log_index = u64::MAX;
        assert!(matches!(
            Rows::default().push(&huge),
            Err(Unreadable::OutOfRange {
                field: "log_index",
                ..
            })
        ));
        let mut late = event(1);
        late.timestamp_ms = 9_200_000_000_000_000;
        assert!(matches!(
            Rows::default().push(&late),
            Err(Unreadable::OutOfRange {
                field: "timestamp_ms",
                ..
            })
        ));
        let mut not_json = event(1);
        not_json.details_json = "{nope".into();
        assert!(matches!(
            Rows::default().push(&not_json),
            Err(Unreadable::Details(_))
        ));
    }

    #[test]
    fn nul_characters_become_storable() {
        let mut rows = Rows::default();
        let mut e = event(1);
        e.key = "a\0b".into();
        e.details_json = r#"{"message":"x\u0000y"}"#.into();
        rows.push(&e).unwrap();
        assert_eq!(rows.resource_id[0].as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(rows.details[0], r#"{"message":"x\ufffdy"}"#);
    }
}
