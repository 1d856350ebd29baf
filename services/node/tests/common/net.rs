//! An in-process network between nodes with faults on demand: a node can be down, links
//! can be cut in both directions (partitions), and a directed link can delay messages (a
//! random delay up to a bound) or lose them (on the way there, or the answer on the way
//! back). Random choices come from a seeded rng. Messages are handed to the target's router
//! directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::rng::Rng;

use lockplane_node::raft::NodeId;
use lockplane_node::transport::{
    BoxFuture, PeerUnreachable, RaftRequest, RaftResponse, Router, Transport,
};
use lockplane_node::wal::GroupId;

/// What a directed link does to the messages it carries.
#[derive(Clone, Copy, Default)]
struct LinkFault {
    max_delay_ms: u64,
    loss_percent: u64,
}

pub struct Net {
    routers: Mutex<HashMap<NodeId, Arc<Router>>>,
    down: Mutex<HashSet<NodeId>>,
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
    faults: Mutex<HashMap<(NodeId, NodeId), LinkFault>>,
    rng: Mutex<Rng>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            routers: Mutex::default(),
            down: Mutex::default(),
            cut: Mutex::default(),
            faults: Mutex::default(),
            rng: Mutex::new(Rng::new(0)),
        }
    }
}

/// What happens to one message.
enum Fate {
    Deliver { delay: Duration, lose_answer: bool },
    Lost,
}

impl Net {
    /// Makes the random delays and losses from now on follow `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap() = Rng::new(seed);
    }

    /// Messages from `from` to `to` wait a random time up to `max` before delivery.
    pub fn delay(&self, from: NodeId, to: NodeId, max: Duration) {
        let mut faults = self.faults.lock().unwrap();
        faults.entry((from, to)).or_default().max_delay_ms = max.as_millis() as u64;
    }

    /// `percent` of the messages from `from` to `to` are lost, half of them after the
    /// target handled them (the answer is lost).
    pub fn lose(&self, from: NodeId, to: NodeId, percent: u64) {
        let mut faults = self.faults.lock().unwrap();
        faults.entry((from, to)).or_default().loss_percent = percent.min(100);
    }

    fn fate(&self, from: NodeId, to: NodeId) -> Fate {
        let fault = self
            .faults
            .lock()
            .unwrap()
            .get(&(from, to))
            .copied()
            .unwrap_or_default();
        let mut rng = self.rng.lock().unwrap();
        let lost = fault.loss_percent > 0 && rng.chance(fault.loss_percent);
        if lost && rng.chance(50) {
            return Fate::Lost;
        }
        let delay = match fault.max_delay_ms {
            0 => Duration::ZERO,
            max => Duration::from_millis(rng.below(max + 1)),
        };
        Fate::Deliver {
            delay,
            lose_answer: lost,
        }
    }

    pub fn endpoint(self: &Arc<Self>, me: NodeId) -> Arc<dyn Transport> {
        Arc::new(Endpoint {
            me,
            net: Arc::clone(self),
        })
    }

    pub fn attach(&self, id: NodeId, router: Arc<Router>) {
        self.routers.lock().unwrap().insert(id, router);
        self.down.lock().unwrap().remove(&id);
    }

    /// The node stops answering and sending (a crash, as the network sees it).
    pub fn detach(&self, id: NodeId) {
        self.down.lock().unwrap().insert(id);
        self.routers.lock().unwrap().remove(&id);
    }

    /// Cuts every link between `side` and the other nodes.
    pub fn partition(&self, side: &[NodeId], others: &[NodeId]) {
        let mut cut = self.cut.lock().unwrap();
        for &a in side {
            for &b in others {
                cut.insert((a, b));
                cut.insert((b, a));
            }
        }
    }

    /// Reconnects every cut link and removes every delay and loss.
    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
        self.faults.lock().unwrap().clear();
    }

    fn route(&self, from: NodeId, to: NodeId) -> Option<Arc<Router>> {
        let down = self.down.lock().unwrap();
        if down.contains(&from)
            || down.contains(&to)
            || self.cut.lock().unwrap().contains(&(from, to))
        {
            return None;
        }
        self.routers.lock().unwrap().get(&to).cloned()
    }
}

struct Endpoint {
    me: NodeId,
    net: Arc<Net>,
}

impl Transport for Endpoint {
    fn send(
        &self,
        target: NodeId,
        _addr: &str,
        group: GroupId,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, PeerUnreachable>> {
        let route = self.net.route(self.me, target);
        let fate = self.net.fate(self.me, target);
        let unreachable = move |reason: &str| PeerUnreachable {
            node: target,
            reason: reason.into(),
        };
        Box::pin(async move {
            let Some(router) = route else {
                return Err(unreachable("link down"));
            };
            match fate {
                Fate::Lost => Err(unreachable("message lost")),
                Fate::Deliver { delay, lose_answer } => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let answer = router.handle(group, request).await;
                    if lose_answer {
                        return Err(unreachable("answer lost"));
                    }
                    Ok(answer)
                }
            }
        })
    }
}
