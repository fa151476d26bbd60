//! The HTTP front: a manual accept loop (so a node can be stopped and restarted on the same
//! port), per-request fault injection, trailing-slash normalization and the 100 MiB body limit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use meili_sim_engine::{ErrorType, MeiliError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};
use tower::ServiceExt;

use crate::error::{payload_too_large, ApiError};
use crate::state::Shared;

pub const BODY_LIMIT: usize = 100 * 1024 * 1024;

/// The open connections of a running listener, so `stop` can cut them.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, AbortHandle>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn abort_all(&self) {
        for (_, handle) in self.lock().drain() {
            handle.abort();
        }
    }
}

/// A listener being served; dropping it does not stop it, `shutdown` does.
pub struct Serving {
    accept: JoinHandle<()>,
    connections: Arc<Connections>,
}

impl Serving {
    pub fn start(
        listener: TcpListener,
        shared: Arc<Shared>,
        app: Router,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let connections = Arc::new(Connections::default());
        let conns = connections.clone();
        let spawner = rt.clone();
        let accept = rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Transient accept errors (e.g. too many open files): back off, keep serving.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let id = conns.next.fetch_add(1, Ordering::Relaxed);
                let (shared, app, registry) = (shared.clone(), app.clone(), conns.clone());
                let task = spawner.spawn(async move {
                    let cut = Arc::new(Notify::new());
                    let on_cut = cut.clone();
                    let service = hyper::service::service_fn(move |req| {
                        handle(shared.clone(), app.clone(), req, on_cut.clone())
                    });
                    let serve =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    // A cut request drops the connection (and its socket) without an answer.
                    tokio::select! {
                        _ = serve => {}
                        _ = cut.notified() => {}
                    }
                    registry.lock().remove(&id);
                });
                // A connection that already finished must not linger in the registry.
                if !task.is_finished() {
                    conns.lock().insert(id, task.abort_handle());
                }
            }
        });
        Self {
            accept,
            connections,
        }
    }

    /// Synchronous variant for `Drop`: the listener closes once its task is cancelled.
    pub fn abort_now(self) {
        self.accept.abort();
        self.connections.abort_all();
    }

    /// Closes the listener, then resets every open connection.
    pub async fn shutdown(self) {
        self.accept.abort();
        let _ = self.accept.await;
        self.connections.abort_all();
    }
}

/// The router with the body limit the handlers rely on.
pub fn app(router: Router) -> Router {
    router.layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// Meilisearch's CORS layer (any origin, sent as `*`) around every answer: a preflight is
/// answered at once; every other answer varies on the preflight headers and allows a request
/// that names its origin.
async fn handle(
    shared: Arc<Shared>,
    app: Router,
    req: Request<Incoming>,
    cut: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    let headers = req.headers();
    if req.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut response = StatusCode::OK.into_response();
        let out = response.headers_mut();
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        );
        if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        return Ok(with_cors(response, true));
    }
    let origin = headers.contains_key(header::ORIGIN);
    let coding = crate::compress::chosen(headers);
    let response = with_cors(route(shared, app, req, cut).await?, origin);
    Ok(crate::compress::as_accepted(coding, response).await)
}

fn with_cors(mut response: Response<Body>, allow: bool) -> Response<Body> {
    let out = response.headers_mut();
    if allow {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    out.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    response
}

async fn route(
    shared: Arc<Shared>,
    app: Router,
    req: Request<Incoming>,
    cut: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    let req = normalize_path(req);
    let path = req.uri().path().to_owned();
    if !path.starts_with("/_sim/") {
        if let Some(apply) = shared.faults.take_cut(req.method().as_str(), &path) {
            // The whole request is taken (and handled, or not) before the connection goes.
            if apply {
                let _ = app.oneshot(req.map(Body::new)).await;
            } else {
                let _ = axum::body::to_bytes(Body::new(req.into_body()), BODY_LIMIT).await;
            }
            cut.notify_one();
            return std::future::pending().await;
        }
        let plan = shared.faults.plan(&path);
        if plan.hang {
            std::future::pending::<()>().await;
        }
        if let Some(delay) = plan.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = plan.error_status {
            return Ok(injected_error(status));
        }
    }
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|len| len > BODY_LIMIT);
    if too_big {
        return Ok(ApiError(payload_too_large()).into_response());
    }
    let response = match app.oneshot(req.map(Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    // axum's own limit rejection is plain text; Meilisearch answers with its JSON error.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Ok(ApiError(payload_too_large()).into_response());
    }
    Ok(response)
}

fn injected_error(status: u16) -> Response<Body> {
    let error = match status {
        503 => MeiliError::new(
            503,
            "too_many_search_requests",
            ErrorType::System,
            "Too many search requests running at the same time: 1. Retry after 10s.",
        ),
        other => MeiliError::new(
            other,
            "internal",
            ErrorType::Internal,
            "An internal error has occurred. `Simulated fault`.",
        ),
    };
    ApiError(error).into_response()
}

/// `/indexes/` and `/indexes` are the same route, as with Meilisearch's `NormalizePath`.
fn normalize_path<B>(mut req: Request<B>) -> Request<B> {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}
