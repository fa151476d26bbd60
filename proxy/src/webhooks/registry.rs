//! The registered webhooks, kept in Miroir's data directory (`webhooks.json`) and read
//! without a lock by the delivery. A change is saved before it is visible: a webhook a client
//! was told about survives a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cluster::durable::save_json;

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
    path: PathBuf,
    hooks: ArcSwap<Hooks>,
    /// One change at a time, so a save never overtakes an earlier one.
    edit: tokio::sync::Mutex<()>,
}

impl Registry {
    /// The webhooks saved under `dir`, or none.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let path = dir.join("webhooks.json");
        let hooks = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("webhooks {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Hooks::new(),
            Err(e) => return Err(format!("webhooks {}: {e}", path.display())),
        };
        Ok(Self {
            path,
            hooks: ArcSwap::from_pointee(hooks),
            edit: tokio::sync::Mutex::new(()),
        })
    }

    pub fn current(&self) -> Arc<Hooks> {
        self.hooks.load_full()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.load().is_empty()
    }

    /// Applies `change` to a copy of the webhooks, saves the copy and makes it current. An
    /// `Err` from `change` changes nothing.
    pub async fn change<T, E>(
        &self,
        change: impl FnOnce(&mut Hooks) -> Result<T, E>,
        failed_save: impl FnOnce(String) -> E,
    ) -> Result<T, E> {
        let _one = self.edit.lock().await;
        let mut next = Hooks::clone(&self.hooks.load());
        let out = change(&mut next)?;
        let path = self.path.clone();
        let next = Arc::new(next);
        let saved = next.clone();
        let result = tokio::task::spawn_blocking(move || save_json(&path, &*saved))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match result {
            Ok(()) => {
                self.hooks.store(next);
                Ok(out)
            }
            Err(e) => Err(failed_save(e)),
        }
    }
}
