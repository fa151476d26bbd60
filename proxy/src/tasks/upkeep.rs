//! Keeping the registry the size Meilisearch keeps its task queue. Unfinished tasks are
//! asked about in the background, oldest first, so a finished task gets its final view
//! cached even when no client asks for it (a listing then knows its status without asking
//! nodes, and the cleanup can tell it is finished). At the limit, the oldest finished tasks
//! are deleted as Meilisearch 1.50 deletes them, and a `taskDeletion` task says so.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use miroir_tasks::{Pruned, TaskQuery, MAX_TASKS, PRUNE_BATCH};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::registry::blocking;
use super::view::views;
use crate::shared::Shared;

/// How often unfinished tasks are asked about.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often while webhooks are registered: a webhook hears of a task this soon after it
/// finished, even when no client asks about it.
const WEBHOOK_INTERVAL: Duration = Duration::from_millis(200);
/// How many unfinished tasks one round asks about.
const ROUND: usize = 256;

/// How many tasks the registry keeps: Meilisearch's limit. `MIROIR_TEST_MAX_TASKS` lowers
/// it for tests; Meilisearch has no option for it, so neither has Miroir's configuration.
pub(crate) fn max_tasks() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("MIROIR_TEST_MAX_TASKS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_TASKS)
    })
}

pub struct TaskUpkeep {
    pub shared: Arc<Shared>,
}

impl TaskUpkeep {
    /// Asks about up to [`ROUND`] unfinished tasks from `cursor` on; returns where the next
    /// round starts (back at the oldest after the newest).
    async fn settle_round(&self, cursor: u64) -> u64 {
        let shared = &self.shared;
        let q = TaskQuery {
            from: Some(cursor),
            ..TaskQuery::default()
        };
        let records = match blocking(&shared.tasks, move |s| s.unsettled(&q, ROUND)).await {
            Ok(r) => r,
            Err(_) => return 0,
        };
        let next = match records.last() {
            Some(last) if records.len() == ROUND => last.uid.0 + 1,
            _ => 0,
        };
        if !records.is_empty() {
            let rt = shared.cluster.runtime();
            // Finished ones are cached by `views`; errors only mean asking again later.
            let _ = views(shared, &rt, &records, rt.node_key()).await;
        }
        next
    }

    /// Deletes the oldest finished tasks when the registry is full; `stuck` remembers a full
    /// registry with nothing to delete, so it is logged once.
    async fn prune(&self, stuck: &mut bool) {
        let now = time::OffsetDateTime::now_utc();
        let pruned = blocking(&self.shared.tasks, move |s| {
            s.prune(max_tasks(), PRUNE_BATCH, now)
        })
        .await;
        match pruned {
            Ok(Pruned::Deleted(deletion)) => {
                *stuck = false;
                let deleted = deletion
                    .details
                    .as_ref()
                    .and_then(|d| d["deletedTasks"].as_u64())
                    .unwrap_or(0);
                log::info!(target: "miroir::tasks", "The task queue is almost full. Deleted the oldest {deleted} finished tasks (task {}).", deletion.uid.0);
            }
            Ok(Pruned::NothingFinished) => {
                if !*stuck {
                    log::warn!(target: "miroir::tasks", "The task queue is almost full, but no task can be deleted yet.");
                }
                *stuck = true;
            }
            Ok(Pruned::NotFull) => *stuck = false,
            Err(e) => log::warn!(target: "miroir::tasks", "task registry cleanup: {e}"),
        }
    }
}

#[async_trait]
impl BackgroundService for TaskUpkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut cursor = 0;
        let mut stuck = false;
        loop {
            cursor = self.settle_round(cursor).await;
            self.prune(&mut stuck).await;
            let pause = if self.shared.webhooks.any() {
                WEBHOOK_INTERVAL
            } else {
                INTERVAL
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shared.task_upkeep.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
