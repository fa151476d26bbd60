//! Miroir's listening service: each worker thread accepts connections and serves the ones
//! it accepted, socket and task on the same thread.
//!
//! Pingora 0.9's listening service accepts on one runtime and spawns each connection's task
//! on a random one, while the socket stays registered with the accepting runtime's reactor.
//! Every readiness event of such a connection then wakes another thread: 81 % of the
//! proxy's eventfd writes were that, and one connection's throughput was bimodal (5.0-5.3 k
//! or 6.1-6.7 k req/s for `GET /version`, depending on where it landed). Here an accepted
//! socket is registered with the runtime that accepted it, and its task is spawned there.
//!
//! The rest is as Pingora's service does it: the same sockets in the same fd table
//! (graceful upgrades), the same TLS acceptor, the same app (`ServerApp::process_new` per
//! request, with the process's shutdown watch), and on shutdown the accept loops stop
//! before the app's cleanup.

mod conn;
mod socket;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::{Acceptor, TlsSettings};
use pingora_core::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora_core::server::{ListenFds, ShutdownWatch};
use pingora_core::services::Service;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

use conn::ClientConn;

/// A client has this long to finish its TLS handshake (Pingora's value).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// After `EMFILE` the next accept fails at once too: wait for descriptors to be released.
const OUT_OF_FDS_PAUSE: Duration = Duration::from_secs(1);

/// One listening address, plain or TLS.
pub struct Endpoint {
    pub addr: String,
    pub tls: Option<TlsSettings>,
}

pub struct Listening<A> {
    name: String,
    endpoints: Vec<Endpoint>,
    addrs: Vec<String>,
    app: Option<Arc<A>>,
    threads: usize,
    work_stealing: bool,
}

impl<A> Listening<A> {
    pub fn new(
        name: &str,
        app: A,
        endpoints: Vec<Endpoint>,
        threads: usize,
        work_stealing: bool,
    ) -> Self {
        Self {
            name: name.to_owned(),
            addrs: endpoints.iter().map(|e| e.addr.clone()).collect(),
            endpoints,
            app: Some(Arc::new(app)),
            threads: threads.max(1),
            work_stealing,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> Service for Listening<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(app) = self.app.take() else {
            return;
        };
        let mut sockets = Vec::with_capacity(self.endpoints.len());
        for endpoint in self.endpoints.drain(..) {
            match socket::open(&endpoint.addr, fds.as_ref()).await {
                Ok(listener) => sockets.push((listener, endpoint.tls.map(|t| Arc::new(t.build())))),
                Err(e) => fatal(&e),
            }
        }
        let runtimes = match start_workers(&self.name, self.threads, self.work_stealing).await {
            Ok(r) => r,
            Err(e) => fatal(&format!("cannot start the worker threads: {e}")),
        };
        let mut loops = Vec::with_capacity(runtimes.len() * sockets.len());
        for runtime in &runtimes {
            for (listener, tls) in &sockets {
                // Each worker registers its own descriptor of the socket with its reactor.
                let listener = match listener.try_clone() {
                    Ok(l) => l,
                    Err(e) => fatal(&format!("cannot share the listening socket: {e}")),
                };
                loops.push(runtime.spawn(accept_loop(
                    listener,
                    tls.clone(),
                    app.clone(),
                    shutdown.clone(),
                )));
            }
        }
        futures::future::join_all(loops).await;
        drop(sockets);
        app.cleanup().await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// The accept loops run on the workers; this service's own runtime only starts and stops
    /// them.
    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(self.addrs.clone())
    }
}

fn fatal(message: &str) -> ! {
    log::error!(target: "miroir::server", "{message}");
    std::process::exit(1)
}

/// The worker runtimes, one accept loop each: a single-threaded runtime per thread, or with
/// work stealing one shared runtime (its handle once per thread). Each lives on its own
/// thread until the process exits; connections still open after the shutdown keep running
/// there until Pingora ends the process.
async fn start_workers(
    name: &str,
    threads: usize,
    work_stealing: bool,
) -> std::io::Result<Vec<Handle>> {
    if work_stealing {
        let handle = spawn_runtime(format!("{name}-workers"), move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("miroir-worker")
                .enable_all()
                .build()
        })
        .await?;
        return Ok(vec![handle; threads]);
    }
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        handles.push(
            spawn_runtime(format!("{name}-w{i}"), || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            })
            .await?,
        );
    }
    Ok(handles)
}

async fn spawn_runtime(
    thread: String,
    build: impl FnOnce() -> std::io::Result<tokio::runtime::Runtime> + Send + 'static,
) -> std::io::Result<Handle> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(thread).spawn(move || {
        let runtime = match build() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if tx.send(Ok(runtime.handle().clone())).is_ok() {
            runtime.block_on(std::future::pending::<()>());
        }
    })?;
    rx.await
        .map_err(|_| std::io::Error::other("the worker thread ended while starting"))?
}

async fn accept_loop<A: ServerApp + Send + Sync + 'static>(
    listener: StdListener,
    tls: Option<Arc<Acceptor>>,
    app: Arc<A>,
    mut shutdown: ShutdownWatch,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => fatal(&format!("cannot register the listening socket: {e}")),
    };
    while !*shutdown.borrow() {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = shutdown.changed() => match changed {
                Ok(()) => continue,
                Err(_) => break,
            },
        };
        match accepted {
            Ok((socket, peer)) => {
                tokio::spawn(serve(
                    socket,
                    peer,
                    tls.clone(),
                    app.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                log::warn!(target: "miroir::server", "accept() failed: {e}");
                if e.raw_os_error() == Some(libc::EMFILE) {
                    tokio::time::sleep(OUT_OF_FDS_PAUSE).await;
                }
            }
        }
    }
}

/// One client connection, request after request, on the thread that accepted it.
async fn serve<A: ServerApp + Send + Sync + 'static>(
    socket: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<Acceptor>>,
    app: Arc<A>,
    shutdown: ShutdownWatch,
) {
    // Answers leave as soon as they are written (the buffer in `ClientConn` joins their
    // parts).
    let _ = socket.set_nodelay(true);
    let mut l4 = L4Stream::from(socket);
    let digest = SocketDigest::from_raw_fd(std::os::fd::AsRawFd::as_raw_fd(&l4));
    let _ = digest.peer_addr.set(Some(PeerAddr::Inet(peer)));
    l4.set_socket_digest(digest);
    let conn = ClientConn::new(l4);
    let io: Stream = match tls {
        None => Box::new(conn),
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.tls_handshake(conn)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(e)) => {
                    log::debug!(target: "miroir::server", "TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    log::debug!(target: "miroir::server", "TLS handshake with {peer} timed out");
                    return;
                }
            }
        }
    };
    let mut next = app.process_new(io, &shutdown).await;
    while let Some(io) = next {
        next = app.process_new(io, &shutdown).await;
    }
}
