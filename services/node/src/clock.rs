//! Time as the node tells it. Leases are durations, so the node never follows the wall
//! clock after it starts: a [`MonotonicClock`] reads the wall clock once and counts from
//! there with the monotonic timer, so an NTP step or an operator's `date -s` of minutes,
//! forward or back, neither ends leases early nor holds them past their TTL. A
//! [`GroupClock`] then keeps each group's time from running backwards across leaders whose
//! clocks disagree. See docs/decisions/0024-lease-time-is-monotonic.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lock_core::Millis;

/// Milliseconds for stamping proposals. Only leaders read it; the state machine never does.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds.
    fn now_ms(&self) -> Millis;
}

/// Wall-clock time since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A wall clock read once, then advanced by the monotonic timer: it reads like the wall
/// clock at the moment it was made, and ignores every jump the wall clock makes afterwards.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    anchor: Millis,
    start: Instant,
}

impl MonotonicClock {
    /// A clock that starts at `wall`'s time now.
    pub fn anchored_on(wall: &dyn Clock) -> Self {
        Self {
            anchor: wall.now_ms(),
            start: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> Millis {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.anchor.saturating_add(elapsed)
    }
}

/// The wall clock shifted by an offset a test sets while the node runs: the test hook for
/// clock jumps (`lockplane node --test-clock-offset-file`, the fault suite's clock faults).
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: AtomicI64,
}

impl ShiftedClock {
    /// Moves this clock to the wall clock plus `offset_ms` (negative is back in time).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// The offset set last.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> Millis {
        SystemClock
            .now_ms()
            .saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }
}

/// One group's time at this replica: the node's clock, moved forward to the time the
/// group's applied log has reached whenever that is ahead. A replica whose clock runs
/// behind the leaders before it would otherwise stamp times the group has passed, and
/// would wait, as leader, for its own clock to catch up before it expired anything.
/// (A clock ahead needs nothing: the first entry of a new term renews every lease.)
pub struct GroupClock {
    clock: Arc<dyn Clock>,
    /// The group's time as its applied entries carry it.
    applied: Arc<AtomicU64>,
    /// How far this replica's clock has been moved forward; it never shrinks, so the
    /// group's time never runs backwards here.
    ahead_by: AtomicU64,
}

impl GroupClock {
    /// The time of a group whose applied time `applied` publishes, on `clock`.
    pub fn new(clock: Arc<dyn Clock>, applied: Arc<AtomicU64>) -> Self {
        Self {
            clock,
            applied,
            ahead_by: AtomicU64::new(0),
        }
    }

    /// The group's time now.
    pub fn now_ms(&self) -> Millis {
        let own = self.clock.now_ms();
        let behind = self.applied.load(Ordering::Acquire).saturating_sub(own);
        let ahead_by = self
            .ahead_by
            .fetch_max(behind, Ordering::AcqRel)
            .max(behind);
        own.saturating_add(ahead_by)
    }
}

impl std::fmt::Debug for GroupClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupClock")
            .field("applied", &self.applied)
            .field("ahead_by", &self.ahead_by)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monotonic_clock_ignores_the_wall_clock_after_it_starts() {
        let wall = ShiftedClock::default();
        let clock = MonotonicClock::anchored_on(&wall);
        let before = clock.now_ms();
        wall.set_offset_ms(300_000);
        let after_forward = clock.now_ms();
        wall.set_offset_ms(-300_000);
        let after_back = clock.now_ms();
        assert!(after_forward >= before && after_forward < before + 60_000);
        assert!(after_back >= after_forward && after_back < before + 60_000);
        assert!(wall.now_ms() + 250_000 < clock.now_ms());
    }

    #[test]
    fn a_group_clock_behind_the_group_moves_forward_and_never_back() {
        let wall = Arc::new(ShiftedClock::default());
        let applied = Arc::new(AtomicU64::new(0));
        let clock = GroupClock::new(wall.clone(), Arc::clone(&applied));
        let own = wall.now_ms();
        assert!(clock.now_ms() >= own);
        applied.store(own + 300_000, Ordering::Release);
        let moved = clock.now_ms();
        assert!(moved >= own + 300_000);
        // The applied time going nowhere does not stop it; its own clock keeps it moving.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.now_ms() > moved);
        applied.store(0, Ordering::Release);
        assert!(clock.now_ms() > moved);
    }
}
