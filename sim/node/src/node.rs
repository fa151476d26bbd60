//! `SimNode`: one simulated Meilisearch node on 127.0.0.1, startable, stoppable and
//! restartable from tests. Its tasks run on the tokio runtime that called `start`, so a node
//! can live on a dedicated runtime and be used (or stopped) from another.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::faults::Faults;
use crate::routes;
use crate::server::{self, Serving};
use crate::state::Shared;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub master_key: Option<String>,
    /// 0 = an ephemeral port.
    pub port: u16,
    /// Time each task spends processing.
    pub task_delay: Duration,
    /// Drives default key uids and fault randomness.
    pub seed: u64,
    pub name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            master_key: None,
            port: 0,
            task_delay: Duration::ZERO,
            seed: 0,
            name: "meili-sim".to_owned(),
        }
    }
}

pub struct SimNode {
    shared: Arc<Shared>,
    app: Router,
    addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    serving: tokio::sync::Mutex<Option<Serving>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl SimNode {
    /// Binds 127.0.0.1:`cfg.port` and starts serving. Must be called inside a tokio runtime.
    pub async fn start(cfg: SimConfig) -> std::io::Result<SimNode> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, cfg.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            cfg.name,
            cfg.master_key,
            cfg.seed,
            cfg.task_delay,
        ));
        let app = server::app(routes::router(shared.clone()));
        let runtime = tokio::runtime::Handle::current();
        let worker = runtime.spawn(crate::worker::run(shared.clone()));
        let serving = Serving::start(listener, shared.clone(), app.clone(), &runtime);
        Ok(SimNode {
            shared,
            app,
            addr,
            runtime,
            serving: tokio::sync::Mutex::new(Some(serving)),
            worker: Mutex::new(Some(worker)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Closes the port and resets open connections; data and queued tasks are kept, and task
    /// processing pauses until `restart`.
    pub async fn stop(&self) {
        let serving = self.serving.lock().await.take();
        self.shared.running.send_replace(false);
        if let Some(serving) = serving {
            serving.shutdown().await;
        }
    }

    /// Binds the same port again and resumes. A no-op when already running.
    pub async fn restart(&self) -> std::io::Result<()> {
        let mut serving = self.serving.lock().await;
        if serving.is_some() {
            return Ok(());
        }
        let listener = bind_with_retry(self.addr).await?;
        *serving = Some(Serving::start(
            listener,
            self.shared.clone(),
            self.app.clone(),
            &self.runtime,
        ));
        self.shared.running.send_replace(true);
        Ok(())
    }

    /// Whether the node is currently accepting connections.
    pub async fn is_running(&self) -> bool {
        self.serving.lock().await.is_some()
    }
}

/// The port was ours a moment ago; the OS may need a few milliseconds to release it.
async fn bind_with_retry(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempt = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if attempt < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            worker.abort();
        }
        if let Ok(mut serving) = self.serving.try_lock() {
            if let Some(serving) = serving.take() {
                serving.abort_now();
            }
        }
    }
}
