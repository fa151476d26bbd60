//! Requests a reshard makes of Miroir itself: writes to the shadow index go through the same
//! write path and broadcast as a client's (split by the shadow's S, sent to every replica in
//! the shadow's write order, hinted when a replica is down), with Miroir's node key.

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routes::{self, RouteClass};

use crate::cluster::Runtime;
use crate::lifecycle;
use crate::read;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::tasks;
use crate::upstream::AnswerBudget;
use crate::write;

/// Serves `method path` as if a client with the node key had sent it. The caller holds the
/// write gate (shared, or alone during a flip): this never takes it.
pub async fn request(
    shared: &Shared,
    rt: &Runtime,
    (method, path): (&str, &str),
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Reply, MiroirError> {
    let Some(found) = routes::classify(method, path) else {
        return Err(MiroirError::new(
            Code::Internal,
            format!("reshard: no route for {method} {path}"),
        ));
    };
    let index = found.index_uid.unwrap_or_default().to_owned();
    let param = found.param_decoded().map(|p| p.into_owned());
    let inc = Incoming {
        method: method.to_owned(),
        path: path.to_owned(),
        auth: rt.node_key().map(str::to_owned),
        content_type: content_type.map(str::to_owned),
        body,
        request_id: format!("reshard-{index}"),
        idempotency_key: None,
        received_at: tasks::now_rfc3339(),
        route: found.spec.name,
        index_uid: found.index_uid.map(str::to_owned),
        budget: AnswerBudget::new(rt.config.server.max_answer_bytes),
    };
    Ok(match (found.spec.class, found.spec.name) {
        (RouteClass::ShardRouted, "document.delete") => {
            write::delete_one(shared, rt, &inc, &index, param.as_deref().unwrap_or("")).await
        }
        (RouteClass::ShardRouted, "documents.delete_batch") => {
            write::delete_batch(shared, rt, &inc, &index).await
        }
        (RouteClass::ShardRouted, "documents.replace" | "documents.update") => {
            write::documents(shared, rt, &inc, &index).await
        }
        (RouteClass::Broadcast, _) => lifecycle::broadcast(shared, rt, &inc).await,
        (RouteClass::FanOutMerge, "documents.fetch") => {
            read::browse::browse(shared, rt, &inc, &index).await
        }
        (RouteClass::PassOne, _) if read::settings::hides(found.spec.name) => {
            read::settings::read_settings(shared, rt, &inc).await
        }
        _ => {
            return Err(MiroirError::new(
                Code::Internal,
                format!("reshard: {} is not replayed", found.spec.name),
            ))
        }
    })
}

/// [`request`] with writes flowing: takes the write gate shared for it, and the runtime
/// current once through, as a client's write does.
pub async fn with_writes_flowing(
    shared: &Shared,
    (method, path): (&str, &str),
    content_type: Option<&str>,
    body: Bytes,
) -> Result<Reply, MiroirError> {
    let _gate = shared.cluster.write_gate.read().await;
    let rt = shared.cluster.runtime();
    request(shared, &rt, (method, path), content_type, body).await
}

/// Whether a replayed write was taken (202) or judged by Miroir or the nodes as a client's
/// would be (a 4xx: the same request failed the same way on the index itself). `false`: try
/// again later (no quorum, no node).
pub fn settled(reply: &Reply) -> bool {
    (200..300).contains(&reply.status) || (400..500).contains(&reply.status)
}

/// `Ok` when Miroir took the write (202); otherwise the answer, as an error naming `what`.
pub fn accepted(reply: &Reply, what: &str) -> Result<(), MiroirError> {
    if reply.status == 202 {
        return Ok(());
    }
    Err(MiroirError::new(
        Code::Internal,
        format!(
            "{what} answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.bytes())
        ),
    ))
}
