//! A real `redis-server` for the Redis task-store tests: spawned on a free 127.0.0.1 port
//! with its data in a temporary directory, killed on drop, restartable on the same port and
//! data (to test what its persistence keeps).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// How the server persists writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Memory only (`--save ''`, no AOF): enough for a test that never restarts it.
    None,
    /// Append-only file, fsync before answering each write (`appendfsync always`): what an
    /// acknowledged task needs to survive a crash of Redis itself.
    AofAlways,
}

/// The `redis-server` binary: `REDIS_SERVER` when set, else the one on `PATH`.
pub fn redis_server_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("REDIS_SERVER").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// Evaluates to a started [`RedisServer`] (`$persistence`), or prints why the test is
/// skipped and returns from the calling test when there is no `redis-server` (install it
/// with `scripts/setup.sh`).
#[macro_export]
macro_rules! require_redis {
    ($persistence:expr) => {
        match $crate::redis::RedisServer::start($persistence) {
            Some(server) => server,
            None => {
                eprintln!("skipped: no redis-server on PATH (scripts/setup.sh installs it; or set REDIS_SERVER) to run this Redis test");
                return;
            }
        }
    };
}

pub struct RedisServer {
    bin: PathBuf,
    pub port: u16,
    persistence: Persistence,
    password: Option<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server; `None` when there is no `redis-server` binary. Panics when one is
    /// there but does not start.
    pub fn start(persistence: Persistence) -> Option<Self> {
        Self::start_with(persistence, None)
    }

    /// Like [`RedisServer::start`], requiring `password` (`requirepass`) when there is one.
    pub fn start_with(persistence: Persistence, password: Option<&str>) -> Option<Self> {
        let bin = redis_server_bin()?;
        let mut server = Self {
            bin,
            port: crate::proxy::free_port(),
            persistence,
            password: password.map(str::to_owned),
            dir: TempDir::new("miroir-redis").expect("temp dir"),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// The URL a client uses, with the password when there is one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("");
        if let Some(p) = &self.password {
            cmd.arg("--requirepass").arg(p);
        }
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AofAlways => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = cmd
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {}:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers `PING`.
    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 64];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf).is_ok_and(|n| {
                // Up, and asking for the password.
                buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH")
            })
    }

    /// Kills the server at once (SIGKILL): what it had not persisted is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
