//! `POST`/`PUT /indexes/{uid}/documents`: the body validated and split by shard before any
//! node is touched (`miroir_filters::write`), each node sent one request with its shards'
//! documents, the primary key decided once for every node.

use std::collections::BTreeSet;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_filters::query;
use miroir_filters::routing::NodeIdx;
use miroir_filters::search::facet_limit;
use miroir_filters::write::{self, PayloadFormat, SplitInput};
use miroir_tasks::{Created, Idempotency, NewTask};
use serde_json::json;

use super::idempotency;
use super::record::{conclude, key_reused, Write};
use super::send::{send_parts, Part, Sent};
use crate::auth::Access;
use crate::cluster::Runtime;
use crate::lifecycle::{self, shard_field};
use crate::node_io::{self, accepted_task_uid};
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::tasks;

/// What the nodes know of an index before a write.
struct IndexState {
    exists: bool,
    primary_key: Option<String>,
}

/// Reads the index with Miroir's own credential (the client's key may only allow writes).
async fn index_state(shared: &Shared, rt: &Runtime, index_uid: &str) -> Result<IndexState, Reply> {
    let path = format!("/indexes/{index_uid}");
    let resp = node_io::any(&shared.cluster, rt, &path, rt.node_key()).await?;
    match resp.status {
        200 => Ok(IndexState {
            exists: true,
            primary_key: resp
                .json()
                .and_then(|v| v["primaryKey"].as_str().map(str::to_owned)),
        }),
        404 => Ok(IndexState {
            exists: false,
            primary_key: None,
        }),
        _ => Err(Reply::relay(&resp)),
    }
}

/// The same JSON request to every node, with Miroir's own credential, handed over in the
/// index's write order like any write (a node that misses it gets it as a hint). No shard
/// quorum: these requests carry no document.
async fn to_every_node(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    (method, path, body): (&str, String, serde_json::Value),
    nodes: impl Iterator<Item = NodeIdx>,
) -> Sent {
    let body = Bytes::from(body.to_string());
    let parts = nodes
        .map(|node| Part {
            node,
            path: path.clone(),
            body: vec![body.clone()],
            content_type: Some("application/json".into()),
            move_log: false,
            items: 0,
        })
        .collect();
    send_parts(
        &shared.cluster,
        rt,
        (inc, rt.node_key()),
        (index_uid, &BTreeSet::new()),
        method,
        parts,
    )
    .await
}

/// Every node of the placement.
fn every_node(rt: &Runtime) -> impl Iterator<Item = NodeIdx> + '_ {
    let p = rt.writes();
    p.nodes().iter().filter_map(|id| p.index_of(id.as_str()))
}

