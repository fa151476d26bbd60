//! From a classified route to the path that owns it, and its answer back to the client. The
//! route table (`miroir_filters::routes`) says which class a route is; this is the one place
//! that maps a route to its handler.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::hidden;
use miroir_filters::routes::{self, RouteClass, RouteSpec};
use pingora_core::Result;
use pingora_proxy::Session;
use pingora_timeout::fast_timeout::fast_timeout;
use serde_json::Value;

use super::ctx::{class_label, RequestCtx};
use super::handover::Busy;
use super::{aliases, body, respond};
use crate::auth;
use crate::cluster::aliases::Resolved;
use crate::cluster::Runtime;
use crate::lifecycle;
use crate::ops::{self, admin};
use crate::read;
use crate::request::{Incoming, Reply};
use crate::shared::Shared;
use crate::tasks;
use crate::upstream::{batch, AnswerBudget};
use crate::webhooks;
use crate::write;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether Miroir answers a pass-one route itself rather than relaying one node's answer:
/// key reads (default keys made consistent first) and settings reads (hidden fields removed).
pub fn answered_by_miroir(spec: &RouteSpec) -> bool {
    spec.class != RouteClass::PassOne
        || read::settings::hides(spec.name)
        || matches!(spec.name, "keys.list" | "key.get" | "indexes.list")
}

/// The route's answer, from the path that owns it, within the request's deadline
/// (`server.request_timeout_ms`, from when the request arrived); `Err` = an error to answer
/// instead. The admin API has no deadline: an operator's plan or apply is not a client call.
pub async fn answer(
    shared: &Arc<Shared>,
    session: &mut Session,
    ctx: &RequestCtx,
    rt: &Arc<Runtime>,
    spec: &'static RouteSpec,
    param: Option<String>,
) -> std::result::Result<Reply, MiroirError> {
    if spec.template.starts_with("/_miroir") {
        return route_answer(shared, session, ctx, rt, spec, param).await;
    }
    let deadline = ctx.started + rt.config.server.request_timeout;
    // Node requests made in one poll leave together (`upstream::batch`).
    let work = batch::together(route_answer(shared, session, ctx, rt, spec, param));
    // Pingora's coarse timer, as for node requests (see `upstream::client`).
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    match fast_timeout(left, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(timed_out(rt)),
    }
}

/// The node a request was sent to gave no answer.
pub fn unreachable_node() -> MiroirError {
    MiroirError::new(
        Code::NodeUnreachable,
        "The Meilisearch node serving this request did not answer.",
    )
}

/// No node is left to send a request to.
pub fn no_node_available() -> MiroirError {
    MiroirError::new(Code::NoNodeAvailable, "No Meilisearch node is available.")
}

/// The Meilisearch-shaped answer to a request past its deadline.
pub fn timed_out(rt: &Runtime) -> MiroirError {
    MiroirError::new(
        Code::RequestTimeout,
        format!(
            "The request did not complete within {} ms (`server.request_timeout_ms`). A write \
             may still be applied: retrying a document write is safe.",
            rt.config.server.request_timeout.as_millis()
        ),
    )
}

/// Runs a path that changes state as a task of its own: past the deadline the client is
/// answered and the change still runs to its end (parts sent, hints kept, the task recorded),
/// never stopped halfway. Reads are simply dropped at the deadline.
async fn to_completion(work: impl Future<Output = Reply> + Send + 'static) -> Reply {
    let busy = Busy::start();
    let work = async move {
        let _busy = busy;
        work.await
    };
    match tokio::spawn(work).await {
        Ok(reply) => reply,
        Err(e) => {
            log::error!(target: "miroir::proxy", "a write failed: {e}");
            MiroirError::new(Code::Internal, "Miroir failed to serve this request.").into()
        }
    }
}

