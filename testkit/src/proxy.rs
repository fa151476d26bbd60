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

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A running `miroir --config <file>` process.
pub struct MiroirProcess {
    child: Child,
    pub port: u16,
    pub config_path: PathBuf,
    log_path: PathBuf,
    dir: TempDir,
}

impl MiroirProcess {
    /// Writes `toml` to a config file and starts `bin` on it; `port` must be the
    /// `server.port` inside `toml`, and [`DATA_DIR`] in it becomes a fresh directory. Waits
    /// until the listener accepts connections.
    pub async fn start(bin: &Path, toml: &str, port: u16) -> Self {
        let dir = TempDir::new("miroir-test").expect("create temp dir");
        let config_path = dir.path().join("miroir.toml");
        let toml = toml.replace(DATA_DIR, &dir.path().join("data").to_string_lossy());
        fs::write(&config_path, toml).expect("write config");
        let log_path = dir.path().join("miroir.log");
        let log = fs::File::create(&log_path).expect("create log file");
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config_path)
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
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