/// A new index, created on every node before its first documents, with `_miroir_shard`
/// filterable: each node then processes the creation, the settings and the documents in that
/// order, so once the write's task has succeeded every search of the index works. (Created
/// implicitly by the documents instead, the settings task would trail them and searches
/// filtering on the shard field would fail until it is done.) The settings parts are returned:
/// the task of the write waits for them on the nodes that get no document.
async fn create_first(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    primary_key: Option<&str>,
) -> Sent {
    let creation = match primary_key {
        Some(pk) => json!({ "uid": index_uid, "primaryKey": pk }),
        None => json!({ "uid": index_uid }),
    };
    to_every_node(
        shared,
        rt,
        inc,
        index_uid,
        ("POST", "/indexes".to_owned(), creation),
        every_node(rt),
    )
    .await;
    let indexes = &shared.cluster.indexes;
    if let Some(pk) = primary_key {
        indexes.remember_created(index_uid, pk);
    }
    // A settings update through Miroir that named the filterable attributes (kept with the
    // shard field) may be queued ahead, creating the index itself: this one must not replace
    // the client's list. Nor its faceting limit, once Miroir widened it.
    let mut settings = serde_json::Map::new();
    if !indexes.shard_filterable(index_uid) {
        settings.insert("filterableAttributes".into(), json!([hidden::SHARD_FIELD]));
    }
    let widen_facets = !indexes.facet_limit_widened(index_uid);
    if widen_facets {
        settings.extend(
            facet_limit::widening(facet_limit::DEFAULT_MAX_VALUES)
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
    }
    if settings.is_empty() {
        return Sent::default();
    }
    let sets_filterable = settings.contains_key("filterableAttributes");
    let settings = serde_json::Value::Object(settings);
    let path = format!("/indexes/{index_uid}/settings");
    let sent = to_every_node(
        shared,
        rt,
        inc,
        index_uid,
        ("PATCH", path, settings),
        every_node(rt),
    )
    .await;
    let everywhere = every_node(rt).all(|n| sent.accepted(n) || sent.hinted(n));
    if sets_filterable {
        indexes.set_shard_filterable(index_uid, everywhere);
    }
    if widen_facets {
        indexes.set_facet_limit_widened(index_uid, everywhere);
    }
    sent
}

/// The parts of `extra` for nodes `sent` did not reach, added to the write: its task then
/// waits for them too.
fn add_idle(sent: &mut Sent, extra: Sent) {
    let reached: Vec<NodeIdx> = sent
        .parts
        .iter()
        .map(|(n, _)| *n)
        .chain(sent.hinted.iter().map(|(n, _)| *n))
        .chain(sent.lost.iter().copied())
        .collect();
    let idle = |n: &NodeIdx| !reached.contains(n);
    sent.parts
        .extend(extra.parts.into_iter().filter(|(n, _)| idle(n)));
    sent.hinted
        .extend(extra.hinted.into_iter().filter(|(n, _)| idle(n)));
    sent.lost.extend(extra.lost.into_iter().filter(idle));
}

/// How long a failed batch's answer waits for the index it created to exist on the nodes.
const CREATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors a node finds only when it indexes the batch: it accepts the write (202) and the task
/// fails with the error. A malformed payload, by contrast, is refused at once.
fn fails_at_indexing(code: Code) -> bool {
    matches!(
        code,
        Code::IndexPrimaryKeyNoCandidateFound
            | Code::IndexPrimaryKeyMultipleCandidatesFound
            | Code::IndexPrimaryKeyAlreadyExists
            | Code::MissingDocumentId
            | Code::InvalidDocumentId
    )
}

/// A batch every node would accept and then fail: answered as one node answers it, with a
/// task that fails with the error, and no document sent anywhere. Like a node, Miroir still
/// creates the index (without a primary key) when it did not exist and the client may.
#[allow(clippy::too_many_arguments)]
async fn failed_write(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    (exists, access): (bool, &Access),
    error: MiroirError,
    received: usize,
    idempotency: Option<Idempotency>,
) -> Reply {
    if !exists && access.allows("indexes.create", index_uid) {
        let created = create_first(shared, rt, inc, index_uid, None).await;
        // On one node the failed task is the one that created the index: once it reads
        // `failed`, the index exists. The creation is waited for (briefly) to keep that order.
        let waits = created.parts.iter().filter_map(|(n, result)| {
            let uid = accepted_task_uid(result)?;
            let node = &rt.nodes[n.index()];
            Some(node_io::wait_processed(
                &shared.cluster,
                rt,
                node,
                uid,
                CREATION_WAIT,
            ))
        });
        futures::future::join_all(waits).await;
    }
    let task = NewTask {
        index_uid: Some(index_uid.to_owned()),
        kind: "documentAdditionOrUpdate".to_owned(),
        enqueued_at: inc.received_at.clone(),
        node_tasks: Vec::new(),
        custom_metadata: query::param(&inc.path, "customMetadata").map(|m| m.into_owned()),
        details: Some(json!({ "receivedDocuments": received, "indexedDocuments": 0 })),
    };
    match tasks::registry::create_failed(shared, task, idempotency, &error).await {
        Ok(Created::New(record) | Created::Replayed(record)) => {
            Reply::json(202, &tasks::summary(&record))
        }
        Ok(Created::KeyReused { original }) => key_reused(original),
        Err(e) => Reply::error(&e),
    }
}

/// S of the index a write goes to: its own, or for an index the write creates, the one new
/// indexes get now, recorded before any document is split by it.
async fn index_shards(
    shared: &Shared,
    rt: &Runtime,
    index_uid: &str,
    exists: bool,
) -> Result<u32, MiroirError> {
    let counts = &shared.cluster.shard_counts;
    if exists {
        return Ok(counts.of(index_uid));
    }
    counts
        .record_new(index_uid, rt.new_index_shards())
        .await
        .map_err(|e| {
            MiroirError::new(
                Code::Internal,
                format!("recording the index's shard count: {e}"),
            )
        })
}

/// A digest of what makes a request the same request, for idempotency keys.
fn request_digest(inc: &Incoming) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(inc.method.as_bytes());
    h.update(b"\0");
    h.update(inc.path.as_bytes());
    h.update(b"\0");
    h.update(&inc.body);
    format!("{:032x}", h.digest128())
}

