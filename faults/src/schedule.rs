//! Which faults a run injects, when, and for how long: a plan drawn from the seed, so a
//! failing run is replayed by its seed; and the injection itself.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use testkit::rng::Rng;

use crate::cluster::Cluster;
use crate::netns::Hosts;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// The hot key's leader cut off from every other host (nodes and gateway).
    Partition,
    /// The hot key's leader paused (SIGSTOP) past the election timeout.
    Pause,
    /// The hot key's leader killed (`kill -9`), restarted after the fault.
    Kill,
    /// Every node killed at once, all restarted after the fault.
    KillAll,
    /// The gateway cut off from the hot key's leader (10 or 30 s).
    GatewayCut,
    /// A client that holds a lock paused past its lease (fencing).
    PausedClient,
    /// The hot key's leader's disk filled (every free byte taken), freed after the fault.
    DiskFull,
    /// The hot key's leader's wall clock jumped minutes forward or back, then the node
    /// killed and restarted with it (so it boots with the wrong time); after the fault the
    /// clock jumps back while it runs.
    ClockJump,
}

/// Every kind, in the order runs cycle through them.
pub const ALL: [FaultKind; 8] = [
    FaultKind::Partition,
    FaultKind::Pause,
    FaultKind::Kill,
    FaultKind::DiskFull,
    FaultKind::ClockJump,
    FaultKind::GatewayCut,
    FaultKind::PausedClient,
    FaultKind::KillAll,
];

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Partition => "partition",
            Self::Pause => "pause",
            Self::Kill => "kill",
            Self::KillAll => "kill-all",
            Self::GatewayCut => "gateway-cut",
            Self::PausedClient => "paused-client",
            Self::DiskFull => "disk-full",
            Self::ClockJump => "clock-jump",
        })
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ALL.iter()
            .copied()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| {
                let names: Vec<String> = ALL.iter().map(ToString::to_string).collect();
                format!("unknown fault {s:?}: one of {}", names.join(", "))
            })
    }
}

/// One planned fault: its kind and how long it lasts.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// The kind.
    pub kind: FaultKind,
    /// How long the fault lasts.
    pub length: Duration,
    /// For a clock jump, how far (milliseconds; negative is back); 0 otherwise.
    pub jump_ms: i64,
}

/// The faults of a run, one after another, each followed by a quiet spell. Kinds cycle
/// through `kinds` (a seeded shuffle of each round), so every kind is seen as soon as the
/// run is long enough.
pub fn plan(seed: u64, kinds: &[FaultKind], budget: Duration, quiet: Duration) -> Vec<Planned> {
    let mut rng = Rng::new(seed);
    let mut planned = Vec::new();
    let mut used = Duration::ZERO;
    let mut round: Vec<FaultKind> = Vec::new();
    let mut cuts = 0u32;
    loop {
        if round.is_empty() {
            round = kinds.to_vec();
            for i in (1..round.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                round.swap(i, j);
            }
        }
        let kind = round.remove(0);
        let length = match kind {
            FaultKind::Partition | FaultKind::Pause => {
                Duration::from_millis(6_000 + rng.below(6_000))
            }
            FaultKind::Kill => Duration::from_millis(4_000 + rng.below(4_000)),
            FaultKind::KillAll => Duration::from_millis(1_000 + rng.below(2_000)),
            FaultKind::GatewayCut => {
                cuts += 1;
                Duration::from_secs(if cuts % 2 == 1 { 10 } else { 30 })
            }
            FaultKind::PausedClient => Duration::from_secs(5),
            FaultKind::DiskFull | FaultKind::ClockJump => {
                Duration::from_millis(6_000 + rng.below(6_000))
            }
        };
        let jump_ms = if kind == FaultKind::ClockJump {
            let minutes = 2 + rng.below(9) as i64;
            let sign = if rng.below(2) == 0 { 1 } else { -1 };
            sign * minutes * 60_000
        } else {
            0
        };
        if used + length + quiet > budget {
            if planned.is_empty() {
                planned.push(Planned {
                    kind,
                    length,
                    jump_ms,
                });
            }
            return planned;
        }
        used += length + quiet;
        planned.push(Planned {
            kind,
            length,
            jump_ms,
        });
    }
}

