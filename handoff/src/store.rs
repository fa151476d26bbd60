//! The hint store: a FIFO of hints per node, and per node the backlog (hints, bytes) and
//! whether the node needs a full resync. Kept in one redb file (one Miroir), or in Redis
//! (several Miroirs share every node's log; see `redis_log`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::hint::Hint;
use crate::redis_log::{Appended, RedisLog};

#[derive(Debug, Clone, thiserror::Error)]
pub enum HintError {
    #[error("hint store I/O: {0}")]
    Backend(String),
    /// The node's queue would exceed its cap; the node is now marked as needing a resync.
    #[error("the hint queue of node `{node}` is full ({cap} bytes)")]
    Full { node: String, cap: u64 },
    /// Another Miroir holds the queue's replay lease now (this one's expired).
    #[error("the replay lease of `{0}` passed to another Miroir")]
    LeaseLost(String),
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
    /// Shared store only: the oldest sequence number of each queue, as last seen.
    heads: HashMap<String, u64>,
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

/// Where the hints are kept.
enum Backend {
    Redb(Database),
    /// Shared with other Miroirs; `token` names this process's leases.
    Redis {
        log: Box<RedisLog>,
        token: String,
    },
}

/// How long a replay lease lasts without being renewed: the holder renews it with each hint,
/// so another Miroir takes the queue over this long after the holder died.
pub const LEASE_MS: u64 = 10_000;
/// How long a write order is held without being renewed: its holder renews it while a write
/// is on its way, so a Miroir that died holds up its indexes' writes at most this long.
pub const ORDER_MS: u64 = 5_000;
/// How often the shared store reads every queue's counts (other Miroirs' hints included).
const SYNC_EVERY: Duration = Duration::from_millis(100);

struct Inner {
    backend: Backend,
    counts: Mutex<Counts>,
    /// Held by each change from reading a node's durable count to updating it after the
    /// commit: redb serializes write transactions, but not the read before one nor the
    /// mirror's update after, so without it concurrent changes would lose counts.
    writer: Mutex<()>,
}

/// What the committer thread takes: a hint, or a barrier answered once every hint queued
/// before it is committed.
enum Item {
    Hint(Queued),
    Barrier(oneshot::Sender<()>),
}

/// A hint handed to the committer.
struct Queued {
    node: String,
    hint: Hint,
    size: u64,
    /// The queue's cap, checked again by the shared store (other Miroirs fill it too).
    cap: u64,
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
    queue: Option<mpsc::Sender<Item>>,
    committer: Option<std::thread::JoinHandle<()>>,
    /// Shared store only: the thread that reads every queue's counts, and its stop flag.
    syncer: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Drop for HintStore {
    fn drop(&mut self) {
        // The committer finishes what was queued, then ends: the file is closed on return.
        self.queue.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
        if let Some((stop, syncer)) = self.syncer.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = syncer.join();
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
        Self::start(Backend::Redb(db), durable)
    }

    /// Opens the store shared through Redis at `url`, every key under `prefix`: any Miroir
    /// naming the same Redis sees and may replay every node's hints. Errors never contain the
    /// URL (it may hold a password).
    pub fn open_redis(url: &str, prefix: &str) -> Result<Self, HintError> {
        let log = RedisLog::open(url, prefix)?;
        let durable = log.backlogs()?;
        let token = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let mut store = Self::start(
            Backend::Redis {
                log: Box::new(log),
                token,
            },
            durable,
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let syncer = {
            let (inner, stop) = (store.inner.clone(), stop.clone());
            std::thread::Builder::new()
                .name("miroir-hints-sync".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        inner.sync();
                        std::thread::sleep(SYNC_EVERY);
                    }
                })
                .map_err(backend)?
        };
        store.syncer = Some((stop, syncer));
        Ok(store)
    }

    fn start(kept: Backend, durable: HashMap<String, NodeBacklog>) -> Result<Self, HintError> {
        let inner = Arc::new(Inner {
            backend: kept,
            counts: Mutex::new(Counts {
                durable,
                pending: HashMap::new(),
                heads: HashMap::new(),
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
            syncer: None,
        })
    }

    /// Whether other Miroirs share this store (Redis): a queue is then replayed by whichever
    /// Miroir holds its lease.
    pub fn shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Redis { .. })
    }

    /// The coordination board shared with the other Miroirs (see `board`); `None` for the
    /// embedded store, which no other Miroir shares.
    pub fn board(&self) -> Option<crate::board::Board<'_>> {
        match &self.inner.backend {
            Backend::Redb(_) => None,
            Backend::Redis { log, token } => Some(crate::board::Board { log, member: token }),
        }
    }

