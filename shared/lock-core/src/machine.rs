//! The state machine: its state, the per-entry apply context, and command dispatch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::command::{Command, Proposal};
use crate::dedup::Dedup;
use crate::effect::{AuditEvent, Change, Effect};
use crate::error::LockError;
use crate::limits::Limits;
use crate::name::Name;
use crate::reply::{Reply, Response};
use crate::timers::Timers;
use crate::types::{FencingToken, LockKey, LogIndex, Millis, SessionId, TenantId, Term, WaitId};

/// One lock group's replicated lock state.
///
/// Apply the group's committed entries in log order with [`LockMachine::apply`]; every
/// replica that applies the same entries reaches the same state and emits the same effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockMachine {
    pub(crate) limits: Limits,
    /// The last index applied; entries at or below it are refused.
    pub(crate) last_applied: LogIndex,
    /// The largest leader time applied so far; time never runs backwards in the machine.
    pub(crate) clock: Millis,
    /// The highest term applied so far.
    pub(crate) term: Term,
    /// When the latest leader's first entry was applied: every lease counts as renewed then.
    pub(crate) leader_since: Millis,
    /// The last fencing token issued, or the floor raised by a key move.
    pub(crate) last_token: u64,
    /// Keys that are held, queued on, or in lock-delay. Ordered for prefix listing.
    pub(crate) locks: BTreeMap<LockKey, KeyState>,
    pub(crate) sessions: BTreeMap<SessionId, Session>,
    /// Locks held per tenant, for tenant quotas; derived from `locks`, never serialized.
    pub(crate) held_by_tenant: BTreeMap<TenantId, u64>,
    pub(crate) timers: Timers,
    pub(crate) dedup: Dedup,
}

/// What the machine keeps for one key. Kept small: a group may hold millions of keys, and
/// most have a holder and nothing else, so the queue and lock-delay live behind one box.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyState {
    pub(crate) holder: Option<HolderState>,
    /// `None` while the queue is empty and no lock-delay runs.
    waiting: Option<Box<Waiting>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Waiting {
    queue: VecDeque<Waiter>,
    /// Lock-delay: the key is not granted before this time (0 when there is none).
    available_at: Millis,
}

static NO_WAITERS: VecDeque<Waiter> = VecDeque::new();

impl KeyState {
    /// True when nothing about the key needs remembering any more.
    pub(crate) fn is_idle(&self, now: Millis) -> bool {
        self.holder.is_none() && self.queue().is_empty() && self.available_at() <= now
    }

    /// The FIFO queue of waiters, oldest first (ordered by wait id).
    pub(crate) fn queue(&self) -> &VecDeque<Waiter> {
        self.waiting.as_ref().map_or(&NO_WAITERS, |w| &w.queue)
    }

    pub(crate) fn push_waiter(&mut self, waiter: Waiter) {
        self.waiting.get_or_insert_default().queue.push_back(waiter);
    }

    pub(crate) fn pop_waiter(&mut self) -> Option<Waiter> {
        let waiter = self.waiting.as_mut()?.queue.pop_front();
        self.shrink();
        waiter
    }

    /// Removes the waiter with id `wait` (a binary search: the queue is ordered by id).
    pub(crate) fn remove_waiter(&mut self, wait: WaitId) -> Option<Waiter> {
        let queue = &mut self.waiting.as_mut()?.queue;
        let at = queue.binary_search_by_key(&wait, |w| w.wait).ok()?;
        let waiter = queue.remove(at);
        self.shrink();
        waiter
    }

    /// The waiter with id `wait`, for changing its deadline.
    pub(crate) fn waiter_mut(&mut self, wait: WaitId) -> Option<&mut Waiter> {
        let queue = &mut self.waiting.as_mut()?.queue;
        let at = queue.binary_search_by_key(&wait, |w| w.wait).ok()?;
        queue.get_mut(at)
    }

    /// The end of the lock-delay, or 0 when none runs.
    pub(crate) fn available_at(&self) -> Millis {
        self.waiting.as_ref().map_or(0, |w| w.available_at)
    }

    pub(crate) fn set_available_at(&mut self, at: Millis) {
        self.waiting.get_or_insert_default().available_at = at;
        self.shrink();
    }

