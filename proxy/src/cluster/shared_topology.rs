//! The applied topology when several Miroirs share a Redis (`task_store.backend = "redis"`):
//! one record on the board (`handoff::Board`), its generation bumped by every commit, which
//! each Miroir installs as soon as it sees it (every [`BEAT_EVERY`]) and at once when
//! another Miroir holds the fleet's writes to change where they go (see `writes_held`).
//! A commit derived from an older generation than the record's is refused, so two Miroirs
//! never overwrite each other's change; one Miroir at a time carries a change out (the
//! `topology` job lease, see `fleet::service`), and another resumes it from the record when
//! that one dies.
//!
//! With the embedded store nothing here runs: the topology is this process's own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use miroir_handoff::{Board, HintError, HintStore};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::shared_record::Synced;
use super::topology::{Topology, TopologyFile};
use super::{Cluster, Draft};

/// The record's name on the board.
const RECORD: &str = "topology";
/// Between two beats: how late a Miroir may install a generation it was not asked to hold
/// its writes for (a read cut over, a change started), and notice a closed gate.
pub const BEAT_EVERY: Duration = Duration::from_millis(100);
/// How long [`all_installed`] waits for a Miroir that beats but lags.
const ALL_INSTALLED_WAIT: Duration = Duration::from_secs(10);
/// Between two looks at a closed gate, writes held.
const GATE_POLL: Duration = Duration::from_millis(5);

/// Runs `f` on the board off the async workers (the Redis client blocks). `Err` when the
/// store is not shared or Redis does not answer.
pub async fn on_board<T: Send + 'static>(
    hints: &Arc<HintStore>,
    f: impl FnOnce(&Board<'_>) -> Result<T, HintError> + Send + 'static,
) -> Result<T, String> {
    let store = hints.clone();
    tokio::task::spawn_blocking(move || {
        let board = store
            .board()
            .ok_or_else(|| "the task store is not shared".to_owned())?;
        f(&board).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// At startup, with a shared store: the shared topology and its generation; on the first
/// start of the first Miroir, `local` becomes generation 1. Blocking. `None` when the store
/// is not shared.
pub fn open(hints: &HintStore, local: &Topology) -> Result<Option<(Topology, u64)>, String> {
    let Some(board) = hints.board() else {
        return Ok(None);
    };
    let fail = |e: HintError| format!("shared topology (Redis): {e}");
    // A member from now on, before the record is read: a Miroir changing where writes go
    // waits for this one to hold its writes (or to stop beating), so none of its writes can
    // use a placement older than what it reads here.
    board.beat(&[(RECORD, 0)], &[]).map_err(fail)?;
    let local = serde_json::to_string(local).map_err(|e| e.to_string())?;
    let (generation, value) = board.record_or_publish(RECORD, &local).map_err(fail)?;
    let topology: Topology =
        serde_json::from_str(&value).map_err(|e| format!("shared topology (Redis): {e}"))?;
    Ok(Some((topology, generation)))
}

/// Why a topology could not be committed.
#[derive(Debug)]
pub enum CommitError {
    /// The data directory or Redis could not take it.
    Store(String),
    /// Another Miroir committed since it was drafted.
    Moved { current: u64, base: u64 },
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Store(why) => f.write_str(why),
            Self::Moved { current, base } => write!(
                f,
                "another Miroir changed the topology meanwhile (generation {current}; this \
                 change was made from {base})"
            ),
        }
    }
}

/// Writes `draft` as the next generation of the shared record: `Ok(None)` with the
/// embedded store, the new generation otherwise. Refused when the record moved on since the
/// draft was taken (another Miroir committed meanwhile).
pub async fn publish(cluster: &Cluster, draft: &Draft) -> Result<Option<u64>, CommitError> {
    if !cluster.hints.shared() {
        return Ok(None);
    }
    let value =
        serde_json::to_string(&draft.topology).map_err(|e| CommitError::Store(e.to_string()))?;
    let base = draft.base;
    match on_board(&cluster.hints, move |b| b.put_record(RECORD, base, &value))
        .await
        .map_err(CommitError::Store)?
    {
        Ok(generation) => Ok(Some(generation)),
        Err(current) => Err(CommitError::Moved { current, base }),
    }
}

/// Installs the shared record when it is newer than what this Miroir has; saves it in the
/// data directory too, for whoever reads the file.
pub async fn sync(cluster: &Cluster) -> Result<(), String> {
    let record = on_board(&cluster.hints, |b| b.record(RECORD)).await?;
    let Some((generation, value)) = record else {
        return Ok(());
    };
    if generation <= cluster.topology_generation() {
        return Ok(());
    }
    let dir = cluster.runtime().config.data_dir.clone();
    let (topology, placements) = tokio::task::spawn_blocking(move || {
        let topology: Topology = serde_json::from_str(&value).map_err(|e| e.to_string())?;
        let placements = topology.placements()?;
        TopologyFile::new(&dir).save(&topology)?;
        Ok::<_, String>((topology, placements))
    })
    .await
    .map_err(|e| e.to_string())??;
    let changing = topology.change.is_some();
    if cluster.install_topology((topology, placements), generation) {
        log::info!(target: "miroir::topology", "installed shared topology generation {generation}");
        if changing {
            // This Miroir may be the one to carry it out.
            cluster.change.wake.notify_one();
        }
    }
    Ok(())
}

/// Waits until every live Miroir has installed `generation` (at once with the embedded
/// store): before old owners drop what they no longer own, no Miroir still reads them.
pub async fn all_installed(cluster: &Cluster, generation: u64) -> Result<(), String> {
    if !cluster.hints.shared() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + ALL_INSTALLED_WAIT;
    loop {
        let members = on_board(&cluster.hints, |b| b.members()).await?;
        let behind: Vec<String> = members
            .into_iter()
            .filter(|(_, installed)| installed.get(RECORD).is_none_or(|g| *g < generation))
            .map(|(m, _)| m)
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "Miroir {} has not installed topology generation {generation} yet",
                behind.join(", ")
            ));
        }
        tokio::time::sleep(BEAT_EVERY).await;
    }
}