    /// The versioned marks shared with the other Miroirs (see `marks`); `None` for the
    /// embedded store.
    pub fn marks(&self) -> Option<crate::marks::Marks<'_>> {
        match &self.inner.backend {
            Backend::Redb(_) => None,
            Backend::Redis { log, .. } => Some(crate::marks::Marks { log }),
        }
    }

    /// Reads every queue's counts from Redis now rather than at the next periodic read (a
    /// mark another Miroir set a moment ago counts at once). Nothing for the embedded store.
    pub fn refresh(&self) {
        self.inner.sync();
    }

    /// Takes or renews the right to replay `queue`: always granted by the embedded store; in
    /// the shared store one Miroir at a time holds it, until it stops renewing it.
    pub fn lease(&self, queue: &str) -> Result<bool, HintError> {
        match &self.inner.backend {
            Backend::Redb(_) => Ok(true),
            Backend::Redis { log, token } => log.lease(&log.lease_key(queue), token, LEASE_MS),
        }
    }

    /// Gives `queue`'s lease back (the queue is drained, or this Miroir stops).
    pub fn release(&self, queue: &str) -> Result<(), HintError> {
        match &self.inner.backend {
            Backend::Redb(_) => Ok(()),
            Backend::Redis { log, token } => log.release(&log.lease_key(queue), token),
        }
    }

    /// Takes `scope`'s write order among Miroirs sharing the store (every Miroir's writes
    /// to an index reach each replica in one order): `false` while another holds it. Taking it
    /// also reads every queue's counts, so a write sees the hints other Miroirs kept before
    /// it. The embedded store has no other Miroir: always `true`. Held for [`ORDER_MS`]
    /// unless renewed ([`Self::renew_order`]).
    pub fn take_order(&self, scope: &str) -> Result<bool, HintError> {
        let Backend::Redis { log, token } = &self.inner.backend else {
            return Ok(true);
        };
        // Exclusive: a commit of this process cannot land between the read and its use.
        let _exclusive = self.inner.exclusive();
        let Some(durable) = log.take_order(scope, token, ORDER_MS)? else {
            return Ok(false);
        };
        self.inner.counts().durable = durable;
        Ok(true)
    }

    /// Keeps `scope`'s write order another [`ORDER_MS`]: `false` when it was lost.
    pub fn renew_order(&self, scope: &str) -> Result<bool, HintError> {
        match &self.inner.backend {
            Backend::Redb(_) => Ok(true),
            Backend::Redis { log, token } => log.renew(&log.order_key(scope), token, ORDER_MS),
        }
    }

    /// Gives `scope`'s write order back.
    pub fn release_order(&self, scope: &str) -> Result<(), HintError> {
        match &self.inner.backend {
            Backend::Redb(_) => Ok(()),
            Backend::Redis { log, token } => log.release(&log.order_key(scope), token),
        }
    }

    /// Resolves once every hint queued so far is committed (or failed): at once when none is
    /// on its way. A shared write order is given back only after this, so the next Miroir to
    /// take it sees this one's hints.
    pub fn flushed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let waiting = if self.inner.counts().pending.is_empty() {
            None
        } else {
            let (done, barrier) = oneshot::channel();
            self.queue
                .as_ref()
                .and_then(|q| q.send(Item::Barrier(done)).ok())
                .map(|()| barrier)
        };
        async move {
            if let Some(barrier) = waiting {
                let _ = barrier.await;
            }
        }
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
            .send(Item::Hint(Queued {
                node: node.to_owned(),
                hint,
                size,
                cap: cap_bytes,
                done,
            }))
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
        let db = match &self.inner.backend {
            Backend::Redb(db) => db,
            Backend::Redis { log, .. } => {
                return Ok(log.first(node)?.map(|(seq, hint)| (Seq(seq), hint)))
            }
        };
        let txn = db.begin_read().map_err(backend)?;
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

    /// Whether the hint is still waiting. The shared store answers from what it last read
    /// (hints leave a queue oldest first), without a round trip.
    pub fn contains(&self, node: &str, seq: Seq) -> bool {
        let db = match &self.inner.backend {
            Backend::Redb(db) => db,
            Backend::Redis { .. } => {
                let counts = self.inner.counts();
                return counts.backlog(node).hints > 0
                    && counts.heads.get(node).is_some_and(|head| seq.0 >= *head);
            }
        };
        let Ok(txn) = db.begin_read() else {
            return false;
        };
        let Ok(table) = txn.open_table(HINTS) else {
            return false;
        };
        table.get((node, seq.0)).ok().flatten().is_some()
    }

    /// Drops a hint (replayed, or abandoned); `false` when it was not there.
    pub fn remove(&self, node: &str, seq: Seq) -> Result<bool, HintError> {
        self.remove_as(node, seq, false)
    }

    /// [`Self::remove`] by the holder of the queue's lease, renewing it: refused with
    /// [`HintError::LeaseLost`] once another Miroir took the queue over (fencing: a replayer
    /// that stalled past its lease cannot advance a queue someone else now replays).
    pub fn remove_leased(&self, node: &str, seq: Seq) -> Result<bool, HintError> {
        self.remove_as(node, seq, true)
    }

    fn remove_as(&self, node: &str, seq: Seq, leased: bool) -> Result<bool, HintError> {
        let inner = &self.inner;
        let _exclusive = inner.exclusive();
        let mut backlog = inner.durable(node);
        let db = match &inner.backend {
            Backend::Redb(db) => db,
            Backend::Redis { log, token } => {
                let lease = leased.then_some((token.as_str(), LEASE_MS));
                let Some((removed, hints, bytes)) = log.remove(node, seq.0, lease)? else {
                    return Err(HintError::LeaseLost(node.to_owned()));
                };
                backlog.hints = hints;
                backlog.bytes = bytes;
                let mut counts = inner.counts();
                counts.durable.insert(node.to_owned(), backlog);
                if counts.heads.get(node).is_some_and(|head| *head <= seq.0) {
                    counts.heads.insert(node.to_owned(), seq.0 + 1);
                }
                return Ok(removed);
            }
        };
        let txn = db.begin_write().map_err(backend)?;
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
        let db = match &inner.backend {
            Backend::Redb(db) => db,
            Backend::Redis { log, .. } => {
                log.set_resync(node, needs_resync)?;
                inner.counts().durable.insert(node.to_owned(), backlog);
                return Ok(());
            }
        };
        let txn = db.begin_write().map_err(backend)?;
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
    fn commit_queued(&self, queued: &mpsc::Receiver<Item>) {
        while let Ok(first) = queued.recv() {
            let mut batch = Vec::new();
            let mut barrier = None;
            let mut next = Ok(first);
            while let Ok(item) = next {
                match item {
                    Item::Hint(q) => batch.push(q),
                    // Answered once what was queued before it is committed.
                    Item::Barrier(done) => {
                        barrier = Some(done);
                        break;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = queued.try_recv();
            }
            self.commit_batch(batch);
            if let Some(done) = barrier {
                let _ = done.send(());
            }
        }
    }

    fn commit_batch(&self, batch: Vec<Queued>) {
        if batch.is_empty() {
            return;
        }
        {
            let outcome = self.commit(&batch);
            for (i, q) in batch.into_iter().enumerate() {
                let answer = match &outcome {
                    Ok(seqs) => seqs[i].clone(),
                    Err(e) => Err(HintError::Backend(e.to_string())),
                };
                // The caller may have gone (its request was dropped): the hint stays kept.
                let _ = q.done.send(answer);
            }
        }
    }

    /// Commits `batch` in order: each hint's place (or why it was refused). The hints move
    /// from pending to durable in the counts at once, or leave them on failure.
    fn commit(&self, batch: &[Queued]) -> Result<Vec<Result<Seq, HintError>>, HintError> {
        let _exclusive = self.exclusive();
        let written = match &self.backend {
            Backend::Redb(db) => self.write(db, batch).map(|(first, nodes)| {
                let seqs = (0..batch.len() as u64).map(|i| Ok(Seq(first + i)));
                (seqs.collect(), nodes)
            }),
            Backend::Redis { log, .. } => append_shared(log, batch),
        };
        let mut counts = self.counts();
        for q in batch {
            counts.settle(&q.node, q.size);
        }
        let (seqs, nodes) = written?;
        for (node, backlog) in nodes {
            counts.durable.insert(node, backlog);
        }
        if matches!(self.backend, Backend::Redis { .. }) {
            for (q, seq) in batch.iter().zip(&seqs) {
                if let Ok(seq) = seq {
                    counts.heads.entry(q.node.clone()).or_insert(seq.0);
                }
            }
        }
        Ok(seqs)
    }

    /// Shared store only: reads every queue's counts and oldest hint, so hints other Miroirs
    /// keep count here too (a write to their node queues behind them).
    fn sync(&self) {
        let Backend::Redis { log, .. } = &self.backend else {
            return;
        };
        // Exclusive: a commit of this process cannot land between the read and its use.
        let _exclusive = self.exclusive();
        let Ok(durable) = log.backlogs() else {
            return;
        };
        let queues: Vec<&str> = durable
            .iter()
            .filter(|(_, b)| b.hints > 0)
            .map(|(q, _)| q.as_str())
            .collect();
        let Ok(heads) = log.heads(&queues) else {
            return;
        };
        let mut counts = self.counts();
        counts.durable = durable;
        counts.heads = heads;
    }

    /// The transaction of [`Self::commit`]: the first sequence number and each node's new
    /// durable count.
    fn write(
        &self,
        db: &Database,
        batch: &[Queued],
    ) -> Result<(u64, HashMap<String, NodeBacklog>), HintError> {
        let mut nodes: HashMap<String, NodeBacklog> = HashMap::new();
        let txn = db.begin_write().map_err(backend)?;
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

/// [`Inner::commit`] in the shared store: one script appends the batch.
type Committed = (Vec<Result<Seq, HintError>>, HashMap<String, NodeBacklog>);

fn append_shared(log: &RedisLog, batch: &[Queued]) -> Result<Committed, HintError> {
    let rows: Vec<(&str, &Hint, u64, u64)> = batch
        .iter()
        .map(|q| (q.node.as_str(), &q.hint, q.size, q.cap))
        .collect();
    let (outcomes, nodes) = log.append(&rows)?;
    let seqs = batch
        .iter()
        .zip(outcomes)
        .map(|(q, outcome)| match outcome {
            Appended::At(seq) => Ok(Seq(seq)),
            Appended::Full => Err(HintError::Full {
                node: q.node.clone(),
                cap: q.cap,
            }),
        })
        .collect();
    Ok((seqs, nodes))
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