    /// Drops the box once it holds nothing, so equal states are equal values.
    fn shrink(&mut self) {
        if self
            .waiting
            .as_ref()
            .is_some_and(|w| w.queue.is_empty() && w.available_at == 0)
        {
            self.waiting = None;
        }
    }
}

/// The current holder of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HolderState {
    pub(crate) owner: Name,
    pub(crate) token: FencingToken,
    pub(crate) lease: Lease,
    pub(crate) lock_delay_ms: Millis,
}

/// What keeps a grant alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// The lock's own lease, as last renewed.
    Own { expires_at: Millis, ttl_ms: Millis },
    /// The lock lives as long as this session.
    Session(SessionId),
}

impl HolderState {
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self.lease {
            Lease::Session(id) => Some(id),
            Lease::Own { .. } => None,
        }
    }
}

/// A caller queued on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) wait: WaitId,
    pub(crate) owner: Name,
    pub(crate) session: Option<SessionId>,
    pub(crate) ttl_ms: Millis,
    pub(crate) deadline: Millis,
    pub(crate) lock_delay_ms: Millis,
    pub(crate) request_id: Option<Box<str>>,
}

/// An open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) tenant: TenantId,
    pub(crate) ttl_ms: Millis,
    pub(crate) expires_at: Millis,
    pub(crate) held: BTreeSet<LockKey>,
    pub(crate) waits: BTreeSet<(LockKey, WaitId)>,
}

impl Session {
    pub(crate) fn lock_count(&self) -> usize {
        self.held.len() + self.waits.len()
    }
}

/// The entry being applied: its index and time, and where its effects go.
pub(crate) struct Ctx<'a> {
    pub(crate) index: LogIndex,
    pub(crate) now: Millis,
    audit_seq: u32,
    pub(crate) effects: &'a mut Vec<Effect>,
}

impl Ctx<'_> {
    /// Records a change of `key`: one audit row and one cache invalidation.
    pub(crate) fn key_changed(&mut self, key: &LockKey, change: Change) {
        self.effects.push(Effect::Invalidate {
            key: key.clone(),
            version: self.index,
        });
        self.audit(key.tenant, change);
    }

    /// Records one audit row.
    pub(crate) fn audit(&mut self, tenant: TenantId, change: Change) {
        let seq = self.audit_seq;
        self.audit_seq += 1;
        self.effects.push(Effect::Audit(AuditEvent {
            index: self.index,
            seq,
            at: self.now,
            tenant,
            change,
        }));
    }
}

/// Records a refused acquire, renew or release of `key` in the audit trail (nothing else
/// changed, so the cached status stays valid).
fn rejected(
    ctx: &mut Ctx<'_>,
    response: &Response,
    key: LockKey,
    owner: Name,
    token: Option<FencingToken>,
) {
    if let Err(error) = response {
        let tenant = key.tenant;
        let error = error.clone();
        ctx.audit(
            tenant,
            Change::Rejected {
                key,
                owner,
                token,
                error,
            },
        );
    }
}

