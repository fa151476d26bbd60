//! The durable record of deletions, kept in `deletions.redb` beside the hint store (or, when
//! several Miroirs share a Redis, as versioned marks there, so that anti-entropy in any
//! Miroir knows every Miroir's deletions) for `anti_entropy.deletion_retention`: by id
//! (index, id → version), whole index (index → the latest clear or index deletion) and by
//! filter (index, version → filter). A copy older than a deletion that covers it is a
//! deletion its replica missed, not an insert the others missed. Commits are fsynced off the
//! async workers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use miroir_handoff::{HintStore, Marks};
use redb::{Database, ReadableDatabase, TableDefinition};

const IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("ids");
const CLEARS: TableDefinition<&str, u64> = TableDefinition::new("clears");
const FILTERS: TableDefinition<(&str, u64), &str> = TableDefinition::new("filters");

#[derive(Clone)]
pub struct Deletions {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<Database>),
    /// Marks in the Redis several Miroirs share (`ids:<index>`, `clears`,
    /// `filters:<index>`).
    Shared(Arc<HintStore>),
}

/// What the record says about some ids of one index.
#[derive(Debug, Default)]
pub struct Evidence {
    /// The latest deletion of each id that has one.
    pub ids: HashMap<String, u64>,
    /// The latest clear (or deletion) of the whole index.
    pub cleared: Option<u64>,
    /// Deletions by filter, oldest first: (version, filter as JSON).
    pub filters: Vec<(u64, String)>,
}

