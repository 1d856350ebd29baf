//! Snapshot to bytes and restore. Format (version 1), all integers LEB128 varints unless
//! noted:
//!
//! ```text
//! "LPSM" | version: u16 LE | limits | last_applied clock term leader_since last_token
//! | sessions: n × (id tenant ttl_ms expires_at)
//! | keys: n × (tenant name available_at holder? queue: n × waiter)
//! | requests: n × (tenant request_id name owner at outcome)
//! | crc32c of everything before: u32 LE
//! ```
//!
//! Indexes (deadlines, each session's keys and waits) are not stored: restore rebuilds them,
//! so a restored machine is the machine that was saved.

use crate::codec::{Reader, Writer, crc32c};
use crate::dedup::{Outcome, Record};
use crate::error::SnapshotError;
use crate::limits::Limits;
use crate::machine::{HolderState, KeyState, Lease, LockMachine, Session, Waiter};
use crate::name::Name;
use crate::reply::Grant;
use crate::types::{FencingToken, LockKey, SessionId, TenantId, WaitId};

const MAGIC: &[u8; 4] = b"LPSM";
const VERSION: u16 = 1;

impl LockMachine {
    /// Serializes the whole state into self-checking, versioned bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(MAGIC);
        w.u16(VERSION);
        write_limits(&mut w, &self.limits);
        for v in [
            self.last_applied,
            self.clock,
            self.term,
            self.leader_since,
            self.last_token,
        ] {
            w.varint(v);
        }
        w.len(self.sessions.len());
        for (id, s) in &self.sessions {
            for v in [id.0, s.tenant.0, s.ttl_ms, s.expires_at] {
                w.varint(v);
            }
        }
        w.len(self.locks.len());
        for (key, state) in &self.locks {
            write_key_state(&mut w, key, state);
        }
        w.len(self.dedup.iter().count());
        for ((tenant, request_id), record) in self.dedup.iter() {
            write_record(&mut w, *tenant, request_id, record);
        }
        let crc = crc32c(&w.buf);
        w.u32_fixed(crc);
        w.buf
    }

    /// Rebuilds a machine from [`LockMachine::snapshot`] bytes, checking magic, version,
    /// checksum and internal consistency. Never panics on bad input.
    pub fn restore(bytes: &[u8]) -> Result<LockMachine, SnapshotError> {
        if bytes.len() < MAGIC.len() + 2 + 4 || &bytes[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut r = Reader::new(&body[4..]);
        let version = r.u16()?;
        if version != VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        if crc32c(body).to_le_bytes() != crc {
            return Err(SnapshotError::Checksum);
        }
        let mut m = LockMachine::new(read_limits(&mut r)?);
        m.last_applied = r.varint()?;
        m.clock = r.varint()?;
        m.term = r.varint()?;
        m.leader_since = r.varint()?;
        m.last_token = r.varint()?;
        for _ in 0..r.len()? {
            let id = SessionId(r.varint()?);
            let session = Session {
                tenant: TenantId(r.varint()?),
                ttl_ms: r.varint()?,
                expires_at: r.varint()?,
                held: Default::default(),
                waits: Default::default(),
            };
            m.timers.sessions.insert((session.expires_at, id));
            if m.sessions.insert(id, session).is_some() {
                return Err(SnapshotError::Corrupt("duplicate session"));
            }
        }
        for _ in 0..r.len()? {
            let (key, state) = read_key_state(&mut r)?;
            m.index_key(&key, &state)?;
            if m.locks.insert(key, state).is_some() {
                return Err(SnapshotError::Corrupt("duplicate key"));
            }
        }
        for _ in 0..r.len()? {
            let (tenant, request_id, record) = read_record(&mut r)?;
            let max = usize::MAX;
            m.dedup.remember(tenant, request_id, record, max);
        }
        if !r.is_empty() {
            return Err(SnapshotError::Corrupt("trailing bytes"));
        }
        Ok(m)
    }

    /// Rebuilds the deadline index and session links of one restored key.
    fn index_key(&mut self, key: &LockKey, state: &KeyState) -> Result<(), SnapshotError> {
        if let Some(holder) = &state.holder {
            *self.held_by_tenant.entry(key.tenant).or_default() += 1;
            match holder.lease {
                Lease::Session(id) => self.session_mut(id)?.held.insert(key.clone()),
                Lease::Own { expires_at, .. } => {
                    self.timers.leases.insert((expires_at, key.clone()))
                }
            };
        }
        if state.available_at() > 0 {
            self.timers
                .delays
                .insert((state.available_at(), key.clone()));
        }
        let mut previous = None;
        for waiter in state.queue() {
            if previous.is_some_and(|p| p >= waiter.wait) {
                return Err(SnapshotError::Corrupt("queue out of order"));
            }
            previous = Some(waiter.wait);
            self.timers
                .waits
                .insert((waiter.deadline, key.clone(), waiter.wait));
            if let Some(id) = waiter.session {
                self.session_mut(id)?
                    .waits
                    .insert((key.clone(), waiter.wait));
            }
        }
        Ok(())
    }

    fn session_mut(&mut self, id: SessionId) -> Result<&mut Session, SnapshotError> {
        self.sessions
            .get_mut(&id)
            .ok_or(SnapshotError::Corrupt("lock refers to a missing session"))
    }
}

