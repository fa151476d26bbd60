//! The embedded hint store: one redb file, a FIFO of hints per node, and per node the
//! backlog (hints, bytes) and whether the node needs a full resync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::hint::Hint;

#[derive(Debug, thiserror::Error)]
pub enum HintError {
    #[error("hint store I/O: {0}")]
    Backend(String),
    /// The node's queue would exceed its cap; the node is now marked as needing a resync.
    #[error("the hint queue of node `{node}` is full ({cap} bytes)")]
    Full { node: String, cap: u64 },
}

fn backend<E: std::fmt::Display>(e: E) -> HintError {
    HintError::Backend(e.to_string())
}

/// A hint's place in the store: global and increasing, so a node's hints replay in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

/// What a node has waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeBacklog {
    pub hints: u64,
    pub bytes: u64,
    /// The node missed a write that could not be kept: only a full resync makes it whole.
    pub needs_resync: bool,
}

const HINTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hints");
/// Per node: (hints, bytes, needs_resync as 0/1).
const BACKLOG: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("backlog");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";

/// Counts per node: what is committed (mirrored from the `BACKLOG` table) and what is queued
/// for the committer. One lock over both, so a reader never sees a hint in neither.
#[derive(Default)]
struct Counts {
    durable: HashMap<String, NodeBacklog>,
    /// (hints, bytes) handed to the committer and not yet committed or failed.
    pending: HashMap<String, (u64, u64)>,
}

impl Counts {
    fn backlog(&self, node: &str) -> NodeBacklog {
        let mut b = self.durable.get(node).copied().unwrap_or_default();
        if let Some((hints, bytes)) = self.pending.get(node) {
            b.hints += hints;
            b.bytes += bytes;
        }
        b
    }

    fn settle(&mut self, node: &str, size: u64) {
        if let Some(p) = self.pending.get_mut(node) {
            p.0 = p.0.saturating_sub(1);
            p.1 = p.1.saturating_sub(size);
            if p.0 == 0 {
                self.pending.remove(node);
            }
        }
    }
}

struct Inner {
    db: Database,
    counts: Mutex<Counts>,
    /// Held by each change from reading a node's durable count to updating it after the
    /// commit: redb serializes write transactions, but not the read before one nor the
    /// mirror's update after, so without it concurrent changes would lose counts.
    writer: Mutex<()>,
}

/// A hint handed to the committer.
struct Queued {
    node: String,
    hint: Hint,
    size: u64,
    done: oneshot::Sender<Result<Seq, HintError>>,
}

/// A hint on its way to disk: it already counts in its node's backlog (so later writes queue
/// behind it) and has its place in the node's order; [`Ticket::durable`] waits for the commit.
pub struct Ticket(oneshot::Receiver<Result<Seq, HintError>>);

impl Ticket {
    /// The hint's place once it is committed (fsynced), or why it could not be.
    pub async fn durable(self) -> Result<Seq, HintError> {
        self.0.await.unwrap_or_else(|_| Err(closed()))
    }

    /// [`Self::durable`] for a thread that may block (never an async worker).
    pub fn wait(self) -> Result<Seq, HintError> {
        self.0.blocking_recv().unwrap_or_else(|_| Err(closed()))
    }
}

fn closed() -> HintError {
    HintError::Backend("the hint store is closed".into())
}

/// Hints queued together are committed together: one transaction, one fsync.
const MAX_BATCH: usize = 256;