impl Evidence {
    /// The latest deletion that certainly covers `id`.
    pub fn deleted_at(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied().max(self.cleared)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Deletions {
    pub fn open(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let db = Database::create(path).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        {
            txn.open_table(IDS).map_err(err)?;
            txn.open_table(CLEARS).map_err(err)?;
            txn.open_table(FILTERS).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(Self {
            backend: Backend::Local(Arc::new(db)),
        })
    }

    /// The record several Miroirs share through `hints`' Redis.
    pub fn shared(hints: Arc<HintStore>) -> Self {
        Self {
            backend: Backend::Shared(hints),
        }
    }

    /// Runs `local` on the redb file or `shared` on the Redis marks, off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        local: impl FnOnce(&Database) -> Result<T, String> + Send + 'static,
        shared: impl FnOnce(&Marks<'_>) -> Result<T, miroir_handoff::HintError> + Send + 'static,
    ) -> Result<T, String> {
        match &self.backend {
            Backend::Local(db) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || local(&db))
                    .await
                    .map_err(err)?
            }
            Backend::Shared(hints) => {
                let hints = hints.clone();
                tokio::task::spawn_blocking(move || {
                    let marks = hints.marks().ok_or("the hint store is not shared")?;
                    shared(&marks).map_err(err)
                })
                .await
                .map_err(err)?
            }
        }
    }

    pub async fn record_ids(
        &self,
        index: &str,
        ids: Vec<String>,
        version: u64,
    ) -> Result<(), String> {
        let (index, name) = (index.to_owned(), format!("ids:{index}"));
        let marked = ids.clone();
        self.blocking(
            move |db| {
                let txn = db.begin_write().map_err(err)?;
                {
                    let mut table = txn.open_table(IDS).map_err(err)?;
                    for id in &ids {
                        table
                            .insert((index.as_str(), id.as_str()), version)
                            .map_err(err)?;
                    }
                }
                txn.commit().map_err(err)
            },
            move |m| {
                let ids: Vec<&str> = marked.iter().map(String::as_str).collect();
                m.mark(&name, &ids, version)
            },
        )
        .await
    }

    pub async fn record_clear(&self, index: &str, version: u64) -> Result<(), String> {
        let index = index.to_owned();
        let marked = index.clone();
        self.blocking(
            move |db| {
                let txn = db.begin_write().map_err(err)?;
                {
                    let mut table = txn.open_table(CLEARS).map_err(err)?;
                    table.insert(index.as_str(), version).map_err(err)?;
                    // Older records of single ids are covered by the clear.
                    let mut ids = txn.open_table(IDS).map_err(err)?;
                    ids.retain_in(
                        (index.as_str(), "")..(index.as_str(), "\u{10ffff}"),
                        |_, v| v > version,
                    )
                    .map_err(err)?;
                }
                txn.commit().map_err(err)
            },
            move |m| {
                m.mark("clears", &[marked.as_str()], version)?;
                m.drop_up_to(&format!("ids:{marked}"), version)
            },
        )
        .await
    }

    pub async fn record_filter(
        &self,
        index: &str,
        filter: String,
        version: u64,
    ) -> Result<(), String> {
        let (index, name) = (index.to_owned(), format!("filters:{index}"));
        // A member per deletion: its version, then the filter.
        let member = format!("{version}\n{filter}");
        self.blocking(
            move |db| {
                let txn = db.begin_write().map_err(err)?;
                {
                    let mut table = txn.open_table(FILTERS).map_err(err)?;
                    table
                        .insert((index.as_str(), version), filter.as_str())
                        .map_err(err)?;
                }
                txn.commit().map_err(err)
            },
            move |m| m.mark(&name, &[member.as_str()], version),
        )
        .await
    }

    /// What is recorded about `ids` of `index`.
    pub async fn evidence(&self, index: &str, ids: Vec<String>) -> Result<Evidence, String> {
        let (index, asked) = (index.to_owned(), index.to_owned());
        let wanted = ids.clone();
        self.blocking(
            move |db| {
                let txn = db.begin_read().map_err(err)?;
                let mut evidence = Evidence::default();
                let table = txn.open_table(IDS).map_err(err)?;
                for id in ids {
                    if let Some(v) = table.get((index.as_str(), id.as_str())).map_err(err)? {
                        evidence.ids.insert(id, v.value());
                    }
                }
                let clears = txn.open_table(CLEARS).map_err(err)?;
                evidence.cleared = clears.get(index.as_str()).map_err(err)?.map(|v| v.value());
                let filters = txn.open_table(FILTERS).map_err(err)?;
                for row in filters
                    .range((index.as_str(), 0)..=(index.as_str(), u64::MAX))
                    .map_err(err)?
                {
                    let (key, filter) = row.map_err(err)?;
                    evidence
                        .filters
                        .push((key.value().1, filter.value().to_owned()));
                }
                Ok(evidence)
            },
            move |m| {
                let mut evidence = Evidence::default();
                let ids: Vec<&str> = wanted.iter().map(String::as_str).collect();
                for (id, version) in ids.iter().zip(m.versions(&format!("ids:{asked}"), &ids)?) {
                    if let Some(v) = version {
                        evidence.ids.insert((*id).to_owned(), v);
                    }
                }
                evidence.cleared = m.versions("clears", &[asked.as_str()])?.pop().flatten();
                for (member, version) in m.all(&format!("filters:{asked}"))? {
                    if let Some((_, filter)) = member.split_once('\n') {
                        evidence.filters.push((version, filter.to_owned()));
                    }
                }
                Ok(evidence)
            },
        )
        .await
    }

    /// Forgets deletions older than `cutoff` (a version): past the retention, a replica that
    /// missed them has been compared and repaired many times over.
    pub async fn prune(&self, cutoff: u64) -> Result<(), String> {
        let shared = move |m: &Marks<'_>| {
            let Some(below) = cutoff.checked_sub(1) else {
                return Ok(());
            };
            for name in m.names_marked()? {
                m.drop_up_to(&name, below)?;
            }
            Ok(())
        };
        self.blocking(
            move |db| {
                let txn = db.begin_write().map_err(err)?;
                {
                    txn.open_table(IDS)
                        .map_err(err)?
                        .retain(|_, v| v >= cutoff)
                        .map_err(err)?;
                    txn.open_table(CLEARS)
                        .map_err(err)?
                        .retain(|_, v| v >= cutoff)
                        .map_err(err)?;
                    txn.open_table(FILTERS)
                        .map_err(err)?
                        .retain(|k, _| k.1 >= cutoff)
                        .map_err(err)?;
                }
                txn.commit().map_err(err)
            },
            shared,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deletions_are_found_until_pruned_and_a_clear_covers_older_ids() {
        let dir = std::env::temp_dir().join(format!("miroir-deletions-{}", std::process::id()));
        let store = Deletions::open(&dir.join("deletions.redb")).unwrap();
        store
            .record_ids("i", vec!["1".into(), "2".into()], 10)
            .await
            .unwrap();
        store.record_ids("j", vec!["1".into()], 11).await.unwrap();
        store.record_clear("i", 20).await.unwrap();
        store.record_ids("i", vec!["3".into()], 30).await.unwrap();
        store
            .record_filter("i", "\"a = 1\"".into(), 40)
            .await
            .unwrap();
        let e = store
            .evidence("i", vec!["1".into(), "3".into(), "9".into()])
            .await
            .unwrap();
        assert_eq!(e.deleted_at("1"), Some(20));
        assert_eq!(e.deleted_at("3"), Some(30));
        assert_eq!(e.deleted_at("9"), Some(20));
        assert_eq!(e.filters, vec![(40, "\"a = 1\"".to_owned())]);
        let j = store.evidence("j", vec!["1".into()]).await.unwrap();
        assert_eq!(j.deleted_at("1"), Some(11));
        store.prune(25).await.unwrap();
        let e = store
            .evidence("i", vec!["1".into(), "3".into()])
            .await
            .unwrap();
        assert_eq!((e.deleted_at("1"), e.deleted_at("3")), (None, Some(30)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
