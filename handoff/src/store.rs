//! The embedded hint store: one redb file, a FIFO of hints per node, and per node the
//! backlog (hints, bytes) and whether the node needs a full resync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

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

pub struct HintStore {
    db: Database,
    /// Mirror of the `BACKLOG` table: the write path asks it on every request.
    backlog: Mutex<HashMap<String, NodeBacklog>>,
    /// Held by each change from reading a node's backlog to updating the mirror after the
    /// commit: redb serializes write transactions, but not the read before one nor the
    /// mirror's update after, so without it concurrent changes would lose counts.
    writer: Mutex<()>,
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
        let mut backlog = HashMap::new();
        {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(BACKLOG).map_err(backend)?;
            for row in table.iter().map_err(backend)? {
                let (node, value) = row.map_err(backend)?;
                let (hints, bytes, resync) = value.value();
                backlog.insert(
                    node.value().to_owned(),
                    NodeBacklog {
                        hints,
                        bytes,
                        needs_resync: resync != 0,
                    },
                );
            }
        }
        Ok(Self {
            db,
            backlog: Mutex::new(backlog),
            writer: Mutex::new(()),
        })
    }

    fn exclusive(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeBacklog>> {
        // A panic while holding this lock cannot leave the map half-updated (plain inserts).
        self.backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `node` has waiting.
    pub fn backlog(&self, node: &str) -> NodeBacklog {
        self.cached().get(node).copied().unwrap_or_default()
    }

    /// Every node with hints waiting or a resync needed.
    pub fn backlogs(&self) -> Vec<(String, NodeBacklog)> {
        let mut all: Vec<_> = self
            .cached()
            .iter()
            .filter(|(_, b)| b.hints > 0 || b.needs_resync)
            .map(|(n, b)| (n.clone(), *b))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
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

    /// Queues `hint` behind `node`'s other hints, durably. Past `cap_bytes`, or once the node
    /// needs a resync anyway, nothing is stored and [`HintError::Full`] says so.
    pub fn append(&self, node: &str, hint: &Hint, cap_bytes: u64) -> Result<Seq, HintError> {
        let size = hint.size();
        let _exclusive = self.exclusive();
        let mut backlog = self.backlog(node);
        if backlog.needs_resync || backlog.bytes.saturating_add(size) > cap_bytes {
            return Err(HintError::Full {
                node: node.to_owned(),
                cap: cap_bytes,
            });
        }
        let txn = self.db.begin_write().map_err(backend)?;
        let seq = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let seq = meta
                .get(NEXT_SEQ)
                .map_err(backend)?
                .map_or(1, |v| v.value());
            meta.insert(NEXT_SEQ, seq + 1).map_err(backend)?;
            let mut hints = txn.open_table(HINTS).map_err(backend)?;
            let header = hint.encoded_header();
            let mut value = hints
                .insert_reserve((node, seq), header.len() + hint.body_len())
                .map_err(backend)?;
            hint.encode_into(&header, value.as_mut());
            drop(value);
            backlog.hints += 1;
            backlog.bytes += size;
            let mut table = txn.open_table(BACKLOG).map_err(backend)?;
            Self::write_backlog(&mut table, node, backlog)?;
            seq
        };
        txn.commit().map_err(backend)?;
        self.cached().insert(node.to_owned(), backlog);
        Ok(Seq(seq))
    }

    /// The oldest hint waiting for `node`.
    pub fn first(&self, node: &str) -> Result<Option<(Seq, Hint)>, HintError> {
        let txn = self.db.begin_read().map_err(backend)?;
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
        let Ok(txn) = self.db.begin_read() else {
            return false;
        };
        let Ok(table) = txn.open_table(HINTS) else {
            return false;
        };
        table.get((node, seq.0)).ok().flatten().is_some()
    }

    /// Drops a hint (replayed, or abandoned); `false` when it was not there.
    pub fn remove(&self, node: &str, seq: Seq) -> Result<bool, HintError> {
        let _exclusive = self.exclusive();
        let mut backlog = self.backlog(node);
        let txn = self.db.begin_write().map_err(backend)?;
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
                    Self::write_backlog(&mut table, node, backlog)?;
                    true
                }
                None => false,
            }
        };
        txn.commit().map_err(backend)?;
        if removed {
            self.cached().insert(node.to_owned(), backlog);
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
        let _exclusive = self.exclusive();
        let mut backlog = self.backlog(node);
        backlog.needs_resync = needs_resync;
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut table = txn.open_table(BACKLOG).map_err(backend)?;
            Self::write_backlog(&mut table, node, backlog)?;
        }
        txn.commit().map_err(backend)?;
        self.cached().insert(node.to_owned(), backlog);
        Ok(())
    }
}
