//! A real Meilisearch process for conformance tests: spawned from `MEILI_BIN` on a fresh
//! database in a temporary directory, killed on drop, restartable on the same port and data.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tempdir::TempDir;

/// Where the project's checkout expects an unmodified Meilisearch binary when `MEILI_BIN` is
/// not set: `../shared/meilisearch/meilisearch`, beside the repository.
const SHARED_BIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/meilisearch/meilisearch"
);

/// The real Meilisearch binary: `MEILI_BIN` when set, else the shared one when present.
pub fn meili_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("MEILI_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let shared = PathBuf::from(SHARED_BIN);
    shared.is_file().then_some(shared)
}

pub struct RealNode {
    bin: PathBuf,
    port: u16,
    master_key: String,
    dir: TempDir,
    child: Option<Child>,
}

impl RealNode {
    pub async fn start(bin: PathBuf, master_key: &str) -> std::io::Result<RealNode> {
        // Reserve an ephemeral port, then hand it to Meilisearch.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let dir = TempDir::new("miroir-meili")?;
        let mut node = RealNode {
            bin,
            port,
            master_key: master_key.to_owned(),
            dir,
            child: None,
        };
        node.spawn().await?;
        Ok(node)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the node keeps on disk (database, dumps, snapshots).
    pub fn home(&self) -> std::path::PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Where the node writes its dumps (`POST /dumps`).
    pub fn dumps_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("dumps")
    }

    async fn spawn(&mut self) -> std::io::Result<()> {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("meili.log"))?;
        let child = Command::new(&self.bin)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--master-key")
            .arg(&self.master_key)
            .arg("--db-path")
            .arg(dir.join("data.ms"))
            .arg("--dump-dir")
            .arg(dir.join("dumps"))
            .arg("--snapshot-dir")
            .arg(dir.join("snapshots"))
            .arg("--no-analytics")
            // Webhooks a test registers call a receiver on this machine, an address
            // Meilisearch refuses by default.
            .arg("--experimental-allowed-ip-networks")
            .arg("127.0.0.0/8")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(30)).await
    }

    async fn wait_healthy(&self, timeout: Duration) -> std::io::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        let url = format!("{}/health", self.url());
        while Instant::now() < deadline {
            if let Ok(resp) = client.get(&url).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{url} not healthy after {timeout:?}"),
        ))
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn().await
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.stop();
    }
}