/// A fault in force, to be healed.
pub enum Injected {
    /// Hosts cut from each other.
    Cut(Vec<(String, String)>),
    /// A paused node.
    Paused(u64),
    /// Killed nodes, to restart.
    Killed(Vec<u64>),
    /// A node whose disk was filled.
    DiskFilled(u64),
    /// A node restarted with its clock off, to jump back.
    ClockOff(u64),
    /// Nothing to heal (the paused client heals itself).
    Nothing,
}

/// Injects `planned` aimed at node `target` (the hot key's leader).
pub async fn inject(
    planned: &Planned,
    target: u64,
    cluster: &mut Cluster,
    net: &Hosts,
) -> anyhow::Result<Injected> {
    let host = Cluster::host_of(target);
    Ok(match planned.kind {
        FaultKind::Partition => {
            let mut cut = Vec::new();
            for other in cluster.ids().into_iter().filter(|id| *id != target) {
                cut.push((host.clone(), Cluster::host_of(other)));
            }
            cut.push((host.clone(), "edge".to_string()));
            for (a, b) in &cut {
                net.cut(a, b)?;
            }
            Injected::Cut(cut)
        }
        FaultKind::GatewayCut => {
            net.cut(&host, "edge")?;
            Injected::Cut(vec![(host, "edge".to_string())])
        }
        FaultKind::Pause => {
            cluster.signal(target, Signal::SIGSTOP)?;
            Injected::Paused(target)
        }
        FaultKind::Kill => {
            cluster.kill(target)?;
            Injected::Killed(vec![target])
        }
        FaultKind::KillAll => {
            let ids = cluster.ids();
            for id in &ids {
                cluster.kill(*id)?;
            }
            Injected::Killed(ids)
        }
        FaultKind::PausedClient => Injected::Nothing,
        FaultKind::DiskFull => {
            cluster.fill_disk(target).await?;
            Injected::DiskFilled(target)
        }
        FaultKind::ClockJump => {
            // The jump reaches the running node first (which must ignore it), then the
            // node starts again with the wrong time.
            cluster.set_clock_offset(target, planned.jump_ms)?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            cluster.kill(target)?;
            cluster
                .restart(target)
                .with_context(|| format!("cannot restart node {target}"))?;
            Injected::ClockOff(target)
        }
    })
}

/// Ends a fault.
pub fn heal(injected: Injected, cluster: &mut Cluster, net: &Hosts) -> anyhow::Result<()> {
    match injected {
        Injected::Cut(pairs) => {
            for (a, b) in pairs {
                net.heal(&a, &b)?;
            }
        }
        Injected::Paused(id) => cluster.signal(id, Signal::SIGCONT)?,
        Injected::Killed(ids) => {
            for id in ids {
                cluster
                    .restart(id)
                    .with_context(|| format!("cannot restart node {id}"))?;
            }
        }
        Injected::DiskFilled(id) => cluster.free_disk(id)?,
        Injected::ClockOff(id) => cluster.set_clock_offset(id, 0)?,
        Injected::Nothing => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_the_same_for_a_seed_and_fits_the_budget() {
        let a = plan(7, &ALL, Duration::from_secs(300), Duration::from_secs(8));
        let b = plan(7, &ALL, Duration::from_secs(300), Duration::from_secs(8));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let used: Duration = a.iter().map(|p| p.length + Duration::from_secs(8)).sum();
        assert!(used <= Duration::from_secs(300));
        let kinds: std::collections::BTreeSet<_> = a.iter().map(|p| p.kind).collect();
        assert_eq!(kinds.len(), ALL.len(), "{a:?}");
    }

    #[test]
    fn fault_names_round_trip_and_a_bad_one_is_named() {
        for kind in ALL {
            assert_eq!(kind.to_string().parse::<FaultKind>(), Ok(kind));
        }
        let err = "flood".parse::<FaultKind>().unwrap_err();
        assert!(err.contains("flood") && err.contains("partition"), "{err}");
    }
}
