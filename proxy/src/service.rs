//! The Pingora `ProxyHttp` implementation. It stays thin: `request_filter` classifies the
//! route once and hands it to the code that owns its class; the pass-to-one-node class rides
//! Pingora's proxy pipeline (`upstream_peer` and friends).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use miroir_filters::error::{hide_shard_field_in_messages, Code, MiroirError};
use miroir_filters::routes::{self, RouteClass, RouteSpec};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::broadcast::{self, Incoming, Reply};
use crate::limits::payload_too_large;
use crate::state::{Runtime, Shared};
use crate::{
    admin, auth, body, documents, facet_search, fields, keys, metrics, multi_search, request_id,
    respond, search, shard_field, similar, stats, tasks, write,
};

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    request_id: String,
    runtime: Option<Arc<Runtime>>,
    route: Option<&'static RouteSpec>,
    index_uid: Option<String>,
    /// Nodes tried for a pass-through request, by runtime index; the last is the current one.
    tried: Vec<usize>,
    body_bytes: u64,
    status: u16,
}

impl RequestCtx {
    fn class_label(&self) -> &'static str {
        self.route.map_or("pass_one", |r| class_label(r.class))
    }
}

fn class_label(class: RouteClass) -> &'static str {
    match class {
        RouteClass::PassOne => "pass_one",
        RouteClass::Broadcast => "broadcast",
        RouteClass::ShardRouted => "shard_routed",
        RouteClass::FanOutMerge => "fan_out_merge",
        RouteClass::Miroir => "miroir",
        RouteClass::Unsupported => "unsupported",
    }
}

pub struct MiroirProxy {
    pub shared: Arc<Shared>,
}