pub struct HintStore {
    inner: Arc<Inner>,
    /// To the committer thread, which commits queued hints in the order they were queued.
    queue: Option<mpsc::Sender<Queued>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HintStore {
    fn drop(&mut self) {
        // The committer finishes what was queued, then ends: the file is closed on return.
        self.queue.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

impl HintStore {
    /// Opens (or creates) the store; every committed hint survives a crash.
    pub fn open(path: &Path) -> Result<Self, HintError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(HINTS).map_err(backend)?;
            txn.open_table(BACKLOG).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        let mut durable = HashMap::new();
        {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(BACKLOG).map_err(backend)?;
            for row in table.iter().map_err(backend)? {
                let (node, value) = row.map_err(backend)?;
                let (hints, bytes, resync) = value.value();
                durable.insert(
                    node.value().to_owned(),
                    NodeBacklog {
                        hints,
                        bytes,
                        needs_resync: resync != 0,
                    },
                );
            }
        }
        let inner = Arc::new(Inner {
            db,
            counts: Mutex::new(Counts {
                durable,
                pending: HashMap::new(),
            }),
            writer: Mutex::new(()),
        });
        let (queue, queued) = mpsc::channel();
        let committer = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("miroir-hints".into())
                .spawn(move || inner.commit_queued(&queued))
                .map_err(backend)?
        };
        Ok(Self {
            inner,
            queue: Some(queue),
            committer: Some(committer),
        })
    }

    /// What `node` has waiting, hints on their way to disk included.
    pub fn backlog(&self, node: &str) -> NodeBacklog {
        self.inner.counts().backlog(node)
    }

    /// Every node with hints waiting or a resync needed.
    pub fn backlogs(&self) -> Vec<(String, NodeBacklog)> {
        let counts = self.inner.counts();
        // Through a set: each node once, in order.
        counts
            .durable
            .keys()
            .chain(counts.pending.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|n| (n.clone(), counts.backlog(n)))
            .filter(|(_, b)| b.hints > 0 || b.needs_resync)
            .collect()
    }

    /// Queues `hint` behind `node`'s other hints. It counts in the node's backlog at once and
    /// keeps its place in the node's order; the returned ticket says when it is durable. Hints
    /// queued meanwhile by other callers share its commit. Past `cap_bytes`, or once the node
    /// needs a resync anyway, nothing is queued and [`HintError::Full`] says so.
    pub fn enqueue(&self, node: &str, hint: Hint, cap_bytes: u64) -> Result<Ticket, HintError> {
        let size = hint.size();
        let queue = self.queue.as_ref().ok_or_else(closed)?;
        let mut counts = self.inner.counts();
        let backlog = counts.backlog(node);
        if backlog.needs_resync || backlog.bytes.saturating_add(size) > cap_bytes {
            return Err(HintError::Full {
                node: node.to_owned(),
                cap: cap_bytes,
            });
        }
        let (done, ticket) = oneshot::channel();
        // Sent with the counts held: the committer's order is the order of the counts.
        queue
            .send(Queued {
                node: node.to_owned(),
                hint,
                size,
                done,
            })
            .map_err(|_| closed())?;
        let pending = counts.pending.entry(node.to_owned()).or_default();
        pending.0 += 1;
        pending.1 += size;
        Ok(Ticket(ticket))
    }

    /// Queues `hint` and waits until it is durable: [`Self::enqueue`] for a thread that may
    /// block.
    pub fn append(&self, node: &str, hint: &Hint, cap_bytes: u64) -> Result<Seq, HintError> {
        self.enqueue(node, hint.clone(), cap_bytes)?.wait()
    }

    /// The oldest committed hint waiting for `node`.
    pub fn first(&self, node: &str) -> Result<Option<(Seq, Hint)>, HintError> {
        let txn = self.inner.db.begin_read().map_err(backend)?;
        let table = txn.open_table(HINTS).map_err(backend)?;
        let mut range = table.range((node, 0)..=(node, u64::MAX)).map_err(backend)?;
        let Some(row) = range.next() else {
            return Ok(None);
        };
        let (key, value) = row.map_err(backend)?;
        let seq = key.value().1;
        let hint = Hint::decode(value.value())
            .ok_or_else(|| HintError::Backend(format!("corrupt hint {seq} for node `{node}`")))?;
        Ok(Some((Seq(seq), hint)))
    }

    /// Whether the hint is still waiting.
    pub fn contains(&self, node: &str, seq: Seq) -> bool {
        let Ok(txn) = self.inner.db.begin_read() else {
            return false;
        };
        let Ok(table) = txn.open_table(HINTS) else {
            return false;
        };
        table.get((node, seq.0)).ok().flatten().is_some()
    }

    /// Drops a hint (replayed, or abandoned); `false` when it was not there.
    pub fn remove(&self, node: &str, seq: Seq) -> Result<bool, HintError> {
        let inner = &self.inner;
        let _exclusive = inner.exclusive();
        let mut backlog = inner.durable(node);
        let txn = inner.db.begin_write().map_err(backend)?;
        let removed = {
            let mut hints = txn.open_table(HINTS).map_err(backend)?;
            let size = hints
                .remove((node, seq.0))
                .map_err(backend)?
                .and_then(|v| Hint::decode(v.value()).map(|h| h.size()));
            match size {
                Some(size) => {
                    backlog.hints = backlog.hints.saturating_sub(1);
                    backlog.bytes = backlog.bytes.saturating_sub(size);
                    let mut table = txn.open_table(BACKLOG).map_err(backend)?;
                    write_backlog(&mut table, node, backlog)?;
                    true
                }
                None => false,
            }
        };
        txn.commit().map_err(backend)?;
        if removed {
            inner.counts().durable.insert(node.to_owned(), backlog);
        }
        Ok(removed)
    }

    /// Marks the node as having missed a write no hint holds: only a full resync makes it
    /// whole. Durable.
    pub fn mark_resync(&self, node: &str) -> Result<(), HintError> {
        self.set_resync(node, true)
    }

    /// Clears the resync mark (after an operator or the topology service resynced the node).
    pub fn clear_resync(&self, node: &str) -> Result<(), HintError> {
        self.set_resync(node, false)
    }

    fn set_resync(&self, node: &str, needs_resync: bool) -> Result<(), HintError> {
        let inner = &self.inner;
        let _exclusive = inner.exclusive();
        let mut backlog = inner.durable(node);
        backlog.needs_resync = needs_resync;
        let txn = inner.db.begin_write().map_err(backend)?;
        {
            let mut table = txn.open_table(BACKLOG).map_err(backend)?;
            write_backlog(&mut table, node, backlog)?;
        }
        txn.commit().map_err(backend)?;
        inner.counts().durable.insert(node.to_owned(), backlog);
        Ok(())
    }
}

impl Inner {
    fn exclusive(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding this lock cannot leave the maps half-updated (plain inserts).
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn durable(&self, node: &str) -> NodeBacklog {
        self.counts().durable.get(node).copied().unwrap_or_default()
    }

    /// The committer thread: takes what is queued, up to [`MAX_BATCH`] at a time, commits it
    /// in one transaction and answers each ticket; ends when the store is dropped.
    fn commit_queued(&self, queued: &mpsc::Receiver<Queued>) {
        while let Ok(first) = queued.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queued.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let outcome = self.commit(&batch);
            for (i, q) in batch.into_iter().enumerate() {
                let answer = match &outcome {
                    Ok(first_seq) => Ok(Seq(first_seq + i as u64)),
                    Err(e) => Err(HintError::Backend(e.to_string())),
                };
                // The caller may have gone (its request was dropped): the hint stays kept.
                let _ = q.done.send(answer);
            }
        }
    }

