//! An in-process network between nodes with faults on demand: a node can be down, and
//! links can be cut in both directions (partitions). Messages are handed to the target's
//! router directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use lockplane_node::raft::NodeId;
use lockplane_node::transport::{
    BoxFuture, PeerUnreachable, RaftRequest, RaftResponse, Router, Transport,
};
use lockplane_node::wal::GroupId;

#[derive(Default)]
pub struct Net {
    routers: Mutex<HashMap<NodeId, Arc<Router>>>,
    down: Mutex<HashSet<NodeId>>,
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
}

impl Net {
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

    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
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
        Box::pin(async move {
            match route {
                Some(router) => Ok(router.handle(group, request).await),
                None => Err(PeerUnreachable {
                    node: target,
                    reason: "link down".into(),
                }),
            }
        })
    }
}
