//! An `Idempotency-Key` taken before its write reaches a node: of several requests with one
//! key, in this process or in another Miroir sharing the task store, one is sent and the
//! others answer with its task.

use std::time::{Duration, Instant};

use miroir_filters::error::{Code, MiroirError};
use miroir_tasks::{Claim, Idempotency, TaskUid};

use super::record::key_reused;
use crate::cluster::Runtime;
use crate::request::Reply;
use crate::shared::Shared;
use crate::tasks::{self, registry::blocking};

/// How often a request asks again about a key another Miroir holds.
const POLL: Duration = Duration::from_millis(50);

/// What to do with a write under an idempotency key.
pub(super) enum Turn {
    /// This request holds the key: send it (and `release` it when no task is recorded).
    Send,
    /// The key was used: this is the answer.
    Answer(Reply),
}

/// Waits for the key: held by this request, or used by another one (whose answer is
/// returned). A holder keeps the key at most twice the request deadline: a Miroir that dies
/// holding it frees it then.
pub(super) async fn take(shared: &Shared, rt: &Runtime, idem: &Idempotency) -> Turn {
    let hold = (rt.config.server.request_timeout * 2).max(Duration::from_secs(10));
    let give_up = Instant::now() + hold + POLL;
    loop {
        let (key, for_hold) = (idem.clone(), hold);
        let claim = blocking(&shared.tasks, move |s| s.claim(&key, for_hold)).await;
        return match claim {
            Ok(Claim::Claimed) => Turn::Send,
            Ok(Claim::Seen(digest, uid)) if digest == idem.request_digest => {
                Turn::Answer(original(shared, uid).await)
            }
            Ok(Claim::Seen(_, uid)) => Turn::Answer(key_reused(uid)),
            Ok(Claim::Busy) if Instant::now() < give_up => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Ok(Claim::Busy) => Turn::Answer(Reply::error(&MiroirError::new(
                Code::RequestTimeout,
                "Another request with this Idempotency-Key is still in progress.",
            ))),
            Err(e) => Turn::Answer(Reply::error(&e)),
        };
    }
}

/// The answer the key's first request got: its task, or (deleted since) a reused key.
async fn original(shared: &Shared, uid: TaskUid) -> Reply {
    match blocking(&shared.tasks, move |s| s.get(uid)).await {
        Ok(Some(record)) => Reply::json(202, &tasks::summary(&record)),
        Ok(None) => key_reused(uid),
        Err(e) => Reply::error(&e),
    }
}

/// Gives the key back when its write recorded no task (refused, failed): a retry may send it.
pub(super) async fn release(shared: &Shared, key: &str) {
    let key = key.to_owned();
    if let Err(e) = blocking(&shared.tasks, move |s| s.release(&key)).await {
        log::warn!(target: "miroir::write", "could not release an idempotency key: {}", e.message);
    }
}