    /// Commits `batch` in order with consecutive sequence numbers; the first one's. The hints
    /// move from pending to durable in the counts at once, or leave them on failure.
    fn commit(&self, batch: &[Queued]) -> Result<u64, HintError> {
        let _exclusive = self.exclusive();
        let written = self.write(batch);
        let mut counts = self.counts();
        for q in batch {
            counts.settle(&q.node, q.size);
        }
        if let Ok((_, nodes)) = &written {
            for (node, backlog) in nodes {
                counts.durable.insert(node.clone(), *backlog);
            }
        }
        written.map(|(first, _)| first)
    }

    /// The transaction of [`Self::commit`]: the first sequence number and each node's new
    /// durable count.
    fn write(&self, batch: &[Queued]) -> Result<(u64, HashMap<String, NodeBacklog>), HintError> {
        let mut nodes: HashMap<String, NodeBacklog> = HashMap::new();
        let txn = self.db.begin_write().map_err(backend)?;
        let first = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let first = meta
                .get(NEXT_SEQ)
                .map_err(backend)?
                .map_or(1, |v| v.value());
            meta.insert(NEXT_SEQ, first + batch.len() as u64)
                .map_err(backend)?;
            let mut hints = txn.open_table(HINTS).map_err(backend)?;
            for (i, q) in batch.iter().enumerate() {
                let header = q.hint.encoded_header();
                let mut value = hints
                    .insert_reserve(
                        (q.node.as_str(), first + i as u64),
                        header.len() + q.hint.body_len(),
                    )
                    .map_err(backend)?;
                q.hint.encode_into(&header, value.as_mut());
                drop(value);
                let backlog = nodes
                    .entry(q.node.clone())
                    .or_insert_with(|| self.durable(&q.node));
                backlog.hints += 1;
                backlog.bytes += q.size;
            }
            let mut table = txn.open_table(BACKLOG).map_err(backend)?;
            for (node, backlog) in &nodes {
                write_backlog(&mut table, node, *backlog)?;
            }
            first
        };
        txn.commit().map_err(backend)?;
        Ok((first, nodes))
    }
}

fn write_backlog(
    table: &mut redb::Table<'_, &str, (u64, u64, u64)>,
    node: &str,
    b: NodeBacklog,
) -> Result<(), HintError> {
    if b.hints == 0 && !b.needs_resync {
        table.remove(node).map_err(backend)?;
    } else {
        table
            .insert(node, (b.hints, b.bytes, u64::from(b.needs_resync)))
            .map_err(backend)?;
    }
    Ok(())
}
