//! One Miroir process owns a data directory at a time: its task store, hint store and
//! applied topology. The owner holds an exclusive lock on `data_dir/miroir.lock` for its
//! whole life. A binary upgrade hands the directory over: the new process (`--upgrade`)
//! receives the listening sockets, then waits for the lock; the old one, once its listeners
//! are closed and its last request and write have finished, exits and so releases it. The
//! sockets' backlog holds new connections for that moment: no request fails.
//!
//! From the signal on (`SIGQUIT` for an upgrade, `SIGTERM` for a stop) every answer closes
//! its connection: a client is never promised a kept-alive connection that the old process
//! then closes under its next request.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How long an upgrading process waits for the old one: Pingora keeps accepting for 5 s
/// after the sockets are sent, then requests drain within their deadline.
const TAKEOVER_WAIT: Duration = Duration::from_secs(120);

/// The data directory's lock; released when the process exits.
pub struct Owner {
    _file: File,
}

/// Takes the data directory. `wait`: an upgrade, whose old process still holds it for a
/// few seconds; otherwise another holder is an error (two processes on one directory would
/// each believe they own its stores).
pub fn take(data_dir: &Path, wait: bool) -> Result<Owner, String> {
    let path = data_dir.join("miroir.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                if told {
                    log::info!(
                        target: "miroir::server",
                        "took over {} after {} ms",
                        data_dir.display(),
                        started.elapsed().as_millis()
                    );
                }
                return Ok(Owner { _file: file });
            }
            Err(TryLockError::WouldBlock) if wait && started.elapsed() < TAKEOVER_WAIT => {
                if !told {
                    log::info!(
                        target: "miroir::server",
                        "waiting for the previous Miroir process to finish its requests and release {}",
                        data_dir.display()
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(format!(
                    "another Miroir process is using the data directory {}{}",
                    data_dir.display(),
                    if wait {
                        " and did not release it (was it sent SIGQUIT?)"
                    } else {
                        "; to replace it without downtime, start this one with --upgrade and \
                         send SIGQUIT to the old one"
                    }
                ))
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

/// Requests and writes still running in this process.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// Set once the process was told to hand over or stop.
static LEAVING: AtomicBool = AtomicBool::new(false);

/// Whether answers should close their connection (the process is about to leave).
pub fn leaving() -> bool {
    LEAVING.load(Ordering::Relaxed)
}

async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Counts as work in progress while it lives: the process does not exit under it.
pub struct Busy(());

impl Busy {
    pub fn start() -> Self {
        BUSY.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Once the listeners are closed (an upgrade or a stop), exits as soon as nothing has been
/// in progress for a moment, rather than after Pingora's fixed grace period: the next
/// process is waiting for the data directory.
pub struct ExitWhenDrained;

/// Idle this long before exiting: a connection accepted just before the listeners closed is
/// counted only once its request is read, which on a loaded machine can take a while.
const QUIET: Duration = Duration::from_secs(1);

#[async_trait]
impl BackgroundService for ExitWhenDrained {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Pingora acts on these signals too; here they only mark the process as leaving.
        let mut quit = signal(SignalKind::quit()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        while !*shutdown.borrow() {
            tokio::select! {
                _ = next(&mut quit) => LEAVING.store(true, Ordering::Relaxed),
                _ = next(&mut term) => LEAVING.store(true, Ordering::Relaxed),
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
        LEAVING.store(true, Ordering::Relaxed);
        let mut idle_since: Option<Instant> = None;
        loop {
            if BUSY.load(Ordering::Relaxed) > 0 {
                idle_since = None;
            } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= QUIET {
                log::info!(target: "miroir::server", "listeners closed and nothing in progress: exiting");
                std::process::exit(0);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
