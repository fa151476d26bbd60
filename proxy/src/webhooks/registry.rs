//! The registered webhooks, kept in Miroir's data directory (`webhooks.json`; with several
//! Miroirs, in Redis too, see `cluster::shared_record`) and read without a lock by the
//! delivery. A change is saved before it is visible: a webhook a client was told about
//! survives a restart, and is what every Miroir lists.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use miroir_handoff::HintStore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cluster::shared_record::{Record, Synced};

/// One webhook: where to POST finished tasks, and the headers to send with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Webhooks by uuid: Meilisearch lists them in uuid order.
pub type Hooks = BTreeMap<Uuid, Webhook>;

pub struct Registry {
    record: Arc<Record<Hooks>>,
}

impl Registry {
    /// The webhooks saved under `dir` (or shared through `hints`), or none.
    pub fn open(dir: &Path, hints: &Arc<HintStore>) -> Result<Self, String> {
        let record = Record::open(dir, ("webhooks.json", "webhooks"), hints)
            .map_err(|e| format!("webhooks: {e}"))?;
        Ok(Self {
            record: Arc::new(record),
        })
    }

    pub fn current(&self) -> Arc<Hooks> {
        self.record.load()
    }

    pub fn is_empty(&self) -> bool {
        self.record.load().is_empty()
    }

    /// The record, for the follower that keeps it in step with other Miroirs.
    pub fn synced(&self) -> Arc<dyn Synced> {
        self.record.clone()
    }

    /// Applies `change` to a copy of the webhooks, saves the copy and makes it current. An
    /// `Err` from `change` changes nothing; `failed_save` says why the copy could not be
    /// saved (or the turn to change it not taken).
    pub async fn change<T, E>(
        &self,
        change: impl FnOnce(&mut Hooks) -> Result<T, E>,
        failed_save: impl Fn(String) -> E,
    ) -> Result<T, E> {
        let turn = self.record.turn().await.map_err(&failed_save)?;
        let mut next = Hooks::clone(&turn.current());
        let out = change(&mut next)?;
        turn.save(next).await.map_err(failed_save)?;
        Ok(out)
    }
}
