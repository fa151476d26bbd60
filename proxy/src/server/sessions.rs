//! Read-your-writes sessions. A client that sends `X-Miroir-Session: <id>` with its writes
//! and reads sees its own acknowledged writes in its next reads: Miroir remembers the tasks
//! of the session's writes and, before a read, waits (at most [`WAIT`]) until every node that
//! serves reads has processed them. Without the header nothing changes. A task seen processed
//! is forgotten, so a session with nothing pending costs its reads nothing.
//!
//! Sessions live in this process's memory: at most [`MAX_SESSIONS`], each keeping its last
//! [`PER_SESSION`] pending tasks, forgotten after [`IDLE`] without a write.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use miroir_filters::routes::{Method, RouteClass, RouteSpec};
use miroir_filters::routing::NodeId;
use miroir_tasks::TaskUid;

use crate::cluster::Runtime;
use crate::node_io;
use crate::request::Reply;
use crate::shared::Shared;
use crate::tasks;

pub const HEADER: &str = "X-Miroir-Session";
/// On a read that waited in vain: `X-Miroir-Session: stale`.
const STALE: &str = "stale";
/// How long a read waits for the session's writes.
pub const WAIT: Duration = Duration::from_secs(5);
const MAX_SESSIONS: usize = 100_000;
const PER_SESSION: usize = 16;
const IDLE: Duration = Duration::from_secs(600);
/// Session ids longer than this are ignored (a header is not a place to store data).
const MAX_ID: usize = 128;

#[derive(Default)]
pub struct Sessions {
    pending: DashMap<String, (Instant, Vec<TaskUid>)>,
}

impl Sessions {
    /// Remembers the task of a write the session made.
    pub fn wrote(&self, session: &str, task: TaskUid) {
        if session.len() > MAX_ID {
            return;
        }
        if self.pending.len() >= MAX_SESSIONS {
            self.pending.retain(|_, (at, _)| at.elapsed() < IDLE);
        }
        let mut entry = self
            .pending
            .entry(session.to_owned())
            .or_insert_with(|| (Instant::now(), Vec::new()));
        let (at, tasks) = entry.value_mut();
        *at = Instant::now();
        tasks.push(task);
        if tasks.len() > PER_SESSION {
            tasks.remove(0);
        }
    }

    fn pending(&self, session: &str) -> Vec<TaskUid> {
        self.pending
            .get(session)
            .map(|e| e.value().1.clone())
            .unwrap_or_default()
    }

    fn done(&self, session: &str, task: TaskUid) {
        if let Some(mut e) = self.pending.get_mut(session) {
            e.value_mut().1.retain(|t| *t != task);
        }
    }
}

/// Whether a route changes something (its task joins the session) rather than reads.
pub fn writes(spec: &RouteSpec) -> bool {
    match spec.class {
        RouteClass::Broadcast => true,
        RouteClass::ShardRouted | RouteClass::Miroir => spec.method != Method::Get,
        _ => false,
    }
}

/// The session a request names, if any.
pub fn of(session: &pingora_proxy::Session) -> Option<String> {
    session
        .get_header(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_ID)
        .map(str::to_owned)
}

/// Before a read: waits until the session's pending writes are processed on every node that
/// serves reads. `false` when the wait ran out.
pub async fn wait(shared: &Shared, rt: &Runtime, session: &str) -> bool {
    let pending = shared.sessions.pending(session);
    if pending.is_empty() {
        return true;
    }
    let deadline = Instant::now() + WAIT;
    let mut all_done = true;
    for task in pending {
        let record = tasks::registry::blocking(&shared.tasks, move |s| s.get(task)).await;
        let Ok(Some(record)) = record else {
            // Deleted or unreadable: nothing left to wait for.
            shared.sessions.done(session, task);
            continue;
        };
        if record.terminal.is_some() {
            shared.sessions.done(session, task);
            continue;
        }
        let waits = record.node_tasks.iter().filter_map(|part| {
            let uid = part.task_uid?;
            let node = rt.node(&part.node)?;
            let serves = NodeId::new(&part.node)
                .is_ok_and(|id| shared.cluster.node_state(&id).serves_reads());
            let left = deadline.saturating_duration_since(Instant::now());
            serves.then(|| node_io::wait_processed(&shared.cluster, rt, node, uid, left))
        });
        let processed = futures::future::join_all(waits).await;
        if processed.iter().all(|done| *done) {
            shared.sessions.done(session, task);
        } else {
            all_done = false;
        }
    }
    all_done
}

/// After a write: remembers its task for the session.
pub fn after_write(shared: &Shared, session: &str, reply: &Reply) {
    if reply.status != 202 {
        return;
    }
    let uid = serde_json::from_slice::<serde_json::Value>(&reply.bytes())
        .ok()
        .and_then(|v| v["taskUid"].as_u64());
    if let Some(uid) = uid {
        shared.sessions.wrote(session, TaskUid(uid));
    }
}

/// Marks a read that waited in vain.
pub fn stale(reply: Reply) -> Reply {
    reply.with_header(HEADER, STALE.to_owned())
}
