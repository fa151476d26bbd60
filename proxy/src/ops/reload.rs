//! Hot reload: on SIGHUP, and when the file's contents change (polled once a second), the
//! file is loaded and validated; a valid one replaces the running snapshot atomically, an
//! invalid one is logged and counted and the old snapshot keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::cluster::Cluster;
use crate::telemetry::{log_format, logging, metrics};

pub struct Reloader {
    pub cluster: Arc<Cluster>,
    pub path: PathBuf,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        generation: u64,
        restart_required: Vec<&'static str>,
    },
    Unchanged,
    Rejected(String),
}

impl Reloader {
    pub fn reload(&self) -> Outcome {
        let m = metrics::get();
        let config = match crate::server::load_config(&self.path) {
            Ok(c) => c,
            Err(e) => {
                m.config_reloads.with_label_values(&["rejected"]).inc();
                log::error!(target: "miroir::reload", "rejected {}; the running configuration stays:\n{e}", self.path.display());
                return Outcome::Rejected(e);
            }
        };
        let old = self.cluster.runtime();
        if *old.config == config {
            return Outcome::Unchanged;
        }
        let restart_required = miroir_conf::restart_required(&old.config, &config);
        logging::init(
            log_format(&config),
            logging::level_from_str(config.log.level.as_str()),
        );
        crate::cluster::topology::report_staged(&config, &self.cluster.topology());
        let rt = self.cluster.install(config);
        m.config_reloads.with_label_values(&["applied"]).inc();
        log::info!(target: "miroir::reload", "applied {} (generation {})", self.path.display(), rt.generation);
        if !restart_required.is_empty() {
            log::warn!(
                target: "miroir::reload",
                "these changes take effect only after a restart: {}",
                restart_required.join(", ")
            );
        }
        Outcome::Applied {
            generation: rt.generation,
            restart_required,
        }
    }
}

fn file_stamp(path: &PathBuf) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!(target: "miroir::reload", "cannot listen for SIGHUP: {e}");
                None
            }
        };
        // Unknown at first: a file changed between startup and this service's start (before
        // its SIGHUP handler existed) is still noticed on the first tick; an unchanged one
        // reloads to `Unchanged`.
        let mut last = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let by_signal = tokio::select! {
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => true,
                _ = tick.tick() => false,
                _ = shutdown.changed() => return,
            };
            let now = file_stamp(&self.path);
            if by_signal || now != last {
                last = now;
                if let Outcome::Applied { .. } = self.reload() {
                    // A wider `shards` applies to the next index created, not a while later.
                    if let Err(e) = crate::fleet::widen(&self.cluster).await {
                        log::warn!(target: "miroir::topology", "widening the placement: {e}");
                    }
                }
            }
        }
    }
}
