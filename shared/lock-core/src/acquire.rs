//! Acquire: immediate grant, reentrant re-grant, idempotent retry, conflict, or FIFO wait.

use crate::command::Acquire;
use crate::dedup::{Outcome, Record};
use crate::effect::Change;
use crate::error::{Field, LockError};
use crate::machine::{Ctx, KeyState, LockMachine, Waiter};
use crate::name::Name;
use crate::queue::NewHolder;
use crate::reply::{Reply, Response};
use crate::types::{LockKey, WaitId};
use crate::validate;

impl LockMachine {
    pub(crate) fn acquire(&mut self, ctx: &mut Ctx<'_>, a: Acquire) -> Response {
        let limits = self.limits;
        validate::text(Field::Key, &a.key.name, limits.max_key_bytes)?;
        validate::text(Field::Owner, &a.owner, limits.max_owner_bytes)?;
        validate::range(Field::TtlMs, a.ttl_ms, limits.min_ttl_ms, limits.max_ttl_ms)?;
        validate::range(Field::WaitMs, a.wait_ms, 0, limits.max_wait_ms)?;
        validate::range(
            Field::LockDelayMs,
            a.lock_delay_ms,
            0,
            limits.max_lock_delay_ms,
        )?;
        if let Some(request_id) = &a.request_id {
            validate::text(Field::RequestId, request_id, limits.max_request_id_bytes)?;
            if let Some(record) = self.dedup.get(a.key.tenant, request_id) {
                if record.key != a.key || record.owner != *a.owner.as_str() {
                    return Err(LockError::RequestIdReused);
                }
                let outcome = record.outcome.clone();
                return self.replay(ctx, outcome, &a);
            }
        }
        let session_locks = match a.session {
            Some(id) => Some(self.require_session(id, a.key.tenant)?.lock_count()),
            None => None,
        };
        let state = self.locks.get(&a.key);
        if let Some(holder) = state.and_then(|s| s.holder.as_ref()) {
            if holder.owner == *a.owner.as_str() && holder.session() == a.session {
                return self
                    .extend_holder(ctx, &a.key, a.ttl_ms)
                    .map(Reply::Granted);
            }
        }
        let within_session_limit =
            session_locks.is_none_or(|n| n < limits.max_locks_per_session as usize);
        let free = state.is_none_or(|s| s.is_idle(ctx.now));
        if free {
            if !within_session_limit {
                return Err(too_many_in_session(limits.max_locks_per_session));
            }
            if let Some(quota) = a.tenant_quota {
                if self.held_by(a.key.tenant) >= quota {
                    return Err(LockError::TenantQuota { quota });
                }
            }
            let request_id = a.request_id.map(String::into_boxed_str);
            let new = NewHolder {
                owner: Name::new(&a.owner),
                session: a.session,
                ttl_ms: a.ttl_ms,
                lock_delay_ms: a.lock_delay_ms,
            };
            let grant = self.install_holder(ctx, &a.key, new.clone(), None);
            if let Some(request_id) = request_id {
                self.remember(
                    ctx,
                    a.key,
                    new.owner,
                    request_id,
                    Outcome::Granted(grant.clone()),
                );
            }
            return Ok(Reply::Granted(grant));
        }
        let state = state.ok_or(LockError::NotHeld)?;
        if a.wait_ms == 0 {
            return Err(conflict(state));
        }
        if let Some(waiting) = state
            .queue()
            .iter()
            .find(|w| w.owner == *a.owner.as_str() && w.session == a.session)
            .map(|w| w.wait)
        {
            return self
                .renew_wait(ctx, &a.key, waiting, a.wait_ms)
                .ok_or(LockError::WaitNotFound);
        }
        if state.queue().len() >= limits.max_waiters_per_key as usize {
            return Err(LockError::TooManyWaiters {
                max: limits.max_waiters_per_key,
            });
        }
        if !within_session_limit {
            return Err(too_many_in_session(limits.max_locks_per_session));
        }
        self.enqueue(ctx, a)
    }

    /// Answers a retried acquire with what its first attempt led to: the grant, or the
    /// wait, renewed by this retry's `wait_ms`. (A wait that ended without a grant is
    /// forgotten at once, so a remembered wait is always still queued.)
    fn replay(&mut self, ctx: &Ctx<'_>, outcome: Outcome, a: &Acquire) -> Response {
        match outcome {
            Outcome::Granted(grant) => Ok(Reply::Granted(grant)),
            Outcome::Queued(_) if a.wait_ms == 0 => {
                Err(self.locks.get(&a.key).map_or(LockError::NotHeld, conflict))
            }
            Outcome::Queued(wait) => self
                .renew_wait(ctx, &a.key, wait, a.wait_ms)
                .ok_or(LockError::WaitNotFound),
        }
    }

    /// Puts the caller at the back of the key's queue with a deadline.
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, a: Acquire) -> Response {
        let wait = WaitId(ctx.index);
        let deadline = ctx.now.saturating_add(a.wait_ms);
        let owner = Name::new(&a.owner);
        let request_id = a.request_id.map(String::into_boxed_str);
        let key = a.key;
        let Some(state) = self.locks.get_mut(&key) else {
            return Err(LockError::NotHeld);
        };
        state.push_waiter(Waiter {
            wait,
            owner: owner.clone(),
            session: a.session,
            ttl_ms: a.ttl_ms,
            deadline,
            lock_delay_ms: a.lock_delay_ms,
            request_id: request_id.clone(),
        });
        let position = position(state.queue().len() - 1);
        self.timers.waits.insert((deadline, key.clone(), wait));
        if let Some(session) = a.session.and_then(|id| self.sessions.get_mut(&id)) {
            session.waits.insert((key.clone(), wait));
        }
        ctx.key_changed(
            &key,
            Change::Queued {
                key: key.clone(),
                owner: owner.clone(),
                wait,
            },
        );
        if let Some(request_id) = request_id {
            self.remember(ctx, key, owner, request_id, Outcome::Queued(wait));
        }
        Ok(Reply::Queued {
            wait,
            position,
            deadline,
        })
    }

    fn remember(
        &mut self,
        ctx: &Ctx<'_>,
        key: LockKey,
        owner: Name,
        request_id: Box<str>,
        outcome: Outcome,
    ) {
        let tenant = key.tenant;
        let record = Record {
            key,
            owner,
            outcome,
            at: ctx.now,
        };
        let max = self.limits.dedup_max_entries as usize;
        self.dedup.remember(tenant, request_id, record, max);
    }

    /// The 1-based position of `wait` in `key`'s queue.
    pub(crate) fn queue_position(&self, key: &LockKey, wait: WaitId) -> Option<u32> {
        let queue = self.locks.get(key)?.queue();
        queue
            .binary_search_by_key(&wait, |w| w.wait)
            .ok()
            .map(position)
    }
}

fn position(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Why a caller that will not wait does not get the taken `state`: its holder, or the
/// lock-delay that runs.
fn conflict(state: &KeyState) -> LockError {
    match &state.holder {
        Some(holder) => LockError::Held {
            holder: holder.public(),
        },
        None => LockError::LockDelayed {
            until_ms: state.available_at(),
        },
    }
}

fn too_many_in_session(max: u32) -> LockError {
    LockError::TooManyLocksInSession { max }
}
