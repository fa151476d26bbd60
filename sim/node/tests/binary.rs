//! The `meili-sim` binary as a child process: port discovery from stdout, then HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use miroir_testkit::Client;
use serde_json::json;

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_url_first_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_meili-sim"))
        .args([
            "--port",
            "0",
            "--master-key",
            "KEY",
            "--task-delay-ms",
            "1",
            "--seed",
            "3",
            "--name",
            "n1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn meili-sim");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:"));
    let c = Client::new(url, Some("KEY"));
    assert_eq!(c.get("/health").await.1, json!({"status": "available"}));
    assert_eq!(c.with_key(None).get("/indexes").await.0, 401);
    let (status, _) = c
        .post("/_sim/faults", json!({"latency": {"minMs": 1, "maxMs": 2}}))
        .await;
    assert_eq!(status, 200);
}

#[test]
fn binary_rejects_unknown_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_meili-sim"))
        .arg("--bogus")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
}