fn write_limits(w: &mut Writer, l: &Limits) {
    for v in [
        u64::from(l.max_key_bytes),
        u64::from(l.max_owner_bytes),
        u64::from(l.max_request_id_bytes),
        l.min_ttl_ms,
        l.max_ttl_ms,
        l.max_wait_ms,
        l.max_lock_delay_ms,
        u64::from(l.max_waiters_per_key),
        u64::from(l.max_locks_per_session),
        l.dedup_window_ms,
        u64::from(l.dedup_max_entries),
    ] {
        w.varint(v);
    }
}

fn read_limits(r: &mut Reader<'_>) -> Result<Limits, SnapshotError> {
    Ok(Limits {
        max_key_bytes: read_u32(r)?,
        max_owner_bytes: read_u32(r)?,
        max_request_id_bytes: read_u32(r)?,
        min_ttl_ms: r.varint()?,
        max_ttl_ms: r.varint()?,
        max_wait_ms: r.varint()?,
        max_lock_delay_ms: r.varint()?,
        max_waiters_per_key: read_u32(r)?,
        max_locks_per_session: read_u32(r)?,
        dedup_window_ms: r.varint()?,
        dedup_max_entries: read_u32(r)?,
    })
}

fn read_u32(r: &mut Reader<'_>) -> Result<u32, SnapshotError> {
    u32::try_from(r.varint()?).map_err(|_| SnapshotError::Corrupt("value out of range"))
}

fn write_key_state(w: &mut Writer, key: &LockKey, state: &KeyState) {
    w.varint(key.tenant.0);
    w.str(&key.name);
    w.varint(state.available_at());
    match &state.holder {
        Some(h) => {
            w.u8(1);
            w.str(&h.owner);
            w.varint(h.token.0);
            let (session, expires_at, ttl_ms) = match h.lease {
                Lease::Own { expires_at, ttl_ms } => (None, expires_at, ttl_ms),
                Lease::Session(id) => (Some(id.0), 0, 0),
            };
            w.opt_varint(session);
            for v in [expires_at, ttl_ms, h.lock_delay_ms] {
                w.varint(v);
            }
        }
        None => w.u8(0),
    }
    w.len(state.queue().len());
    for waiter in state.queue() {
        w.varint(waiter.wait.0);
        w.str(&waiter.owner);
        w.opt_varint(waiter.session.map(|s| s.0));
        for v in [waiter.ttl_ms, waiter.deadline, waiter.lock_delay_ms] {
            w.varint(v);
        }
        w.opt_str(waiter.request_id.as_deref());
    }
}

fn read_key_state(r: &mut Reader<'_>) -> Result<(LockKey, KeyState), SnapshotError> {
    let key = LockKey {
        tenant: TenantId(r.varint()?),
        name: Name::new(r.str()?),
    };
    let available_at = r.varint()?;
    let mut state = KeyState::default();
    if r.flag()? {
        let owner = Name::new(r.str()?);
        let token = FencingToken(r.varint()?);
        let session = r.opt_varint()?.map(SessionId);
        let (expires_at, ttl_ms) = (r.varint()?, r.varint()?);
        let lease = match session {
            Some(id) => Lease::Session(id),
            None => Lease::Own { expires_at, ttl_ms },
        };
        state.holder = Some(HolderState {
            owner,
            token,
            lease,
            lock_delay_ms: r.varint()?,
        });
    }
    for _ in 0..r.len()? {
        state.push_waiter(Waiter {
            wait: WaitId(r.varint()?),
            owner: Name::new(r.str()?),
            session: r.opt_varint()?.map(SessionId),
            ttl_ms: r.varint()?,
            deadline: r.varint()?,
            lock_delay_ms: r.varint()?,
            request_id: r.opt_str()?.map(Box::from),
        });
    }
    state.set_available_at(available_at);
    Ok((key, state))
}

fn write_record(w: &mut Writer, tenant: TenantId, request_id: &str, record: &Record) {
    w.varint(tenant.0);
    w.str(request_id);
    w.str(&record.key.name);
    w.str(&record.owner);
    w.varint(record.at);
    match &record.outcome {
        Outcome::Granted(grant) => {
            w.u8(0);
            w.varint(grant.token.0);
            w.varint(grant.ttl_ms);
            w.opt_varint(grant.session.map(|s| s.0));
        }
        Outcome::Queued(wait) => {
            w.u8(1);
            w.varint(wait.0);
        }
    }
}

fn read_record(r: &mut Reader<'_>) -> Result<(TenantId, Box<str>, Record), SnapshotError> {
    let tenant = TenantId(r.varint()?);
    let request_id = Box::from(r.str()?);
    let key = LockKey::new(tenant, r.str()?);
    let owner = Name::new(r.str()?);
    let at = r.varint()?;
    let outcome = match r.u8()? {
        0 => Outcome::Granted(Grant {
            token: FencingToken(r.varint()?),
            ttl_ms: r.varint()?,
            session: r.opt_varint()?.map(SessionId),
        }),
        1 => Outcome::Queued(WaitId(r.varint()?)),
        _ => return Err(SnapshotError::Corrupt("invalid outcome tag")),
    };
    Ok((
        tenant,
        request_id,
        Record {
            key,
            owner,
            outcome,
            at,
        },
    ))
}
