//! Starting Miroir itself as a child process for integration tests: a config file in a fresh
//! temporary directory, stderr captured to a file there, the process killed on drop.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::tempdir::TempDir;

/// Placeholder for `data_dir` in configs given to [`MiroirProcess`]: replaced by a directory
/// of the process's own, so parallel tests never share a task store.
pub const DATA_DIR: &str = "@DATA_DIR@";

/// A port for a Miroir listener, free a moment ago on 127.0.0.1. Taken below the kernel's
/// ephemeral range, so nodes binding port 0 can never be handed the same port before Miroir
/// binds it, and never twice in one test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test processes run one after another; the pid spreads them over the range anyway.
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN)
}

/// A running `miroir --config <file>` process.
pub struct MiroirProcess {
    child: Child,
    pub port: u16,
    pub config_path: PathBuf,
    log_path: PathBuf,
    dir: TempDir,
    /// Environment variables the process gets (test hooks), on restarts too.
    env: Vec<(String, String)>,
}

impl MiroirProcess {
    /// Writes `toml` to a config file and starts `bin` on it; `port` must be the
    /// `server.port` inside `toml`, and [`DATA_DIR`] in it becomes a fresh directory. Waits
    /// until the listener accepts connections.
    pub async fn start(bin: &Path, toml: &str, port: u16) -> Self {
        Self::start_with_env(bin, toml, port, &[]).await
    }

    /// Like [`MiroirProcess::start`], with environment variables for the process (test hooks
    /// such as `MIROIR_TEST_MAX_TASKS`).
    pub async fn start_with_env(bin: &Path, toml: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let dir = TempDir::new("miroir-test").expect("create temp dir");
        let config_path = dir.path().join("miroir.toml");
        let toml = toml.replace(DATA_DIR, &dir.path().join("data").to_string_lossy());
        fs::write(&config_path, toml).expect("write config");
        let log_path = dir.path().join("miroir.log");
        let log = fs::File::create(&log_path).expect("create log file");
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn miroir");
        let mut process = Self {
            child,
            port,
            config_path,
            log_path,
            dir,
            env,
        };
        process.wait_listening().await;
        process
    }

    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("miroir exited early ({status}):\n{}", self.log());
            }
            // A connection alone could reach another process that holds the port for a
            // moment; Miroir's own `/health` (answered even with every node down) cannot.
            if self.answers_health().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "miroir did not listen on {} in time:\n{}",
            self.port,
            self.log()
        );
    }

    async fn answers_health(&self) -> bool {
        let client = reqwest::Client::new();
        let url = format!("{}/health", self.url());
        match client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(resp) => resp.headers().contains_key("x-request-id"),
            Err(_) => false,
        }
    }

    /// Kills the process without a graceful shutdown (SIGKILL, as a crash would) and starts
    /// it again on the same config and data directory; its log continues in the same file.
    pub async fn crash_and_restart(&mut self, bin: &Path) {
        self.crash_and_restart_after(bin, |_| {}).await
    }

    /// Like [`MiroirProcess::crash_and_restart`], running `meanwhile` on the data directory
    /// while no process holds it (to lose a file, as a disk failure would).
    pub async fn crash_and_restart_after(&mut self, bin: &Path, meanwhile: impl FnOnce(&Path)) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        meanwhile(&self.dir().join("data"));
        let log = fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("open log file");
        self.child = Command::new(bin)
            .arg("--config")
            .arg(&self.config_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn miroir");
        self.wait_listening().await;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (it is then reaped).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn write_config(&self, toml: &str) {
        // Write then rename, as editors do, so the watcher never reads half a file.
        let tmp = self.dir.path().join("miroir.toml.tmp");
        let toml = toml.replace(DATA_DIR, &self.dir.path().join("data").to_string_lossy());
        fs::write(&tmp, toml).expect("write config");
        fs::rename(&tmp, &self.config_path).expect("replace config");
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits until the log contains `needle` (or panics with the log after `timeout`).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("`{needle}` never appeared in the log:\n{}", self.log());
    }
}

impl Drop for MiroirProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
