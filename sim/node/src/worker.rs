//! The per-node task worker: processes enqueued tasks one at a time, in Meilisearch's order,
//! waiting `task_delay` per task, and pausing while the node is stopped.

use std::sync::Arc;

use crate::apply::process;
use crate::state::Shared;

pub async fn run(shared: Arc<Shared>) {
    let mut running = shared.running.subscribe();
    loop {
        if running.wait_for(|up| *up).await.is_err() {
            return;
        }
        let next = shared.db().start_next_task();
        let Some(uid) = next else {
            shared.wake.notified().await;
            continue;
        };
        if !shared.task_delay.is_zero() {
            tokio::time::sleep(shared.task_delay).await;
        }
        // A node stopped mid-task finishes it only once it is back, like a restarted process.
        if running.wait_for(|up| *up).await.is_err() {
            return;
        }
        let injected = shared.faults.take_task_failure();
        process(&mut shared.db(), uid, injected);
    }
}