impl Default for LockMachine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl LockMachine {
    /// An empty machine enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            last_applied: 0,
            clock: 0,
            term: 0,
            leader_since: 0,
            last_token: 0,
            locks: BTreeMap::new(),
            sessions: BTreeMap::new(),
            held_by_tenant: BTreeMap::new(),
            timers: Timers::default(),
            dedup: Dedup::default(),
        }
    }

    /// Applies the entry at `index`, appended by the leader of `term`: first expires what is
    /// due at the entry's time, then runs its command. Effects are appended to `effects` in
    /// the order they happened.
    ///
    /// The first entry of a higher term starts a new leadership: before anything expires,
    /// every lease and session counts as renewed at that entry's time (O(1); a lease is
    /// re-dated only when it comes due). So a new leader whose clock runs ahead never ends a
    /// lease earlier than one TTL after the last renew any leader saw.
    ///
    /// An index at or below the last applied one is refused and changes nothing.
    pub fn apply(
        &mut self,
        index: LogIndex,
        term: Term,
        proposal: Proposal,
        effects: &mut Vec<Effect>,
    ) -> Response {
        if index <= self.last_applied {
            return Err(LockError::IndexNotIncreasing {
                index,
                last_applied: self.last_applied,
            });
        }
        self.last_applied = index;
        self.clock = self.clock.max(proposal.now);
        if term > self.term {
            self.term = term;
            self.leader_since = self.clock;
        }
        let mut ctx = Ctx {
            index,
            now: self.clock,
            audit_seq: 0,
            effects,
        };
        self.expire_due(&mut ctx);
        match proposal.command {
            Command::Acquire(acquire) => {
                let (key, owner) = (acquire.key.clone(), Name::from(&acquire.owner));
                let response = self.acquire(&mut ctx, acquire);
                rejected(&mut ctx, &response, key, owner, None);
                response
            }
            Command::Renew {
                key,
                owner,
                token,
                ttl_ms,
            } => {
                let response = self.renew(&mut ctx, &key, &owner, token, ttl_ms);
                rejected(&mut ctx, &response, key, Name::from(owner), Some(token));
                response
            }
            Command::Release { key, owner, token } => {
                let response = self.release(&mut ctx, &key, &owner, token);
                rejected(&mut ctx, &response, key, Name::from(owner), Some(token));
                response
            }
            Command::CancelWait { key, wait } => self.cancel_wait(&mut ctx, &key, wait),
            Command::AbandonWait {
                key,
                wait,
                deadline,
            } => self.abandon_wait(&mut ctx, &key, wait, deadline),
            Command::CreateSession { id, tenant, ttl_ms } => {
                self.create_session(&mut ctx, id, tenant, ttl_ms)
            }
            Command::KeepAlive { id, tenant } => self.keep_alive(&mut ctx, id, tenant),
            Command::KeepAliveMany { sessions } => Ok(self.keep_alive_many(&mut ctx, &sessions)),
            Command::CloseSession { id, tenant } => self.close_session(&mut ctx, id, tenant),
            Command::Tick => Ok(Reply::Done),
            Command::RaiseTokenFloor { floor } => {
                self.last_token = self.last_token.max(floor.0);
                Ok(Reply::Done)
            }
        }
    }

    /// The limits this machine enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The last log index applied (0 for a new machine).
    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// The machine's time: the largest leader time applied so far.
    pub fn clock(&self) -> Millis {
        self.clock
    }

    /// The highest fencing token issued (or floor raised) in this group, for key moves.
    pub fn token_floor(&self) -> FencingToken {
        FencingToken(self.last_token)
    }

    /// When the leader should next propose a `Tick`: the earliest pending lease, session,
    /// wait or lock-delay end. `None` when nothing is pending. May be early (never late)
    /// after a leader change, since leases are re-dated only when they come due.
    pub fn next_due(&self) -> Option<Millis> {
        self.timers.next_due()
    }

    /// Issues the next fencing token: the entry's index, or one above the last token when
    /// the index does not exceed it (several grants in one entry, or a raised floor).
    pub(crate) fn issue_token(&mut self, index: LogIndex) -> FencingToken {
        let token = index.max(self.last_token + 1);
        self.last_token = token;
        FencingToken(token)
    }

    /// When a lease renewed at `expires_at` really ends: never before one TTL after the
    /// latest leader start (the O(1) leader-change rule).
    pub(crate) fn lease_end(&self, expires_at: Millis, ttl_ms: Millis) -> Millis {
        lease_end(self.leader_since, expires_at, ttl_ms)
    }

    /// The live session `id` of `tenant`, or `SessionNotFound`.
    pub(crate) fn require_session(
        &self,
        id: SessionId,
        tenant: TenantId,
    ) -> Result<&Session, LockError> {
        self.live_session(id, tenant)
            .ok_or(LockError::SessionNotFound(id))
    }

    /// The session `id` if it exists, belongs to `tenant` and has not run out at `now`.
    pub(crate) fn live_session(&self, id: SessionId, tenant: TenantId) -> Option<&Session> {
        self.sessions
            .get(&id)
            .filter(|s| s.tenant == tenant && self.lease_end(s.expires_at, s.ttl_ms) > self.clock)
    }
}

/// A lease renewed to end at `expires_at` ends no earlier than one TTL after the latest
/// leader start.
pub(crate) fn lease_end(leader_since: Millis, expires_at: Millis, ttl_ms: Millis) -> Millis {
    expires_at.max(leader_since.saturating_add(ttl_ms))
}
