//! A naive reference model of the lock contract: plain vectors, linear scans, and expiry by
//! brute force (every pending deadline recomputed at every step). Slow and obviously
//! right, it is the oracle the real machine is checked against.

use lock_core::{
    Acquire, Command, FencingToken, Field, Grant, Holder, Limits, LockError, LockKey, LockStatus,
    LostReason, Millis, Problem, Reply, Response, SessionId, TenantId, WaitEndReason, WaitId,
};

/// The consequences the model predicts (the real machine's Granted/Lost/WaitEnded effects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Granted(LockKey, WaitId, String, FencingToken),
    Lost(LockKey, FencingToken, LostReason),
    WaitEnded(LockKey, WaitId, WaitEndReason),
}

#[derive(Clone, Debug)]
struct MHolder {
    owner: String,
    token: u64,
    session: Option<SessionId>,
    expires_at: Millis,
    ttl: Millis,
    delay: Millis,
}

#[derive(Clone, Debug)]
struct MWaiter {
    wait: u64,
    owner: String,
    session: Option<SessionId>,
    ttl: Millis,
    deadline: Millis,
    delay: Millis,
    request_id: Option<String>,
}

#[derive(Clone, Debug)]
struct MKey {
    key: LockKey,
    holder: Option<MHolder>,
    queue: Vec<MWaiter>,
    available_at: Millis,
}

#[derive(Clone, Debug)]
struct MSession {
    id: SessionId,
    tenant: TenantId,
    ttl: Millis,
    expires_at: Millis,
}

#[derive(Clone, Debug)]
enum MOutcome {
    Granted(Grant),
    Queued(u64),
}

#[derive(Clone, Debug)]
struct MRequest {
    tenant: TenantId,
    id: String,
    key: LockKey,
    owner: String,
    outcome: MOutcome,
    at: Millis,
}

pub struct Model {
    limits: Limits,
    last_applied: u64,
    clock: Millis,
    term: u64,
    leader_since: Millis,
    last_token: u64,
    keys: Vec<MKey>,
    sessions: Vec<MSession>,
    requests: Vec<MRequest>,
    pub events: Vec<Event>,
}

/// One deadline: (time, kind rank, then the id that orders same-time events).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Wait(Millis, u8, LockKey, u64),
    Session(Millis, u8, SessionId),
    Lease(Millis, u8, LockKey),
    Delay(Millis, u8, LockKey),
}

impl Due {
    fn order(&self) -> (Millis, u8) {
        match self {
            Due::Wait(t, r, ..)
            | Due::Session(t, r, ..)
            | Due::Lease(t, r, ..)
            | Due::Delay(t, r, ..) => (*t, *r),
        }
    }
}

