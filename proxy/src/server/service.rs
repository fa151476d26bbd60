//! The Pingora `ProxyHttp` implementation. It stays thin: `request_filter` classifies the
//! route once and hands it to `dispatch`; the pass-to-one-node class rides Pingora's proxy
//! pipeline (`upstream_peer` and friends).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use super::ctx::RequestCtx;
use super::{aliases, body, dispatch, relay, request_id, respond, sessions};
use crate::auth;
use crate::request::payload_too_large;
use crate::shared::Shared;
use crate::telemetry::metrics;

pub struct MiroirProxy {
    pub shared: Arc<Shared>,
}

impl MiroirProxy {
    /// Classifies the request and resolves its alias, once: the one place an alias becomes an
    /// index (see `aliases`). The path is rewritten to name the index before anything reads
    /// it; what the paths need is kept in `ctx`. Returns the route, and for a route Miroir
    /// answers itself its decoded parameter and index uid (nothing is copied for the others).
    fn route(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Option<(&'static routes::RouteSpec, Option<Answered>)> {
        let table = self.shared.aliases.load();
        let req = session.req_header();
        let m = routes::classify(req.method.as_str(), req.uri.path())?;
        let path = req
            .uri
            .path_and_query()
            .map_or_else(|| req.uri.path(), |p| p.as_str());
        let resolved = aliases::resolve(&table, m.spec, m.index_uid, path).unwrap_or_default();
        ctx.aliases = Some(table);
        ctx.route = Some(m.spec);
        let answered =
            (dispatch::answered_by_miroir(m.spec) || resolved.refused.is_some()).then(|| {
                Answered {
                    param: m.param_decoded().map(|p| p.into_owned()),
                    index_uid: resolved
                        .index_uid
                        .or_else(|| m.index_uid.map(str::to_owned)),
                }
            });
        let spec = m.spec;
        if let Some(uri) = resolved.path.and_then(|p| p.parse::<http::Uri>().ok()) {
            session.req_header_mut().set_uri(uri);
        }
        ctx.alias_targets = resolved.targets;
        ctx.alias_refused = resolved.refused;
        Some((spec, answered))
    }
}

/// What a route Miroir answers itself takes from its path.
struct Answered {
    param: Option<String>,
    index_uid: Option<String>,
}

#[async_trait]
impl ProxyHttp for MiroirProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        metrics::get().in_flight.inc();
        ctx.started = Instant::now();
        ctx.request_id = request_id::from_header(
            session
                .get_header(respond::REQUEST_ID)
                .map(|v| v.as_bytes()),
        );
        let rt = self.shared.cluster.runtime();
        ctx.runtime = Some(rt.clone());

        match self.route(session, ctx) {
            Some((spec, Some(Answered { param, index_uid }))) => {
                ctx.index_uid = index_uid;
                let rw_session = sessions::of(session);
                let writes = sessions::writes(spec);
                // A read waits for the session's own writes (see `sessions`).
                let fresh = match &rw_session {
                    Some(id) if !writes => sessions::wait(&self.shared, &rt, id).await,
                    _ => true,
                };
                let outcome = dispatch::answer(&self.shared, session, ctx, &rt, spec, param).await;
                let outcome = match &rw_session {
                    Some(id) => outcome.map(|reply| {
                        if writes {
                            sessions::after_write(&self.shared, id, &reply);
                        }
                        if fresh {
                            reply
                        } else {
                            sessions::stale(reply)
                        }
                    }),
                    None => outcome,
                };
                dispatch::finish(session, ctx, outcome).await?;
                Ok(true)
            }
            // Passed to a node (unknown routes too: it answers Meilisearch's own 404), which
            // judges the key; Miroir only bounds the body.
            _ => match body::declared_too_large(session, rt.config.server.max_body_bytes) {
                Some(err) => {
                    ctx.status = err.status();
                    session.set_keepalive(None);
                    respond::error(session, &err, &ctx.request_id).await?;
                    Ok(true)
                }
                None if relay::relayable(session) => {
                    relay::relay(&self.shared, session, ctx, &rt).await?;
                    Ok(true)
                }
                None => Ok(false),
            },
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let rt = ctx
            .runtime
            .clone()
            .unwrap_or_else(|| self.shared.cluster.runtime());
        let Some(idx) = self.shared.cluster.pick_node(&rt, &ctx.tried) else {
            return Error::e_explain(ErrorType::ConnectNoRoute, "no node left to try");
        };
        ctx.tried.push(idx);
        let mut peer = Box::new(rt.nodes[idx].peer.clone());
        // The node's answer must come within what is left of the request's deadline.
        let left = (ctx.started + rt.config.server.request_timeout)
            .saturating_duration_since(Instant::now());
        let opts = &mut peer.options;
        opts.read_timeout = Some(opts.read_timeout.map_or(left, |t| t.min(left)));
        opts.write_timeout = Some(opts.write_timeout.map_or(left, |t| t.min(left)));
        Ok(peer)
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
        let header = upstream
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if let Some(cred) = auth::replaced_credential(&rt.config, header) {
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
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = upstream.status.as_u16();
        upstream.insert_header(respond::REQUEST_ID, ctx.request_id.as_str())?;
        respond::close_when_leaving(session);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let past_deadline = ctx
            .runtime
            .clone()
            .filter(|rt| ctx.started.elapsed() >= rt.config.server.request_timeout);
        let err = match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(413), _) => payload_too_large(
                ctx.runtime
                    .as_ref()
                    .map_or(0, |rt| rt.config.server.max_body_bytes),
            ),
            (_, ErrorSource::Upstream) if past_deadline.is_some() => {
                past_deadline.map_or_else(dispatch::unreachable_node, |rt| dispatch::timed_out(&rt))
            }
            (ErrorType::ConnectNoRoute, _) => dispatch::no_node_available(),
            (_, ErrorSource::Upstream) => dispatch::unreachable_node(),
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