async fn route_answer(
    shared: &Arc<Shared>,
    session: &mut Session,
    ctx: &RequestCtx,
    rt: &Arc<Runtime>,
    spec: &'static RouteSpec,
    param: Option<String>,
) -> std::result::Result<Reply, MiroirError> {
    // The client's key first, as a node judges it: nothing is read, validated or asked of a
    // node for a client that may not make this request.
    // A refused alias request on a route a node would judge: judged here as the node would.
    let action =
        routes::required_action(spec).or_else(|| ctx.alias_refused.as_ref().map(|_| "indexes.get"));
    if let Some(action) = action {
        let presented = auth::bearer(
            session
                .get_header(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        );
        // An alias of several indexes: the key must allow each of them.
        let indexes: Vec<Option<&str>> = match &ctx.alias_targets {
            Some(targets) => targets.iter().map(|t| Some(t.as_str())).collect(),
            None => vec![ctx.index_uid.as_deref()],
        };
        for index in indexes {
            if let Err(refused) = (shared.keys)
                .admit(&shared.cluster, rt, presented, action, index)
                .await
            {
                return Ok(refused);
            }
        }
    }
    if let Some(refused) = &ctx.alias_refused {
        return Err(refused.clone());
    }
    if let Some(err) = body::declared_too_large(session, rt.config.server.max_body_bytes) {
        // The body is never read: the connection cannot be reused.
        session.set_keepalive(None);
        return Err(err);
    }
    let index = ctx.index_uid.clone().unwrap_or_default();
    let param = param.unwrap_or_default();
    // A read sees an index's layout whole: a reshard swaps them only between reads.
    let _read = match spec.class {
        RouteClass::FanOutMerge | RouteClass::PassOne => {
            Some(shared.cluster.read_gate.read().await)
        }
        RouteClass::ShardRouted if spec.name == "document.get" => {
            Some(shared.cluster.read_gate.read().await)
        }
        _ => None,
    };
    match spec.class {
        RouteClass::Miroir => Ok(miroir_route(shared, session, ctx, rt, spec, param).await),
        RouteClass::PassOne => {
            let inc = incoming(session, ctx, rt, Bytes::new());
            Ok(match spec.name {
                "keys.list" | "key.get" => lifecycle::keys::read(shared, rt, &inc).await,
                "indexes.list" => read::indexes::list(shared, rt, &inc).await,
                _ => read::settings::read_settings(shared, rt, &inc).await,
            })
        }
        RouteClass::FanOutMerge => {
            let body = if spec.method.as_str() == "GET" {
                Bytes::new()
            } else {
                body::read(session, rt.config.server.max_body_bytes).await?
            };
            let inc = incoming(session, ctx, rt, body);
            let aliases = ctx.aliases.clone().unwrap_or_default();
            Ok(match spec.name {
                "search.get" | "search.post" => match &ctx.alias_targets {
                    Some(targets) => read::alias_search::search(shared, rt, &inc, targets).await,
                    None => read::search::search(shared, rt, &inc, &index).await,
                },
                "multi_search" => {
                    read::multi_search::multi_search(shared, rt, &inc, &aliases).await
                }
                "facet_search" => read::facet_search::facet_search(shared, rt, &inc, &index).await,
                "documents.list" | "documents.fetch" => {
                    read::browse::browse(shared, rt, &inc, &index).await
                }
                "index.stats" => read::stats::index_stats(shared, rt, &inc, &index).await,
                "similar.get" | "similar.post" => {
                    read::similar::similar(shared, rt, &inc, &index).await
                }
                "index.fields" => read::fields::fields(shared, rt, &inc, &index).await,
                _ => read::stats::global_stats(shared, rt, &inc).await,
            })
        }
        RouteClass::ShardRouted if spec.name == "document.get" => {
            let inc = incoming(session, ctx, rt, Bytes::new());
            Ok(read::document::get_one(shared, rt, &inc, (&index, &param)).await)
        }
        RouteClass::ShardRouted => {
            let body = if spec.name == "document.delete" {
                Bytes::new()
            } else {
                body::read(session, rt.config.server.max_body_bytes).await?
            };
            let inc = incoming(session, ctx, rt, body);
            tasks::registry::ready(shared).await?;
            let shared = shared.clone();
            Ok(to_completion(async move {
                let (_gate, rt) = write_turn(&shared).await;
                match spec.name {
                    "document.delete" => {
                        write::delete_one(&shared, &rt, &inc, &index, &param).await
                    }
                    "documents.delete_batch" => {
                        write::delete_batch(&shared, &rt, &inc, &index).await
                    }
                    _ => write::documents(&shared, &rt, &inc, &index).await,
                }
            })
            .await)
        }
        RouteClass::Broadcast => {
            let body = body::read(session, rt.config.server.max_body_bytes).await?;
            let inc = incoming(session, ctx, rt, body);
            if !spec.name.starts_with("key") {
                // Key changes answer with the key, not a task: they need no registry.
                tasks::registry::ready(shared).await?;
            }
            let shared = shared.clone();
            Ok(to_completion(async move {
                // Index creations, deletions, renames and swaps are judged against the aliases
                // as they are now and sent to the nodes before an alias can change: an alias is
                // never created over an index being created, nor left pointing to one deleted.
                let _alias_turn = match aliases::changes_indexes(spec.name) {
                    true => match shared.aliases.change().await {
                        Ok(turn) => Some(turn),
                        Err(e) => {
                            return MiroirError::new(
                                Code::TaskStoreUnavailable,
                                format!("The index cannot be changed now: {e}."),
                            )
                            .into()
                        }
                    },
                    false => None,
                };
                if _alias_turn.is_some() {
                    let table = shared.aliases.load();
                    let (route, index) = (spec.name, inc.index_uid.as_deref());
                    if let Some(refused) =
                        aliases::check_index_change(&table, route, index, &inc.body)
                    {
                        return refused.into();
                    }
                }
                let (_gate, rt) = write_turn(&shared).await;
                let reply = lifecycle::broadcast(&shared, &rt, &inc).await;
                if spec.name.starts_with("key") {
                    // The key changed on the nodes: judge the next request by its new rights.
                    shared.keys.forget();
                }
                reply
            })
            .await)
        }
        RouteClass::Unsupported => Err(MiroirError::new(
            Code::UnsupportedRoute,
            format!(
                "`{} {}` is not supported by Miroir: it cannot be served consistently \
                 across several Meilisearch nodes.",
                spec.method.as_str(),
                spec.template
            ),
        )),
    }
}

/// A write's turn at the gate a topology change closes while it changes where writes go,
/// with the snapshot current once through it: a write never uses a placement the change has
/// already replaced.
async fn write_turn(shared: &Shared) -> (tokio::sync::RwLockReadGuard<'_, ()>, Arc<Runtime>) {
    let gate = shared.cluster.write_gate.read().await;
    (gate, shared.cluster.runtime())
}

/// The routes Miroir answers from its own state: `/`, `/health`, the admin API, tasks and
/// batches; anything else of this class is not built yet.
async fn miroir_route(
    shared: &Arc<Shared>,
    session: &mut Session,
    ctx: &RequestCtx,
    rt: &Arc<Runtime>,
    spec: &'static RouteSpec,
    param: String,
) -> Reply {
    // Resolved before the path is borrowed: an explanation reads the body.
    let explained = (spec.method.as_str() == "POST")
        .then(|| explained_index(session.req_header().uri.path()).map(str::to_owned))
        .flatten();
    if let Some(index) = explained {
        // The index the alias names now, as a search would resolve it.
        let table = ctx.aliases.clone().unwrap_or_default();
        let target = match table.resolve(&index) {
            Resolved::Index => return explain(shared, session, ctx, rt, &index).await,
            Resolved::One(target) => target.to_owned(),
            Resolved::Many(_) => {
                return MiroirError::new(
                    Code::MultiAliasUnsupportedRoute,
                    format!("`{index}` is an alias of several indexes: explain one of them."),
                )
                .into()
            }
        };
        let mut reply = explain(shared, session, ctx, rt, &target).await;
        // The plan names the alias it resolved.
        if let Ok(Value::Object(mut plan)) = serde_json::from_slice::<Value>(&reply.body) {
            if reply.status == 200 {
                plan.insert("alias".into(), Value::String(index));
                reply.body = Value::Object(plan).to_string().into_bytes();
            }
        }
        return reply;
    }
    let path = session.req_header().uri.path();
    match spec.name {
        _ if spec.template == "/health" => health(shared, rt),
        _ if spec.template == "/" => {
            Reply::raw(200, br#"{"status":"Meilisearch is running"}"#.to_vec())
        }
        "webhooks.list" | "webhook.get" | "webhooks.create" | "webhook.update"
        | "webhook.delete" => webhook_route(shared, session, rt, spec, &param)
            .await
            .unwrap_or_else(Reply::from),
        _ if path.starts_with("/_miroir/aliases") => match alias_admin(shared, session, rt).await {
            Ok(reply) => reply,
            Err(e) => e.into(),
        },
        _ if path.starts_with("/_miroir/reshards") => {
            match reshard_admin(shared, session, rt).await {
                Ok(reply) => reply,
                Err(e) => e.into(),
            }
        }
        _ if path.starts_with("/_miroir") => match admin::handle(session, shared, rt, path).await {
            Ok(reply) => reply,
            Err(e) => e.into(),
        },
        "tasks.list" | "task.get" | "tasks.cancel" | "tasks.delete" | "batches.list"
        | "batch.get" | "task.documents" => {
            let inc = incoming(session, ctx, rt, Bytes::new());
            match spec.name {
                "tasks.list" => tasks::list_tasks(shared, rt, &inc).await,
                "task.get" => tasks::get_task(shared, rt, &inc, &param).await,
                "tasks.cancel" | "tasks.delete" => {
                    if let Err(e) = tasks::registry::ready(shared).await {
                        return e.into();
                    }
                    let (shared, rt) = (shared.clone(), rt.clone());
                    let delete = spec.name == "tasks.delete";
                    to_completion(async move {
                        tasks::cancel_or_delete(&shared, &rt, &inc, delete).await
                    })
                    .await
                }
                "batches.list" => tasks::batches(shared, rt, &inc, None).await,
                "task.documents" => tasks::task_documents(shared, rt, &inc, &param).await,
                _ => tasks::batches(shared, rt, &inc, Some(&param)).await,
            }
        }
        _ => MiroirError::new(
            Code::NotImplemented,
            format!(
                "`{} {}` ({}) is not implemented by this version of Miroir yet.",
                spec.method.as_str(),
                spec.template,
                class_label(spec.class).replace('_', " ")
            ),
        )
        .into(),
    }
}

/// `/webhooks`: Miroir keeps the webhooks and calls them itself, once per Miroir task.
async fn webhook_route(
    shared: &Shared,
    session: &mut Session,
    rt: &Runtime,
    spec: &'static RouteSpec,
    param: &str,
) -> std::result::Result<Reply, MiroirError> {
    let registry = &shared.webhooks.registry;
    match spec.name {
        "webhooks.list" => Ok(webhooks::list(registry).await),
        "webhook.get" => webhooks::get(registry, param),
        "webhook.delete" => webhooks::delete(registry, param).await,
        _ => {
            let body = body::read(session, rt.config.server.max_body_bytes).await?;
            let content_type = session
                .get_header(http::header::CONTENT_TYPE)
                .map(|v| v.as_bytes());
            if spec.name == "webhooks.create" {
                webhooks::create(registry, content_type, &body).await
            } else {
                webhooks::update(registry, param, content_type, &body).await
            }
        }
    }
}

/// Writes a reply or an error to the client; the request is then answered.
pub async fn finish(
    session: &mut Session,
    ctx: &mut RequestCtx,
    outcome: std::result::Result<Reply, MiroirError>,
) -> Result<()> {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(err) => {
            ctx.status = err.status();
            return respond::error(session, &err, &ctx.request_id).await;
        }
    };
    ctx.status = reply.status;
    match reply.parts {
        Some(parts) => {
            respond::parts_with(
                session,
                reply.status,
                parts,
                &ctx.request_id,
                &reply.headers,
            )
            .await
        }
        None => {
            // Node errors (relayed, or inside task views) must not name the field Miroir
            // keeps filterable.
            let mut body = reply.body;
            let may_name_it = reply.status >= 400
                || ctx
                    .route
                    .is_some_and(|r| r.name.starts_with("task") || r.name.starts_with("batch"));
            if may_name_it {
                if let Some(hidden) = hidden::hide_shard_field_in_messages(&body) {
                    body = hidden;
                }
            }
            respond::json_with(session, reply.status, body, &ctx.request_id, &reply.headers).await
        }
    }
}

/// The request as Miroir forwards it itself: credentials translated, `body` as read.
fn incoming(session: &Session, ctx: &RequestCtx, rt: &Runtime, body: Bytes) -> Incoming {
    let req = session.req_header();
    let presented = auth::bearer(
        session
            .get_header(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    );
    let header = |name| {
        session
            .get_header(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Incoming {
        method: req.method.as_str().to_owned(),
        path: req
            .uri
            .path_and_query()
            .map_or_else(|| req.uri.path().to_owned(), |p| p.as_str().to_owned()),
        auth: auth::node_credential(&rt.config, presented).map(str::to_owned),
        content_type: header(http::header::CONTENT_TYPE.as_str()),
        body,
        request_id: ctx.request_id.clone(),
        idempotency_key: header(IDEMPOTENCY_KEY),
        received_at: tasks::now_rfc3339(),
        route: ctx.route.map_or("unknown", |r| r.name),
        index_uid: ctx.index_uid.clone(),
        budget: AnswerBudget::new(rt.config.server.max_answer_bytes),
    }
}

/// The index of `/_miroir/indexes/{uid}/explain`.
fn explained_index(path: &str) -> Option<&str> {
    path.strip_prefix("/_miroir/indexes/")?
        .strip_suffix("/explain")
        .filter(|uid| !uid.is_empty() && !uid.contains('/'))
}

/// `POST /_miroir/indexes/{uid}/explain`, behind the admin key.
async fn explain(
    shared: &Shared,
    session: &mut Session,
    ctx: &RequestCtx,
    rt: &Runtime,
    index: &str,
) -> Reply {
    if let Err(e) = admin::authorize(session, rt) {
        return e.into();
    }
    let body = match body::read(session, rt.config.server.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    let inc = incoming(session, ctx, rt, body);
    read::explain::explain(shared, rt, &inc, index).await
}

/// The alias admin API (`ops::aliases`), behind the admin key.
async fn alias_admin(
    shared: &Shared,
    session: &mut Session,
    rt: &Runtime,
) -> std::result::Result<Reply, MiroirError> {
    let (method, body) = admin_request(session, rt).await?;
    // Who repointed: the operator's own name when `miroir ctl` (or a script) gives one.
    let by = session
        .get_header("X-Miroir-Actor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| session.client_addr().map(|a| a.to_string()))
        .unwrap_or_else(|| "unknown".to_owned());
    let path = session.req_header().uri.path().to_owned();
    ops::aliases::handle(shared, rt, &method, &path, &body, &by).await
}

async fn reshard_admin(
    shared: &Shared,
    session: &mut Session,
    rt: &Runtime,
) -> std::result::Result<Reply, MiroirError> {
    let (method, body) = admin_request(session, rt).await?;
    let path = session.req_header().uri.path().to_owned();
    ops::reshards::handle(shared, &method, &path, &body).await
}

/// An admin request's method and body, once its admin key is checked.
async fn admin_request(
    session: &mut Session,
    rt: &Runtime,
) -> std::result::Result<(String, Bytes), MiroirError> {
    admin::authorize(session, rt)?;
    let method = session.req_header().method.as_str().to_owned();
    let body = if matches!(method.as_str(), "POST" | "PUT") {
        body::read(session, rt.config.server.max_body_bytes).await?
    } else {
        Bytes::new()
    };
    Ok((method, body))
}

/// `GET /health`: available while every shard of any index has a healthy replica in some
/// group.
fn health(shared: &Shared, rt: &Runtime) -> Reply {
    let cluster = &shared.cluster;
    let missing = cluster.unavailable_shards(rt, cluster.shard_counts.widest());
    if missing.is_empty() {
        return Reply::raw(200, br#"{"status":"available"}"#.to_vec());
    }
    let list: Vec<String> = missing.iter().map(|s| s.0.to_string()).collect();
    MiroirError::new(
        Code::ShardUnavailable,
        format!("No reachable replica for shards {}.", list.join(",")),
    )
    .into()
}
