//! A small JSON record Miroir keeps (index aliases, webhooks): in the data directory, replaced
//! atomically, and, when several Miroirs share a Redis, also on the board (see
//! `handoff::Board`), so that what a client sets through one Miroir is what every other one
//! answers with.
//!
//! Shared, a change is made by one Miroir at a time (a lease on the record), from the latest
//! generation, and published as the next one; the others install it at their next beat
//! (`shared_topology::Follower`), and the change is answered only once every live Miroir has
//! installed it, so a request sent after the answer sees it whichever Miroir gets it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use miroir_handoff::HintStore;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::durable::save_json;
use super::shared_topology::{on_board, BEAT_EVERY};

/// How long a change waits for the record's lease (another Miroir changing it).
const TURN_WAIT: Duration = Duration::from_secs(10);
/// How long an answer waits for every live Miroir to install a change.
const INSTALL_WAIT: Duration = Duration::from_secs(5);

/// Something the follower keeps in step with the board.
pub trait Synced: Send + Sync {
    /// The record's name on the board.
    fn name(&self) -> &'static str;
    /// The generation installed here.
    fn generation(&self) -> u64;
    /// Installs the board's record if it is newer.
    fn sync(&self) -> BoxFuture<'_, Result<(), String>>;
}

pub struct Record<T> {
    name: &'static str,
    path: PathBuf,
    value: ArcSwap<T>,
    generation: AtomicU64,
    /// The shared store, when several Miroirs share it.
    board: Option<Arc<HintStore>>,
    changing: tokio::sync::Mutex<()>,
}

impl<T> Record<T>
where
    T: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
{
    /// Opens `file` in `dir` (none yet: the default value); with a shared store, the board's
    /// record instead, or this file's published as its first generation. Blocking.
    pub fn open(
        dir: &Path,
        names: (&str, &'static str),
        hints: &Arc<HintStore>,
    ) -> Result<Self, String> {
        Self::open_or(dir, names, hints, T::default)
    }

    /// Like [`Record::open`], with `initial` as the value when there is none yet, saved at
    /// once (so that it stays what it was at the first start).
    pub fn open_or(
        dir: &Path,
        (file, name): (&str, &'static str),
        hints: &Arc<HintStore>,
        initial: impl FnOnce() -> T,
    ) -> Result<Self, String> {
        let path = dir.join(file);
        let mut value: T = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let value = initial();
                save_json(&path, &value)?;
                value
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut generation = 0;
        if let Some(board) = hints.board() {
            let local = serde_json::to_string(&value).map_err(|e| e.to_string())?;
            let (g, shared) = board
                .record_or_publish(name, &local)
                .map_err(|e| format!("{name} (Redis): {e}"))?;
            if shared != local {
                value =
                    serde_json::from_str(&shared).map_err(|e| format!("{name} (Redis): {e}"))?;
                save_json(&path, &value)?;
            }
            generation = g;
        }
        let board = hints.board().map(|_| hints.clone());
        Ok(Self {
            name,
            path,
            value: ArcSwap::from_pointee(value),
            generation: AtomicU64::new(generation),
            board,
            changing: tokio::sync::Mutex::new(()),
        })
    }

    /// The value as it is now; a request keeps what it loaded.
    pub fn load(&self) -> Arc<T> {
        self.value.load_full()
    }

    /// Takes the one turn to change the record (across Miroirs when shared), from its latest
    /// value: checks made under it hold until [`Turn::save`].
    pub async fn turn(&self) -> Result<Turn<'_, T>, String> {
        let local = self.changing.lock().await;
        let Some(hints) = &self.board else {
            return Ok(Turn {
                record: self,
                _local: local,
                lease: None,
            });
        };
        let key = format!("record:{}", self.name);
        let deadline = tokio::time::Instant::now() + TURN_WAIT;
        loop {
            let (store, k) = (hints.clone(), key.clone());
            let taken = tokio::task::spawn_blocking(move || store.lease(&k))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if taken {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("another Miroir is changing the {}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let turn = Turn {
            record: self,
            _local: local,
            lease: Some((hints.clone(), key)),
        };
        self.install_newer().await?;
        Ok(turn)
    }

    /// Installs the board's record when it is newer than the one here.
    async fn install_newer(&self) -> Result<(), String> {
        let Some(hints) = &self.board else {
            return Ok(());
        };
        let name = self.name;
        let Some((generation, value)) = on_board(hints, move |b| b.record(name)).await? else {
            return Ok(());
        };
        if generation <= self.generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = self.path.clone();
        let value = tokio::task::spawn_blocking(move || {
            let value: T = serde_json::from_str(&value).map_err(|e| e.to_string())?;
            save_json(&path, &value)?;
            Ok::<_, String>(value)
        })
        .await
        .map_err(|e| e.to_string())??;
        self.install(value, generation);
        Ok(())
    }

    fn install(&self, value: T, generation: u64) {
        // Generations only grow: a slower install of an older one changes nothing.
        if self.generation.fetch_max(generation, Ordering::AcqRel) <= generation {
            self.value.store(Arc::new(value));
        }
    }
}

/// A change of a record in progress.
pub struct Turn<'a, T> {
    record: &'a Record<T>,
    _local: tokio::sync::MutexGuard<'a, ()>,
    lease: Option<(Arc<HintStore>, String)>,
}

impl<T> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        let Some((hints, key)) = self.lease.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                let _ = hints.release(&key);
            });
        }
    }
}

impl<T> Turn<'_, T>
where
    T: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
{
    /// The value the change starts from.
    pub fn current(&self) -> Arc<T> {
        self.record.load()
    }

    /// Saves `next` (off the async workers; with a shared store, as the board's next
    /// generation, then waits for every live Miroir to install it), then makes it what
    /// requests load here: a restart never finds less than a request saw.
    pub async fn save(self, next: T) -> Result<(), String> {
        let record = self.record;
        let next = Arc::new(next);
        let (path, saved) = (record.path.clone(), next.clone());
        let json = tokio::task::spawn_blocking(move || {
            save_json(&path, &*saved)?;
            serde_json::to_string(&*saved).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let Some(hints) = &record.board else {
            record.value.store(next);
            return Ok(());
        };
        let (name, base) = (record.name, record.generation.load(Ordering::Acquire));
        let generation = on_board(hints, move |b| b.put_record(name, base, &json))
            .await?
            .map_err(|current| {
                format!("the {name} changed in another Miroir meanwhile (generation {current})")
            })?;
        record.generation.fetch_max(generation, Ordering::AcqRel);
        record.value.store(next);
        drop(self);
        wait_installed(hints, name, generation).await;
        Ok(())
    }
}

/// Waits (bounded) until every live Miroir has installed `generation` of record `name`.
pub async fn wait_installed(hints: &Arc<HintStore>, name: &'static str, generation: u64) {
    let deadline = tokio::time::Instant::now() + INSTALL_WAIT;
    while tokio::time::Instant::now() < deadline {
        let Ok(members) = on_board(hints, |b| b.members()).await else {
            return;
        };
        if members
            .iter()
            .all(|(_, installed)| installed.get(name).is_some_and(|g| *g >= generation))
        {
            return;
        }
        tokio::time::sleep(BEAT_EVERY / 4).await;
    }
    log::warn!(target: "miroir::topology", "a Miroir has not installed {name} generation {generation} after {INSTALL_WAIT:?}; it will at its next beat");
}

impl<T> Synced for Record<T>
where
    T: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.install_newer())
    }
}
