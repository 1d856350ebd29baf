//! The lock contract's invariants, checked against the audit stream alone (every change is
//! an audit event, in the order it happened), independently of the reference model.

use std::collections::HashMap;

use lock_core::{Change, Effect, LockError, LockKey, LostReason, Millis, SessionId, WaitId};

struct HeldLease {
    token: u64,
    session: Option<SessionId>,
    /// Last renew + TTL (unused for session-bound locks).
    renewed_end: Millis,
    ttl: Millis,
}

struct OpenSession {
    renewed_end: Millis,
    ttl: Millis,
}

#[derive(Default)]
pub struct Invariants {
    holders: HashMap<LockKey, HeldLease>,
    last_token: HashMap<LockKey, u64>,
    queues: HashMap<LockKey, Vec<WaitId>>,
    sessions: HashMap<SessionId, OpenSession>,
    term: u64,
    leader_since: Millis,
}

impl Invariants {
    fn end(&self, renewed_end: Millis, ttl: Millis) -> Millis {
        renewed_end.max(self.leader_since + ttl)
    }

    pub fn check(
        &mut self,
        index: u64,
        term: u64,
        now: Millis,
        effects: &[Effect],
    ) -> Result<(), String> {
        if term > self.term {
            self.term = term;
            self.leader_since = now;
        }
        let mut pushed = 0;
        let mut queued_grants = 0;
        for effect in effects {
            match effect {
                Effect::Audit(event) => {
                    if event.index != index || event.at != now {
                        return Err(format!("audit event stamped {}/{}", event.index, event.at));
                    }
                    if matches!(event.change, Change::Acquired { wait: Some(_), .. }) {
                        queued_grants += 1;
                    }
                    self.change(now, &event.change)?;
                }
                Effect::Granted { .. } => pushed += 1,
                _ => {}
            }
        }
        if pushed != queued_grants {
            return Err(format!(
                "{pushed} grants pushed but {queued_grants} audited"
            ));
        }
        if let Some((key, _)) = self
            .holders
            .iter()
            .find(|(_, h)| h.session.is_some_and(|id| !self.sessions.contains_key(&id)))
        {
            return Err(format!("{key:?} still held by an ended session"));
        }
        Ok(())
    }

    fn change(&mut self, now: Millis, change: &Change) -> Result<(), String> {
        match change {
            Change::Acquired {
                key,
                token,
                session,
                ttl_ms,
                wait,
                ..
            } => {
                if self.holders.contains_key(key) {
                    return Err(format!("mutual exclusion: {key:?} granted while held"));
                }
                let last = self.last_token.insert(key.clone(), token.0).unwrap_or(0);
                if token.0 <= last {
                    return Err(format!("fencing: {key:?} token {} after {last}", token.0));
                }
                if let Some(wait) = wait {
                    let queue = self.queues.entry(key.clone()).or_default();
                    if queue.first() != Some(wait) {
                        return Err(format!("fifo: {wait:?} granted before {queue:?}"));
                    }
                    queue.remove(0);
                }
                if let Some(id) = session {
                    let s = self
                        .sessions
                        .get(id)
                        .ok_or(format!("grant to ended session {id:?}"))?;
                    if self.end(s.renewed_end, s.ttl) <= now {
                        return Err(format!("grant to expired session {id:?}"));
                    }
                }
                let lease = HeldLease {
                    token: token.0,
                    session: *session,
                    renewed_end: now + ttl_ms,
                    ttl: *ttl_ms,
                };
                self.holders.insert(key.clone(), lease);
            }
            Change::Renewed {
                key, token, ttl_ms, ..
            } => {
                let h = self.holders.get_mut(key).ok_or("renew of a free key")?;
                if h.token != token.0 {
                    return Err(format!("renew of {key:?} with foreign token"));
                }
                if h.session.is_none() {
                    h.renewed_end = now + ttl_ms;
                    h.ttl = *ttl_ms;
                }
            }
            Change::Released { key, token, .. } => {
                let h = self.holders.remove(key).ok_or("release of a free key")?;
                if h.token != token.0 {
                    return Err(format!("release of {key:?} with foreign token"));
                }
            }
            Change::Lost {
                key, token, reason, ..
            } => {
                let h = self.holders.remove(key).ok_or("loss of a free key")?;
                if h.token != token.0 {
                    return Err(format!("loss of {key:?} with foreign token"));
                }
                if *reason == LostReason::Expired && now < self.end(h.renewed_end, h.ttl) {
                    return Err(format!("premature expiry of {key:?} at {now}"));
                }
            }
            Change::Queued { key, wait, .. } => {
                self.queues.entry(key.clone()).or_default().push(*wait)
            }
            Change::WaitEnded { key, wait, .. } => {
                let queue = self.queues.entry(key.clone()).or_default();
                let at = queue
                    .iter()
                    .position(|w| w == wait)
                    .ok_or("unknown wait ended")?;
                queue.remove(at);
            }
            Change::SessionCreated { id, ttl_ms } => {
                let fresh = OpenSession {
                    renewed_end: now + ttl_ms,
                    ttl: *ttl_ms,
                };
                if self.sessions.insert(*id, fresh).is_some() {
                    return Err(format!("session {id:?} created twice"));
                }
            }
            Change::SessionKeptAlive { id } => {
                let s = self
                    .sessions
                    .get_mut(id)
                    .ok_or("keepalive of an ended session")?;
                s.renewed_end = now + s.ttl;
            }
            Change::SessionEnded { id, expired } => {
                let s = self
                    .sessions
                    .remove(id)
                    .ok_or("end of an unknown session")?;
                if *expired && now < self.end(s.renewed_end, s.ttl) {
                    return Err(format!("premature expiry of session {id:?} at {now}"));
                }
            }
            Change::Rejected {
                key,
                error: LockError::Held { holder },
                ..
            } => {
                let held = self.holders.get(key).ok_or("refused as held while free")?;
                if held.token != holder.token.0 {
                    return Err(format!("refused naming holder {holder:?}, not the holder"));
                }
            }
            Change::Rejected { .. } => {}
        }
        Ok(())
    }
}
