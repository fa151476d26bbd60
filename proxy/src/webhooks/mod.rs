//! Webhooks: registered through `/webhooks` like Meilisearch's, and called once per Miroir
//! task (its aggregated view), never once per node. Nodes keep no webhooks of their own.
//!
//! | module | job |
//! |---|---|
//! | `registry` | the webhooks, durable in the data directory |
//! | `api` | the `/webhooks` routes, with Meilisearch's limits, redaction and errors |
//! | `delivery` | the background calls, and which addresses may be called |

mod api;
mod delivery;
mod registry;

use std::path::Path;
use std::sync::{Arc, Mutex};

use miroir_handoff::HintStore;
use serde_json::Value;
use tokio::sync::mpsc;

pub use api::{create, delete, get, list, update};
pub use delivery::Delivery;
pub use registry::Registry;

use crate::telemetry::metrics;

/// Groups of finished tasks waiting to be sent. Past this, a group is dropped and counted:
/// the webhooks are far behind, and task views stay readable through `/tasks`.
const QUEUE: usize = 1024;

pub struct Webhooks {
    pub registry: Registry,
    queue: mpsc::Sender<Vec<Value>>,
    /// Taken once by the delivery service.
    inbox: Mutex<Option<mpsc::Receiver<Vec<Value>>>>,
}

impl Webhooks {
    pub fn open(dir: &Path, hints: &Arc<HintStore>) -> Result<Self, String> {
        let (queue, inbox) = mpsc::channel(QUEUE);
        Ok(Self {
            registry: Registry::open(dir, hints)?,
            queue,
            inbox: Mutex::new(Some(inbox)),
        })
    }

    /// Whether any webhook is registered: finished tasks are then worth noticing quickly.
    pub fn any(&self) -> bool {
        !self.registry.is_empty()
    }

    /// Tasks that just finished, in uid order, as clients see them.
    pub fn finished(&self, views: Vec<Value>) {
        if views.is_empty() || !self.any() {
            return;
        }
        if self.queue.try_send(views).is_err() {
            metrics::get()
                .webhook_calls
                .with_label_values(&["dropped"])
                .inc();
            log::warn!(target: "miroir::webhooks", "webhook calls are far behind: finished tasks were not sent");
        }
    }

    fn take_inbox(&self) -> Option<mpsc::Receiver<Vec<Value>>> {
        self.inbox.lock().ok()?.take()
    }
}