impl Model {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            last_applied: 0,
            clock: 0,
            term: 0,
            leader_since: 0,
            last_token: 0,
            keys: Vec::new(),
            sessions: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
        }
    }

    fn end(&self, expires_at: Millis, ttl: Millis) -> Millis {
        expires_at.max(self.leader_since + ttl)
    }

    fn key_mut(&mut self, key: &LockKey) -> Option<&mut MKey> {
        self.keys.iter_mut().find(|k| &k.key == key)
    }

    fn key_ref(&self, key: &LockKey) -> Option<&MKey> {
        self.keys.iter().find(|k| &k.key == key)
    }

    fn live_session(&self, id: SessionId, tenant: TenantId) -> Option<&MSession> {
        self.sessions.iter().find(|s| {
            s.id == id && s.tenant == tenant && self.end(s.expires_at, s.ttl) > self.clock
        })
    }

    fn session_count(&self, id: SessionId) -> usize {
        let held = self
            .keys
            .iter()
            .filter(|k| k.holder.as_ref().is_some_and(|h| h.session == Some(id)))
            .count();
        let waits = self
            .keys
            .iter()
            .flat_map(|k| &k.queue)
            .filter(|w| w.session == Some(id))
            .count();
        held + waits
    }

    fn tidy(&mut self) {
        let now = self.clock;
        self.keys
            .retain(|k| k.holder.is_some() || !k.queue.is_empty() || k.available_at > now);
    }

    pub fn apply(&mut self, index: u64, term: u64, now: Millis, command: Command) -> Response {
        self.events.clear();
        if index <= self.last_applied {
            return Err(LockError::IndexNotIncreasing {
                index,
                last_applied: self.last_applied,
            });
        }
        self.last_applied = index;
        self.clock = self.clock.max(now);
        if term > self.term {
            // A new leader: every lease counts as renewed now.
            self.term = term;
            self.leader_since = self.clock;
        }
        self.expire(index);
        let r = match command {
            Command::Acquire(a) => self.acquire(index, a),
            Command::Renew {
                key,
                owner,
                token,
                ttl_ms,
            } => self.renew(&key, &owner, token, ttl_ms),
            Command::Release { key, owner, token } => self.release(index, &key, &owner, token),
            Command::CancelWait { key, wait } => self.cancel(&key, wait),
            Command::AbandonWait {
                key,
                wait,
                deadline,
            } => {
                let current = self
                    .key_ref(&key)
                    .and_then(|k| k.queue.iter().find(|w| w.wait == wait.0))
                    .map(|w| w.deadline);
                match current {
                    None => Err(LockError::WaitNotFound),
                    Some(current) if current > deadline => {
                        Ok(Reply::WaitRenewed { deadline: current })
                    }
                    Some(_) => self.cancel(&key, wait),
                }
            }
            Command::CreateSession { id, tenant, ttl_ms } => self.create(id, tenant, ttl_ms),
            Command::KeepAlive { id, tenant } => match self.live_session(id, tenant) {
                None => Err(LockError::SessionNotFound(id)),
                Some(_) => Ok(Reply::SessionKeptAlive {
                    ttl_ms: self.touch(id),
                }),
            },
            Command::KeepAliveMany { sessions } => Ok(Reply::SessionsKeptAlive {
                outcomes: sessions
                    .into_iter()
                    .map(|(id, tenant)| match self.live_session(id, tenant) {
                        None => Err(LockError::SessionNotFound(id)),
                        Some(_) => Ok(self.touch(id)),
                    })
                    .collect(),
            }),
            Command::CloseSession { id, tenant } => match self.live_session(id, tenant) {
                None => Err(LockError::SessionNotFound(id)),
                Some(_) => {
                    self.end_session(index, id, false);
                    Ok(Reply::SessionClosed)
                }
            },
            Command::Tick => Ok(Reply::Done),
            Command::RaiseTokenFloor { floor } => {
                self.last_token = self.last_token.max(floor.0);
                Ok(Reply::Done)
            }
        };
        self.tidy();
        r
    }

    fn all_due(&self) -> Vec<Due> {
        let now = self.clock;
        let mut due = Vec::new();
        for k in &self.keys {
            for w in &k.queue {
                if w.deadline <= now {
                    due.push(Due::Wait(w.deadline, 0, k.key.clone(), w.wait));
                }
            }
            if let Some(h) = &k.holder {
                let end = self.end(h.expires_at, h.ttl);
                if h.session.is_none() && end <= now {
                    due.push(Due::Lease(end, 2, k.key.clone()));
                }
            }
            if k.available_at > 0 && k.available_at <= now {
                due.push(Due::Delay(k.available_at, 3, k.key.clone()));
            }
        }
        for s in &self.sessions {
            let end = self.end(s.expires_at, s.ttl);
            if end <= now {
                due.push(Due::Session(end, 1, s.id));
            }
        }
        due
    }

    fn expire(&mut self, index: u64) {
        loop {
            let due = self.all_due();
            let Some(first) = due
                .iter()
                .min_by(|a, b| a.order().cmp(&b.order()).then(a.cmp(b)))
            else {
                break;
            };
            match first.clone() {
                Due::Wait(_, _, key, wait) => {
                    let k = self.key_mut(&key).unwrap();
                    let at = k.queue.iter().position(|w| w.wait == wait).unwrap();
                    let w = k.queue.remove(at);
                    self.wait_ended(&key, w, WaitEndReason::TimedOut);
                }
                Due::Session(_, _, id) => self.end_session(index, id, true),
                Due::Lease(_, _, key) => {
                    let h = self.key_mut(&key).unwrap().holder.take().unwrap();
                    self.events.push(Event::Lost(
                        key.clone(),
                        FencingToken(h.token),
                        LostReason::Expired,
                    ));
                    self.vacate(index, &key, h.delay);
                }
                Due::Delay(_, _, key) => {
                    self.key_mut(&key).unwrap().available_at = 0;
                    self.grant_next(index, &key);
                }
            }
        }
        let window = self.limits.dedup_window_ms;
        let now = self.clock;
        self.requests.retain(|r| r.at + window > now);
    }

    fn wait_ended(&mut self, key: &LockKey, w: MWaiter, reason: WaitEndReason) {
        self.events
            .push(Event::WaitEnded(key.clone(), WaitId(w.wait), reason));
        if let Some(id) = w.request_id {
            self.requests
                .retain(|r| !(r.tenant == key.tenant && r.id == id));
        }
    }

    fn vacate(&mut self, index: u64, key: &LockKey, delay: Millis) {
        if delay > 0 {
            let now = self.clock;
            self.key_mut(key).unwrap().available_at = now + delay;
        } else {
            self.grant_next(index, key);
        }
    }

    fn token(&mut self, index: u64) -> u64 {
        self.last_token = index.max(self.last_token + 1);
        self.last_token
    }

    fn install(
        &mut self,
        index: u64,
        key: &LockKey,
        owner: String,
        session: Option<SessionId>,
        ttl: Millis,
        delay: Millis,
    ) -> Grant {
        let token = self.token(index);
        let now = self.clock;
        let session_ttl = session
            .and_then(|id| self.sessions.iter().find(|s| s.id == id))
            .map(|s| s.ttl);
        let (expires_at, ttl) = match session_ttl {
            Some(t) => (0, t),
            None => (now + ttl, ttl),
        };
        if self.key_ref(key).is_none() {
            self.keys.push(MKey {
                key: key.clone(),
                holder: None,
                queue: Vec::new(),
                available_at: 0,
            });
        }
        self.key_mut(key).unwrap().holder = Some(MHolder {
            owner,
            token,
            session,
            expires_at,
            ttl,
            delay,
        });
        Grant {
            token: FencingToken(token),
            ttl_ms: ttl,
            session,
        }
    }

    fn grant_next(&mut self, index: u64, key: &LockKey) {
        loop {
            let Some(k) = self.key_mut(key) else { return };
            if k.queue.is_empty() {
                return;
            }
            let w = k.queue.remove(0);
            let live = w
                .session
                .is_none_or(|id| self.live_session(id, key.tenant).is_some());
            if w.deadline <= self.clock {
                self.wait_ended(key, w, WaitEndReason::TimedOut);
            } else if !live {
                self.wait_ended(key, w, WaitEndReason::SessionEnded);
            } else {
                let g = self.install(index, key, w.owner.clone(), w.session, w.ttl, w.delay);
                self.events.push(Event::Granted(
                    key.clone(),
                    WaitId(w.wait),
                    w.owner,
                    g.token,
                ));
                if let Some(id) = w.request_id {
                    for r in self
                        .requests
                        .iter_mut()
                        .filter(|r| r.tenant == key.tenant && r.id == id)
                    {
                        r.outcome = MOutcome::Granted(g.clone());
                    }
                }
                return;
            }
        }
    }

    fn end_session(&mut self, index: u64, id: SessionId, expired: bool) {
        let Some(at) = self.sessions.iter().position(|s| s.id == id) else {
            return;
        };
        self.sessions.remove(at);
        let mut waits: Vec<(LockKey, u64)> = self
            .keys
            .iter()
            .flat_map(|k| {
                k.queue
                    .iter()
                    .filter(|w| w.session == Some(id))
                    .map(|w| (k.key.clone(), w.wait))
            })
            .collect();
        waits.sort();
        for (key, wait) in waits {
            let k = self.key_mut(&key).unwrap();
            let at = k.queue.iter().position(|w| w.wait == wait).unwrap();
            let w = k.queue.remove(at);
            self.wait_ended(&key, w, WaitEndReason::SessionEnded);
        }
        let mut held: Vec<LockKey> = self
            .keys
            .iter()
            .filter(|k| k.holder.as_ref().is_some_and(|h| h.session == Some(id)))
            .map(|k| k.key.clone())
            .collect();
        held.sort();
        let reason = if expired {
            LostReason::SessionExpired
        } else {
            LostReason::SessionClosed
        };
        for key in held {
            let h = self.key_mut(&key).unwrap().holder.take().unwrap();
            self.events
                .push(Event::Lost(key.clone(), FencingToken(h.token), reason));
            self.vacate(index, &key, if expired { h.delay } else { 0 });
        }
    }

    fn touch(&mut self, id: SessionId) -> Millis {
        let now = self.clock;
        let s = self.sessions.iter_mut().find(|s| s.id == id).unwrap();
        s.expires_at = now + s.ttl;
        s.ttl
    }

    fn create(&mut self, id: SessionId, tenant: TenantId, ttl: Millis) -> Response {
        check_range(
            Field::TtlMs,
            ttl,
            self.limits.min_ttl_ms,
            self.limits.max_ttl_ms,
        )?;
        if let Some(s) = self.sessions.iter().find(|s| s.id == id) {
            return if s.tenant == tenant && s.ttl == ttl {
                Ok(Reply::SessionCreated { ttl_ms: ttl })
            } else {
                Err(LockError::SessionConflict(id))
            };
        }
        let expires_at = self.clock + ttl;
        self.sessions.push(MSession {
            id,
            tenant,
            ttl,
            expires_at,
        });
        Ok(Reply::SessionCreated { ttl_ms: ttl })
    }

    fn acquire(&mut self, index: u64, a: Acquire) -> Response {
        let l = self.limits;
        check_text(Field::Key, &a.key.name, l.max_key_bytes)?;
        check_text(Field::Owner, &a.owner, l.max_owner_bytes)?;
        check_range(Field::TtlMs, a.ttl_ms, l.min_ttl_ms, l.max_ttl_ms)?;
        check_range(Field::WaitMs, a.wait_ms, 0, l.max_wait_ms)?;
        check_range(Field::LockDelayMs, a.lock_delay_ms, 0, l.max_lock_delay_ms)?;
        if let Some(id) = &a.request_id {
            check_text(Field::RequestId, id, l.max_request_id_bytes)?;
            if let Some(r) = self
                .requests
                .iter()
                .find(|r| r.tenant == a.key.tenant && &r.id == id)
            {
                if r.key != a.key || r.owner != a.owner {
                    return Err(LockError::RequestIdReused);
                }
                return match r.outcome.clone() {
                    MOutcome::Granted(g) => Ok(Reply::Granted(g)),
                    MOutcome::Queued(_) if a.wait_ms == 0 => {
                        Err(self.key_ref(&a.key).map_or(LockError::NotHeld, conflict))
                    }
                    MOutcome::Queued(w) => self
                        .renew_wait(&a.key, w, a.wait_ms)
                        .ok_or(LockError::WaitNotFound),
                };
            }
        }
        if let Some(id) = a.session {
            if self.live_session(id, a.key.tenant).is_none() {
                return Err(LockError::SessionNotFound(id));
            }
        }
        let within = a
            .session
            .is_none_or(|id| self.session_count(id) < l.max_locks_per_session as usize);
        let now = self.clock;
        let state = self.key_ref(&a.key).cloned();
        if let Some(h) = state.as_ref().and_then(|k| k.holder.clone()) {
            if h.owner == a.owner && h.session == a.session {
                let ttl = match h.session {
                    Some(id) => self.touch(id),
                    None => {
                        let holder = self.key_mut(&a.key).unwrap().holder.as_mut().unwrap();
                        holder.expires_at = now + a.ttl_ms;
                        holder.ttl = a.ttl_ms;
                        a.ttl_ms
                    }
                };
                return Ok(Reply::Granted(Grant {
                    token: FencingToken(h.token),
                    ttl_ms: ttl,
                    session: h.session,
                }));
            }
        }
        let free = state
            .as_ref()
            .is_none_or(|k| k.holder.is_none() && k.queue.is_empty() && k.available_at <= now);
        if free {
            if !within {
                return Err(LockError::TooManyLocksInSession {
                    max: l.max_locks_per_session,
                });
            }
            if let Some(quota) = a.tenant_quota {
                let held = self
                    .keys
                    .iter()
                    .filter(|k| k.key.tenant == a.key.tenant && k.holder.is_some())
                    .count() as u64;
                if held >= quota {
                    return Err(LockError::TenantQuota { quota });
                }
            }
            let g = self.install(
                index,
                &a.key,
                a.owner.clone(),
                a.session,
                a.ttl_ms,
                a.lock_delay_ms,
            );
            if let Some(id) = a.request_id {
                self.remember(a.key, id, a.owner, MOutcome::Granted(g.clone()));
            }
            return Ok(Reply::Granted(g));
        }
        let k = state.unwrap();
        if a.wait_ms == 0 {
            return Err(conflict(&k));
        }
        if let Some(w) = k
            .queue
            .iter()
            .find(|w| w.owner == a.owner && w.session == a.session)
        {
            return self
                .renew_wait(&a.key, w.wait, a.wait_ms)
                .ok_or(LockError::WaitNotFound);
        }
        if k.queue.len() >= l.max_waiters_per_key as usize {
            return Err(LockError::TooManyWaiters {
                max: l.max_waiters_per_key,
            });
        }
        if !within {
            return Err(LockError::TooManyLocksInSession {
                max: l.max_locks_per_session,
            });
        }
        let km = self.key_mut(&a.key).unwrap();
        km.queue.push(MWaiter {
            wait: index,
            owner: a.owner.clone(),
            session: a.session,
            ttl: a.ttl_ms,
            deadline: now + a.wait_ms,
            delay: a.lock_delay_ms,
            request_id: a.request_id.clone(),
        });
        let position = km.queue.len() as u32;
        if let Some(id) = a.request_id {
            self.remember(a.key, id, a.owner, MOutcome::Queued(index));
        }
        Ok(Reply::Queued {
            wait: WaitId(index),
            position,
            deadline: now + a.wait_ms,
        })
    }

    /// A queued caller asks again: its wait ends no earlier than `wait_ms` from now.
    fn renew_wait(&mut self, key: &LockKey, wait: u64, wait_ms: Millis) -> Option<Reply> {
        let now = self.clock;
        let k = self.key_mut(key)?;
        let p = k.queue.iter().position(|w| w.wait == wait)?;
        let w = &mut k.queue[p];
        w.deadline = w.deadline.max(now + wait_ms);
        Some(Reply::Queued {
            wait: WaitId(wait),
            position: p as u32 + 1,
            deadline: now + wait_ms,
        })
    }

    fn remember(&mut self, key: LockKey, id: String, owner: String, outcome: MOutcome) {
        let at = self.clock;
        self.requests.push(MRequest {
            tenant: key.tenant,
            id,
            key,
            owner,
            outcome,
            at,
        });
        while self.requests.len() > self.limits.dedup_max_entries as usize {
            self.requests.remove(0);
        }
    }

    fn holder_check(
        &self,
        key: &LockKey,
        owner: &str,
        token: FencingToken,
    ) -> Result<MHolder, LockError> {
        let h = self
            .key_ref(key)
            .and_then(|k| k.holder.clone())
            .ok_or(LockError::NotHeld)?;
        if h.owner == owner && h.token == token.0 {
            Ok(h)
        } else {
            Err(LockError::NotHolder)
        }
    }

    fn renew(&mut self, key: &LockKey, owner: &str, token: FencingToken, ttl: Millis) -> Response {
        check_range(
            Field::TtlMs,
            ttl,
            self.limits.min_ttl_ms,
            self.limits.max_ttl_ms,
        )?;
        let h = self.holder_check(key, owner, token)?;
        let now = self.clock;
        let ttl = match h.session {
            Some(id) => self.touch(id),
            None => {
                let holder = self.key_mut(key).unwrap().holder.as_mut().unwrap();
                holder.expires_at = now + ttl;
                holder.ttl = ttl;
                ttl
            }
        };
        Ok(Reply::Renewed { token, ttl_ms: ttl })
    }

    fn release(&mut self, index: u64, key: &LockKey, owner: &str, token: FencingToken) -> Response {
        self.holder_check(key, owner, token)?;
        self.key_mut(key).unwrap().holder = None;
        self.grant_next(index, key);
        Ok(Reply::Released)
    }

    fn cancel(&mut self, key: &LockKey, wait: WaitId) -> Response {
        let k = self.key_mut(key).ok_or(LockError::WaitNotFound)?;
        let at = k
            .queue
            .iter()
            .position(|w| w.wait == wait.0)
            .ok_or(LockError::WaitNotFound)?;
        let w = k.queue.remove(at);
        self.wait_ended(key, w, WaitEndReason::Cancelled);
        Ok(Reply::WaitCancelled)
    }

    /// The status of every key, sorted, as the real machine's listings report it.
    pub fn statuses(&self, now: Millis) -> Vec<LockStatus> {
        let now = now.max(self.clock);
        let mut out: Vec<LockStatus> = self
            .keys
            .iter()
            .filter(|k| k.holder.is_some() || !k.queue.is_empty())
            .map(|k| LockStatus {
                key: k.key.clone(),
                holder: k.holder.as_ref().map(|h| Holder {
                    owner: h.owner.clone(),
                    token: FencingToken(h.token),
                    session: h.session,
                }),
                ttl_remaining_ms: k.holder.as_ref().map(|h| {
                    let end = match h
                        .session
                        .and_then(|id| self.sessions.iter().find(|s| s.id == id))
                    {
                        Some(s) => self.end(s.expires_at, s.ttl),
                        None => self.end(h.expires_at, h.ttl),
                    };
                    end.saturating_sub(now)
                }),
                waiters: k.queue.len() as u32,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Remaining TTL of every session (id, tenant) known to the model, sorted by id.
    pub fn sessions(&self, now: Millis) -> Vec<(SessionId, TenantId, Millis)> {
        let now = now.max(self.clock);
        let mut out: Vec<_> = self
            .sessions
            .iter()
            .map(|s| {
                (
                    s.id,
                    s.tenant,
                    self.end(s.expires_at, s.ttl).saturating_sub(now),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The waits queued on `key`, in order, with their deadlines.
    pub fn waits(&self, key: &LockKey) -> Vec<(WaitId, Millis)> {
        self.key_ref(key).map_or_else(Vec::new, |k| {
            k.queue
                .iter()
                .map(|w| (WaitId(w.wait), w.deadline))
                .collect()
        })
    }

    /// The holder's token of `key`, if held, and the wait ids queued on it in order.
    pub fn peek(&self, key: &LockKey) -> (Option<(String, FencingToken)>, Vec<WaitId>) {
        match self.key_ref(key) {
            Some(k) => (
                k.holder
                    .as_ref()
                    .map(|h| (h.owner.clone(), FencingToken(h.token))),
                k.queue.iter().map(|w| WaitId(w.wait)).collect(),
            ),
            None => (None, Vec::new()),
        }
    }
}

/// The refusal of a caller that will not wait for the taken key `k`.
fn conflict(k: &MKey) -> LockError {
    match &k.holder {
        Some(h) => LockError::Held {
            holder: Holder {
                owner: h.owner.clone(),
                token: FencingToken(h.token),
                session: h.session,
            },
        },
        None => LockError::LockDelayed {
            until_ms: k.available_at,
        },
    }
}

fn check_text(field: Field, v: &str, max: u32) -> Result<(), LockError> {
    let problem = if v.is_empty() {
        Problem::Empty
    } else if v.len() > max as usize {
        Problem::TooLong {
            len: v.len() as u64,
            max: max as u64,
        }
    } else if v.chars().any(|c| c.is_control()) {
        Problem::ControlCharacter
    } else {
        return Ok(());
    };
    Err(LockError::Invalid { field, problem })
}

fn check_range(field: Field, v: u64, min: u64, max: u64) -> Result<(), LockError> {
    if v < min || v > max {
        return Err(LockError::Invalid {
            field,
            problem: Problem::OutOfRange { value: v, min, max },
        });
    }
    Ok(())
}