impl MiroirProxy {
    /// Answers a route Miroir serves itself or cannot serve yet; `Ok(true)` = answered.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        rt: &Runtime,
        spec: &'static RouteSpec,
        index_uid: Option<String>,
        param: Option<String>,
    ) -> Result<bool> {
        let path = session.req_header().uri.path().to_owned();
        let outcome = match spec.class {
            RouteClass::Miroir if spec.template == "/health" => {
                let (status, body) = health_body(&self.shared, rt);
                Ok(Reply::raw(status, body))
            }
            RouteClass::Miroir if spec.template == "/" => Ok(Reply::raw(
                200,
                br#"{"status":"Meilisearch is running"}"#.to_vec(),
            )),
            // Miroir registers no webhooks yet (creating one answers `miroir_not_implemented`),
            // so the list is truthfully empty; node webhooks would report node tasks instead.
            RouteClass::Miroir if spec.name == "webhooks.list" => {
                Ok(Reply::raw(200, br#"{"results":[]}"#.to_vec()))
            }
            RouteClass::Miroir if path.starts_with("/_miroir") => {
                admin::handle(session, &self.shared, rt, &path)
                    .map(|(status, body)| Reply::raw(status, body))
            }
            RouteClass::Miroir
                if matches!(
                    spec.name,
                    "tasks.list"
                        | "task.get"
                        | "tasks.cancel"
                        | "tasks.delete"
                        | "batches.list"
                        | "batch.get"
                ) =>
            {
                let inc = self.incoming(session, ctx, rt).await;
                let uid = param.as_deref().unwrap_or("");
                let reply = match spec.name {
                    "tasks.list" => tasks::list_tasks(&self.shared, rt, &inc).await,
                    "task.get" => tasks::get_task(&self.shared, rt, &inc, uid).await,
                    "tasks.cancel" => tasks::cancel_or_delete(&self.shared, rt, &inc, false).await,
                    "tasks.delete" => tasks::cancel_or_delete(&self.shared, rt, &inc, true).await,
                    "batches.list" => tasks::batches(&self.shared, rt, &inc, None).await,
                    _ => tasks::batches(&self.shared, rt, &inc, Some(uid)).await,
                };
                Ok(reply)
            }
            RouteClass::PassOne => {
                let inc = self.incoming(session, ctx, rt).await;
                Ok(match spec.name {
                    "keys.list" | "key.get" => keys::read(&self.shared, rt, &inc).await,
                    _ => shard_field::read_settings(&self.shared, rt, &inc, spec.name).await,
                })
            }
            RouteClass::FanOutMerge => {
                let mut inc = self.incoming(session, ctx, rt).await;
                let index = index_uid.as_deref().unwrap_or("");
                if spec.method.as_str() != "GET" {
                    match body::read(session, rt.config.server.max_body_bytes).await {
                        Ok(b) => inc.body = b,
                        Err(e) => return self.finish(session, ctx, Err(e)).await,
                    }
                }
                let shared = &self.shared;
                Ok(match spec.name {
                    "search.get" | "search.post" => search::search(shared, rt, &inc, index).await,
                    "multi_search" => multi_search::multi_search(shared, rt, &inc).await,
                    "facet_search" => facet_search::facet_search(shared, rt, &inc, index).await,
                    "documents.list" | "documents.fetch" => {
                        documents::browse(shared, rt, &inc, index).await
                    }
                    "index.stats" => stats::index_stats(shared, rt, &inc, index).await,
                    "similar.get" | "similar.post" => {
                        similar::similar(shared, rt, &inc, index).await
                    }
                    "index.fields" => fields::fields(shared, rt, &inc, index).await,
                    _ => stats::global_stats(shared, rt, &inc).await,
                })
            }
            RouteClass::ShardRouted => {
                let mut inc = self.incoming(session, ctx, rt).await;
                let index = index_uid.as_deref().unwrap_or("");
                match spec.name {
                    "document.get" => Ok(write::get_one(
                        &self.shared,
                        rt,
                        &inc,
                        index,
                        param.as_deref().unwrap_or(""),
                    )
                    .await),
                    "document.delete" => Ok(write::delete_one(
                        &self.shared,
                        rt,
                        &inc,
                        index,
                        param.as_deref().unwrap_or(""),
                    )
                    .await),
                    _ => match body::read(session, rt.config.server.max_body_bytes).await {
                        Ok(b) => {
                            inc.body = b;
                            Ok(match spec.name {
                                "documents.delete_batch" => {
                                    write::delete_batch(&self.shared, rt, &inc, index).await
                                }
                                _ => write::documents(&self.shared, rt, &inc, index).await,
                            })
                        }
                        Err(e) => Err(e),
                    },
                }
            }
            RouteClass::Broadcast => {
                let mut inc = self.incoming(session, ctx, rt).await;
                match body::read(session, rt.config.server.max_body_bytes).await {
                    Ok(b) => {
                        inc.body = b;
                        Ok(broadcast::broadcast(&self.shared, rt, &inc).await)
                    }
                    Err(e) => Err(e),
                }
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
            class => Err(MiroirError::new(
                Code::NotImplemented,
                format!(
                    "`{} {}` ({}) is not implemented by this version of Miroir yet.",
                    spec.method.as_str(),
                    spec.template,
                    class_label(class).replace('_', " ")
                ),
            )),
        };
        self.finish(session, ctx, outcome).await
    }

    /// Writes a reply or an error to the client; the request is then answered.
    async fn finish(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        outcome: std::result::Result<Reply, MiroirError>,
    ) -> Result<bool> {
        match outcome {
            Ok(reply) => {
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
                        .await?
                    }
                    None => {
                        // Node errors (relayed, or inside task views) must not name the
                        // field Miroir keeps filterable.
                        let mut body = reply.body;
                        let may_name_it = reply.status >= 400
                            || ctx.route.is_some_and(|r| {
                                r.name.starts_with("task") || r.name.starts_with("batch")
                            });
                        if may_name_it {
                            if let Some(hidden) = hide_shard_field_in_messages(&body) {
                                body = hidden;
                            }
                        }
                        respond::json_with(
                            session,
                            reply.status,
                            body,
                            &ctx.request_id,
                            &reply.headers,
                        )
                        .await?
                    }
                }
            }
            Err(err) => {
                ctx.status = err.status();
                respond::error(session, &err, &ctx.request_id).await?;
            }
        }
        Ok(true)
    }

    /// The request as Miroir forwards it itself: credentials translated, body not read yet.
    async fn incoming(&self, session: &Session, ctx: &RequestCtx, rt: &Runtime) -> Incoming {
        let req = session.req_header();
        let presented = auth::bearer(
            session
                .get_header(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        );
        Incoming {
            method: req.method.as_str().to_owned(),
            path: req
                .uri
                .path_and_query()
                .map_or_else(|| req.uri.path().to_owned(), |p| p.as_str().to_owned()),
            auth: node_credential(rt, presented).map(str::to_owned),
            content_type: session
                .get_header(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: Bytes::new(),
            request_id: ctx.request_id.clone(),
            idempotency_key: write::idempotency_key(session),
            received_at: tasks::now_rfc3339(),
            route: ctx.route.map_or("unknown", |r| r.name),
            index_uid: ctx.index_uid.clone(),
        }
    }

    fn reject_oversized(&self, session: &Session, rt: &Runtime) -> Option<MiroirError> {
        let limit = rt.config.server.max_body_bytes;
        let declared = session
            .get_header(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())?;
        (declared > limit).then(|| payload_too_large(limit))
    }
}

/// The credential to present to nodes for a client's: Miroir's master key becomes the nodes';
/// any other credential is the nodes' to judge.
fn node_credential<'a>(rt: &'a Runtime, presented: Option<&'a str>) -> Option<&'a str> {
    let config = &rt.config;
    match (presented, &config.master_key, &config.node_master_key) {
        (Some(p), Some(mine), Some(nodes)) if mine.matches(p.as_bytes()) => Some(nodes.expose()),
        (p, _, _) => p,
    }
}

fn health_body(shared: &Shared, rt: &Runtime) -> (u16, Vec<u8>) {
    let missing = shared.unavailable_shards(rt);
    if missing.is_empty() {
        return (200, br#"{"status":"available"}"#.to_vec());
    }
    let list: Vec<String> = missing.iter().map(|s| s.0.to_string()).collect();
    let err = MiroirError::new(
        Code::ShardUnavailable,
        format!("No reachable replica for shards {}.", list.join(",")),
    );
    (err.status(), err.to_body())
}

#[async_trait]
impl ProxyHttp for MiroirProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            runtime: None,
            route: None,
            index_uid: None,
            tried: Vec::new(),
            body_bytes: 0,
            status: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        metrics::get().in_flight.inc();
        ctx.started = Instant::now();
        ctx.request_id = request_id::from_header(
            session
                .get_header(respond::REQUEST_ID)
                .map(|v| v.as_bytes()),
        );
        let rt = self.shared.runtime();
        ctx.runtime = Some(rt.clone());

        if let Some(err) = self.reject_oversized(session, &rt) {
            ctx.status = err.status();
            // The body was never read: do not reuse the connection.
            session.set_keepalive(None);
            respond::error(session, &err, &ctx.request_id).await?;
            return Ok(true);
        }

        let req = session.req_header();
        let matched = routes::classify(req.method.as_str(), req.uri.path());
        ctx.route = matched.as_ref().map(|m| m.spec);
        match matched {
            // Unknown routes go to a node, which answers Meilisearch's own 404.
            None => Ok(false),
            Some(m)
                if m.spec.class == RouteClass::PassOne
                    && !shard_field::hides(m.spec.name)
                    && !matches!(m.spec.name, "keys.list" | "key.get") =>
            {
                Ok(false)
            }
            Some(m) => {
                let (spec, param) = (m.spec, m.param_decoded().map(|p| p.into_owned()));
                let index_uid = m.index_uid.map(str::to_owned);
                ctx.index_uid = index_uid.clone();
                self.answer(session, ctx, &rt, spec, index_uid, param).await
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let rt = ctx.runtime.clone().unwrap_or_else(|| self.shared.runtime());
        let Some(idx) = self.shared.pick_node(&rt, &ctx.tried) else {
            return Error::e_explain(ErrorType::ConnectNoRoute, "no node left to try");
        };
        ctx.tried.push(idx);
        Ok(Box::new(rt.nodes[idx].peer.clone()))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent yet, so trying another node is safe for any method.
        let nodes = ctx.runtime.as_ref().map_or(0, |rt| rt.nodes.len());
        if ctx.tried.len() < nodes {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(rt) = ctx.runtime.as_ref() else {
            return Ok(());
        };
        if let Some(&idx) = ctx.tried.last() {
            upstream.insert_header("Host", rt.nodes[idx].host_header.as_str())?;
        }
        upstream.insert_header(respond::REQUEST_ID, ctx.request_id.as_str())?;
        let presented = auth::bearer(
            upstream
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        );
        if let Some(cred) = node_credential(rt, presented).filter(|c| Some(*c) != presented) {
            upstream.insert_header("Authorization", format!("Bearer {cred}"))?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chunk) = body {
            ctx.body_bytes += chunk.len() as u64;
            let limit = ctx
                .runtime
                .as_ref()
                .map_or(u64::MAX, |rt| rt.config.server.max_body_bytes);
            if ctx.body_bytes > limit {
                // A chunked body without a declared length: stop relaying it.
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit");
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = upstream.status.as_u16();
        upstream.insert_header(respond::REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let err = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(413), _) => payload_too_large(
                ctx.runtime
                    .as_ref()
                    .map_or(0, |rt| rt.config.server.max_body_bytes),
            ),
            (ErrorType::ConnectNoRoute, _) => {
                MiroirError::new(Code::NoNodeAvailable, "No Meilisearch node is available.")
            }
            (_, ErrorSource::Upstream) => MiroirError::new(
                Code::NodeUnreachable,
                "The Meilisearch node serving this request did not answer.",
            ),
            (
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => {
                // The client is gone; nothing to write.
                ctx.status = 499;
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                };
            }
            (_, ErrorSource::Downstream) => {
                MiroirError::new(Code::BadRequest, "The request could not be read.")
            }
            _ => {
                log::error!(target: "miroir::proxy", "request {} failed: {e}", ctx.request_id);
                MiroirError::new(Code::Internal, "Miroir failed to serve this request.")
            }
        };
        ctx.status = err.status();
        if let Err(write_err) = respond::error(session, &err, &ctx.request_id).await {
            log::debug!(target: "miroir::proxy", "could not send error response: {write_err}");
        }
        FailToProxy {
            error_code: err.status(),
            can_reuse_downstream: false,
        }
    }

    /// Pingora's error log names the request by this; route templates keep ids and keys that
    /// sit in paths (`/keys/{key}`) out of the logs.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let template = ctx.route.map_or("(unclassified route)", |r| r.template);
        format!(
            "{} {template}, request id {}",
            session.req_header().method,
            ctx.request_id
        )
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let m = metrics::get();
        m.in_flight.dec();
        let template = ctx.route.map_or("unknown", |r| r.template);
        let class = ctx.class_label();
        let status = if ctx.status == 0 {
            session.response_written().map_or(0, |h| h.status.as_u16())
        } else {
            ctx.status
        };
        let elapsed = ctx.started.elapsed();
        m.requests
            .with_label_values(&[template, class, &metrics::status_label(status)])
            .inc();
        m.request_duration
            .with_label_values(&[class])
            .observe(elapsed.as_secs_f64());
        if log::log_enabled!(target: "miroir::access", log::Level::Info) {
            let req = session.req_header();
            let node = match (&ctx.runtime, ctx.tried.last()) {
                (Some(rt), Some(&i)) => rt.nodes[i].id.as_ref().to_owned(),
                _ => "-".to_owned(),
            };
            log::info!(
                target: "miroir::access",
                "{} {} {} {} {:.3}ms node={} class={}",
                ctx.request_id,
                req.method,
                template,
                status,
                elapsed.as_secs_f64() * 1000.0,
                node,
                class
            );
        }
    }
}