/// `POST`/`PUT /indexes/{uid}/documents`.
pub async fn documents(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    // The client's key is judged before the body is read or any node touched, as a node does.
    let access = match shared
        .authorize_on(rt, inc, "documents.add", index_uid)
        .await
    {
        Ok(access) => access,
        Err(refused) => return refused,
    };
    // Concurrent requests with one key: the second waits for the first to be recorded and
    // then answers with its task, so the nodes receive the write once.
    let _turn = match &inc.idempotency_key {
        Some(key) => Some(shared.idempotency.turn(key).await),
        None => None,
    };
    let idempotency = inc.idempotency_key.as_ref().map(|key| Idempotency {
        key: key.clone(),
        request_digest: request_digest(inc),
    });
    if let Some(idem) = &idempotency {
        if let idempotency::Turn::Answer(reply) = idempotency::take(shared, rt, idem).await {
            return reply;
        }
    }
    let key = idempotency.as_ref().map(|i| i.key.clone());
    let reply = add_documents(shared, rt, inc, index_uid, &access, idempotency).await;
    if let (Some(key), false) = (key, reply.status == 202) {
        idempotency::release(shared, &key).await;
    }
    reply
}

/// The documents of `documents`, once its idempotency key (if any) is this request's.
async fn add_documents(
    shared: &Shared,
    rt: &Runtime,
    inc: &Incoming,
    index_uid: &str,
    access: &Access,
    idempotency: Option<Idempotency>,
) -> Reply {
    let csv_delimiter = match query::param(&inc.path, "csvDelimiter") {
        Some(d) => match write::csv_delimiter(&d) {
            Ok(d) => Some(d),
            Err(e) => return Reply::error(&e),
        },
        None => None,
    };
    let format = match PayloadFormat::from_request(
        inc.content_type.as_deref().map(str::as_bytes),
        csv_delimiter,
    ) {
        Ok(f) => f,
        Err(e) => return Reply::error(&e),
    };
    let index = match index_state(shared, rt, index_uid).await {
        // Created by an earlier write whose creation the nodes have not processed yet.
        Ok(state) if !state.exists => match shared.cluster.indexes.created_primary_key(index_uid) {
            Some(pk) => IndexState {
                exists: true,
                primary_key: Some(pk),
            },
            None => state,
        },
        Ok(state) => state,
        Err(reply) => return reply,
    };
    let shards = match index_shards(shared, rt, index_uid, index.exists).await {
        Ok(s) => s,
        Err(e) => return Reply::error(&e),
    };
    let index_pk = index.primary_key;
    let param_pk = query::param(&inc.path, "primaryKey");
    let version = shared.anti_entropy.clock.next();
    let split = match write::split_versioned(
        SplitInput {
            body: &inc.body,
            format,
            index_primary_key: index_pk.as_deref(),
            param_primary_key: param_pk.as_deref(),
            shards,
        },
        Some(version),
    ) {
        Ok(s) => s,
        Err(e) if fails_at_indexing(e.code) => {
            let received = write::count_documents(&inc.body, format);
            return failed_write(
                shared,
                rt,
                inc,
                index_uid,
                (index.exists, access),
                e,
                received,
                idempotency,
            )
            .await;
        }
        Err(e) => return Reply::error(&e),
    };

    // An existing index gets the shard field before the documents; a new one is created
    // first, with it, when the client may create indexes. One that may not gets the documents
    // alone: the nodes fail the task with `index_not_found`, as one node does.
    let created = if index.exists {
        shard_field::ensure(shared, rt, inc, index_uid).await;
        lifecycle::facet_limit::ensure(shared, rt, inc, index_uid).await;
        None
    } else if access.allows("indexes.create", index_uid) {
        Some(create_first(shared, rt, inc, index_uid, Some(&split.primary_key)).await)
    } else {
        None
    };
    let p = rt.writes();
    // The nodes must not infer a primary key of their own.
    let path = query::with_param(&inc.path, "primaryKey", &split.primary_key);
    let mut touched = BTreeSet::new();
    let mut parts = Vec::new();
    for (i, _) in rt.nodes.iter().enumerate() {
        let Some(idx) = p.index_of(rt.nodes[i].id.as_str()) else {
            continue;
        };
        let sets = rt.write_sets(idx);
        for (shards, move_log) in [(&sets.direct, false), (&sets.logged, true)] {
            let items = split.node_docs(shards) as u64;
            if items == 0 {
                continue;
            }
            touched.extend(shards.iter().filter(|s| split.shard_docs(**s) > 0));
            let (body, _len) = split.node_body(shards);
            parts.push(Part {
                node: idx,
                path: path.clone(),
                body,
                content_type: Some(format.content_type().to_owned()),
                move_log,
                items,
            });
        }
    }
    if parts.is_empty() {
        // An empty batch: Meilisearch still records a task; any node can.
        let Some(i) = shared.cluster.pick_node(rt, &[]) else {
            return Reply::error(&MiroirError::new(
                Code::NoNodeAvailable,
                "No Meilisearch node is available.",
            ));
        };
        let Some(idx) = p.index_of(rt.nodes[i].id.as_str()) else {
            return Reply::error(&MiroirError::new(
                Code::Internal,
                "node missing from the placement",
            ));
        };
        parts.push(Part {
            node: idx,
            path: path.clone(),
            body: vec![inc.body.clone()],
            content_type: inc.content_type.clone(),
            move_log: false,
            items: 0,
        });
    }
    let mut sent = send_parts(
        &shared.cluster,
        rt,
        (inc, inc.auth.as_deref()),
        (index_uid, &touched),
        &inc.method,
        parts,
    )
    .await;
    let accepted = sent
        .parts
        .iter()
        .any(|(_, r)| accepted_task_uid(r).is_some());
    match created {
        Some(settings) => add_idle(&mut sent, settings),
        // Nodes that got no document must still learn the primary key the write set, or
        // reads landing on them would disagree.
        None if index.exists && index_pk.is_none() && accepted => {
            let path = format!("/indexes/{index_uid}");
            let key = json!({ "primaryKey": split.primary_key });
            let idle: Vec<NodeIdx> = every_node(rt)
                .filter(|n| !sent.parts.iter().any(|(m, _)| m == n) && !sent.hinted(*n))
                .collect();
            let fixups = to_every_node(
                shared,
                rt,
                inc,
                index_uid,
                ("PATCH", path, key),
                idle.into_iter(),
            )
            .await;
            add_idle(&mut sent, fixups);
        }
        None => {}
    }
    let details = json!({ "receivedDocuments": split.documents, "indexedDocuments": null });
    let reply = conclude(
        shared,
        rt,
        Write {
            inc,
            index_uid,
            shards: &touched,
            details,
            idempotency,
        },
        sent,
    )
    .await;
    reply
}
