//! `tasks`: the latency of `GET /tasks` through Miroir against the size of its task registry.
//! The registry is filled directly (no node work behind the tasks): finished tasks with their
//! cached views, over ten indexes and three types, and a few unfinished ones whose node tasks
//! the node no longer knows, so every listing still asks a node about them.

use std::path::Path;
use std::time::{Duration, Instant};

use miroir_tasks::{aggregate, EmbeddedStore, NodeTask, NodeView, TaskRecord, TaskUid};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::http::{Conn, Request};
use crate::{Args, SimProcess, KEY};

/// Unfinished tasks at the end of the registry.
const UNFINISHED: u64 = 10;
/// 2025-01-01T00:00:00Z; task `uid` is enqueued `uid` × 100 ms later.
const EPOCH: i64 = 1_735_689_600;

fn at(uid: u64, plus_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(EPOCH).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        + time::Duration::milliseconds(uid as i64 * 100 + plus_ms)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Task `uid` of a registry of `count`: finished (mostly succeeded, some failed or canceled)
/// with its view cached, except the last [`UNFINISHED`].
fn record(uid: u64, count: u64) -> TaskRecord {
    let kind = match uid % 50 {
        0 => "settingsUpdate",
        1 => "documentDeletion",
        _ => "documentAdditionOrUpdate",
    };
    let unfinished = uid + UNFINISHED >= count;
    let mut record = TaskRecord {
        uid: TaskUid(uid),
        index_uid: Some(format!("index-{}", uid % 10)),
        kind: kind.to_owned(),
        enqueued_at: rfc3339(at(uid, 0)),
        node_tasks: vec![NodeTask {
            node: "sim-0".into(),
            // Unknown to the node: it answers 404 and the task stays processing.
            task_uid: Some(if unfinished { 1_000_000_000 + uid } else { uid }),
            error: None,
            share: 0,
        }],
        custom_metadata: None,
        details: Some(json!({ "receivedDocuments": 100 })),
        terminal: None,
        replays: Vec::new(),
        awaiting: Vec::new(),
        canceled_by: None,
    };
    if !unfinished {
        let status = if uid.is_multiple_of(97) {
            "failed"
        } else if uid.is_multiple_of(211) {
            "canceled"
        } else {
            "succeeded"
        };
        let node = NodeView::Task(json!({
            "status": status,
            "details": { "receivedDocuments": 100, "indexedDocuments": 100 },
            "error": if status == "failed" {
                json!({"message": "bad", "code": "invalid_document_id", "type": "invalid_request", "link": "l"})
            } else {
                json!(null)
            },
            "canceledBy": if status == "canceled" { json!(uid + 1) } else { json!(null) },
            "startedAt": rfc3339(at(uid, 50)),
            "finishedAt": rfc3339(at(uid, 70)),
        }));
        record.terminal = Some(aggregate(&record, &[node], 1));
    }
    record
}

fn fill(path: &Path, count: u64) -> Result<Duration, String> {
    let started = Instant::now();
    let store = EmbeddedStore::open(path).map_err(|e| e.to_string())?;
    store
        .import((0..count).map(|uid| record(uid, count)))
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// Sends `path` one request at a time for at least `seconds` and `min` requests (at most
/// `max`); returns the sorted latencies and the last answer.
async fn measure(
    addr: &str,
    path: &str,
    seconds: Duration,
    min: usize,
    max: usize,
) -> Result<(Vec<Duration>, serde_json::Value), String> {
    let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
    let req = Request::new("GET", addr, path, Some(KEY), None);
    let mut body = Vec::new();
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < max && (times.len() < min || started.elapsed() < seconds) {
        let t = Instant::now();
        let status = conn
            .send(&req, &mut body)
            .await
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed());
        if status != 200 {
            return Err(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    times.sort_unstable();
    let last = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok((times, last))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn tasks(args: Args) -> Result<(), String> {
    let bin = std::path::PathBuf::from(args.get("miroir-bin").ok_or("--miroir-bin is required")?);
    let counts: Vec<u64> = args
        .get("counts")
        .unwrap_or("1000,100000,1000000")
        .split(',')
        .map(|c| c.trim().parse().map_err(|_| format!("invalid count `{c}`")))
        .collect::<Result<_, _>>()?;
    let seconds = Duration::from_secs(args.num("seconds", 3)?);
    let node = SimProcess::start(&crate::sim_bin(&bin), KEY, 1)?;
    println!("GET /tasks through Miroir, one request at a time on one connection");
    for count in counts {
        let dir = miroir_testkit::tempdir::TempDir::new("miroir-tasks-bench")
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        // `task_store.path` defaults to `<data_dir>/tasks`.
        let filled = fill(&data.join("tasks").join("tasks.redb"), count)?;
        let port = miroir_testkit::proxy::free_port();
        let toml = format!(
            "shards = 16\nmaster_key = \"{KEY}\"\ndata_dir = \"{}\"\n[server]\nport = {port}\n[metrics]\nenabled = false\n[log]\nlevel = \"warn\"\n[[nodes]]\nid = \"sim-0\"\naddress = \"{}\"\n",
            data.display(),
            node.url()
        );
        let started = Instant::now();
        let miroir = miroir_testkit::proxy::MiroirProcess::start(&bin, &toml, port).await;
        let startup = started.elapsed();
        let addr = format!("127.0.0.1:{port}");
        // The middle of the registry's time span, for a date filter that starts a page there.
        let middle = rfc3339(at(count / 2, 0));
        let queries = [
            "/tasks?limit=20".to_owned(),
            "/tasks?limit=20&statuses=failed&indexUids=index-3".to_owned(),
            format!("/tasks?limit=20&beforeEnqueuedAt={middle}&types=settingsUpdate"),
        ];
        println!(
            "{count} tasks (filled in {:.1} s, Miroir ready in {:.2} s):",
            filled.as_secs_f64(),
            startup.as_secs_f64()
        );
        for q in &queries {
            let (times, last) = measure(&addr, q, seconds, 5, 500).await?;
            let p = |f: f64| ms(times[((times.len() - 1) as f64 * f).round() as usize]);
            println!(
                "  {q:<80} p50 {:>9.3} ms  p90 {:>9.3} ms  max {:>9.3} ms  ({} requests; total {}, {} results)",
                p(0.5),
                p(0.9),
                p(1.0),
                times.len(),
                last["total"],
                last["results"].as_array().map_or(0, Vec::len)
            );
        }
        drop(miroir);
    }
    drop(node);
    Ok(())
}
