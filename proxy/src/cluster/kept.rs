//! A write handed to the hint store for a node (its hint queue or its move log): it already
//! counts in that queue's backlog and holds its place in the queue's order, and is on its way
//! to disk (the store commits on its own thread, together with what was queued meanwhile). The
//! caller may release its write order before waiting: a later write queues behind this one
//! whether or not it is on disk yet.

use miroir_filters::routing::NodeId;
use miroir_handoff::{Hint, HintError, Seq, Ticket};

use super::Cluster;

pub struct Kept {
    pub node: NodeId,
    pub index_uid: String,
    ticket: Result<Ticket, HintError>,
}

impl Kept {
    /// Hands `hint` to the store's `queue` (past `cap` bytes it is refused) without waiting.
    pub fn enqueue(cluster: &Cluster, node: &NodeId, queue: &str, hint: Hint, cap: u64) -> Self {
        let index_uid = hint.index_uid.clone();
        Self {
            node: node.clone(),
            index_uid,
            ticket: cluster.hints.enqueue(queue, hint, cap),
        }
    }

    /// Whether the store took it (it may still fail to commit).
    pub fn taken(&self) -> bool {
        self.ticket.is_ok()
    }

    /// Its place once committed, or why it could not be kept.
    pub async fn durable(self) -> Result<Seq, HintError> {
        match self.ticket {
            Ok(ticket) => ticket.durable().await,
            Err(e) => Err(e),
        }
    }
}