/// Every Miroir sharing a Redis runs this: it beats, installs each newer generation of the
/// topology and of the other shared records, and holds its writes while another Miroir holds
/// the fleet's.
pub struct Follower {
    pub cluster: Arc<Cluster>,
    /// The other records kept in step (aliases, webhooks).
    pub records: Vec<Arc<dyn Synced>>,
}

impl Follower {
    fn mine(&self, holder: &str) -> bool {
        self.cluster
            .hints
            .board()
            .is_some_and(|b| holder.starts_with(&format!("{}/", b.member())))
    }

    /// One beat: each record's generation on the board (the topology first), and another
    /// Miroir's closed gate, if any.
    async fn beat(&self) -> Result<(Vec<u64>, Option<String>), String> {
        let mut installed = vec![(RECORD, self.cluster.topology_generation())];
        installed.extend(self.records.iter().map(|r| (r.name(), r.generation())));
        let beat = on_board(&self.cluster.hints, move |b| {
            let names: Vec<&str> = installed.iter().map(|(n, _)| *n).collect();
            b.beat(&installed, &names)
        })
        .await?;
        let gate = beat.gate.filter(|h| !self.mine(h));
        Ok((beat.generations, gate))
    }

    /// Installs every record the board holds newer than here.
    async fn install_newer(&self, generations: &[u64]) {
        if generations.first().copied().unwrap_or(0) > self.cluster.topology_generation() {
            if let Err(e) = sync(&self.cluster).await {
                log::warn!(target: "miroir::topology", "cannot install the shared topology: {e}");
            }
        }
        self.install_records(generations).await;
    }

    /// Installs the records other than the topology that the board holds newer than here
    /// (also while writes are held: a change another Miroir waits on must not wait for the
    /// gate to open).
    async fn install_records(&self, generations: &[u64]) {
        for (record, board) in self.records.iter().zip(generations.iter().skip(1)) {
            if *board > record.generation() {
                if let Err(e) = record.sync().await {
                    log::warn!(target: "miroir::topology", "cannot install the shared {}: {e}", record.name());
                }
            }
        }
    }

    /// Holds this Miroir's writes while another keeps the gate closed: once the writes in
    /// flight are done, says so, and lets writes go again only after installing what the
    /// holder committed meanwhile. While Redis does not answer, writes stay held: whether the
    /// placement changed is unknown.
    async fn hold_for(&self, mut holder: String) {
        let _held = self.cluster.write_gate.write().await;
        let mut acked = None;
        loop {
            if acked.as_ref() != Some(&holder) {
                let h = holder.clone();
                if on_board(&self.cluster.hints, move |b| b.ack_gate(&h))
                    .await
                    .is_ok()
                {
                    acked = Some(holder.clone());
                }
            }
            tokio::time::sleep(GATE_POLL).await;
            match self.beat().await {
                Ok((generations, Some(next))) => {
                    holder = next;
                    self.install_records(&generations).await;
                }
                Ok((_, None)) => break,
                Err(_) => {}
            }
        }
        while let Err(e) = sync(&self.cluster).await {
            log::warn!(target: "miroir::topology", "writes held until the shared topology can be read: {e}");
            tokio::time::sleep(BEAT_EVERY).await;
        }
    }
}

#[async_trait]
impl BackgroundService for Follower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !self.cluster.hints.shared() {
            return;
        }
        let mut failing = false;
        loop {
            match self.beat().await {
                Ok((_, Some(holder))) => self.hold_for(holder).await,
                Ok((generations, None)) => {
                    self.install_newer(&generations).await;
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        log::warn!(target: "miroir::topology", "cannot reach the shared topology: {e}");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(BEAT_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
