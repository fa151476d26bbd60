//! `miroir ctl import --from URL --key KEY` or `--dump FILE`: copies one Meilisearch node's
//! indexes (primary key, settings, documents) and keys, read live from the node or from a
//! dump it wrote, into the fleet through Miroir's own API, so documents are sharded and
//! replicated as any write is (no node receives more than its share). Progress is recorded
//! in a state file after each batch the fleet acknowledged: an interrupted import resumes
//! where it stopped (re-sending a batch is harmless, documents are replaced whole). At the
//! end each index's document count is compared with the source's.

mod dump;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use miroir_filters::transfer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::Endpoint;
pub use dump::Dump;

/// Where an import reads: a live node, or a dump file.
pub enum Source {
    Node(Box<Endpoint>),
    Dump(Dump),
}

/// A source's documents of one index, batch by batch.
enum Batches<'a> {
    Node {
        source: &'a Endpoint,
        uid: String,
        offset: u64,
        done: bool,
    },
    Dump(tokio::sync::mpsc::Receiver<Result<Vec<Value>, String>>),
}

impl Batches<'_> {
    async fn next(&mut self) -> Result<Option<Vec<Value>>, String> {
        match self {
            Batches::Node {
                source,
                uid,
                offset,
                done,
            } => {
                if *done {
                    return Ok(None);
                }
                let body = json!({ "limit": BATCH, "offset": *offset, "retrieveVectors": true });
                let page = fetch(source, uid, &body).await?;
                let docs = page["results"].as_array().cloned().unwrap_or_default();
                *offset += docs.len() as u64;
                *done = docs.len() < BATCH;
                Ok(Some(docs).filter(|d| !d.is_empty()))
            }
            Batches::Dump(rx) => rx.recv().await.transpose(),
        }
    }
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::Node(node) => node.name().to_owned(),
            Source::Dump(dump) => dump.name(),
        }
    }

    async fn indexes(&self) -> Result<Vec<(String, Option<String>)>, String> {
        match self {
            Source::Node(node) => list_indexes(node).await,
            Source::Dump(dump) => Ok(dump
                .indexes
                .iter()
                .map(|i| (i.uid.clone(), i.primary_key.clone()))
                .collect()),
        }
    }

    async fn settings(&self, uid: &str) -> Result<Value, String> {
        match self {
            Source::Node(node) => {
                node.call("GET", &format!("/indexes/{uid}/settings"), None)
                    .await
            }
            Source::Dump(dump) => Ok(dump
                .index(uid)
                .map(|i| i.settings.clone())
                .unwrap_or_default()),
        }
    }

    async fn count(&self, uid: &str) -> Result<u64, String> {
        match self {
            Source::Node(node) => count(node, uid).await,
            Source::Dump(dump) => Ok(dump.index(uid).map_or(0, |i| i.documents)),
        }
    }

    /// The keys as `GET /keys` lists them.
    async fn keys(&self) -> Result<Vec<Value>, String> {
        match self {
            Source::Node(node) => {
                let keys = node.call("GET", "/keys?limit=10000", None).await?;
                Ok(keys["results"].as_array().cloned().unwrap_or_default())
            }
            Source::Dump(dump) => Ok(dump.keys.clone()),
        }
    }

    fn documents(&self, uid: &str, from: u64) -> Batches<'_> {
        match self {
            Source::Node(source) => Batches::Node {
                source,
                uid: uid.to_owned(),
                offset: from,
                done: false,
            },
            Source::Dump(dump) => Batches::Dump(dump.documents(uid, from, DUMP_BATCH)),
        }
    }
}

/// Documents per batch read from the source and written through Miroir.
const BATCH: usize = 1000;
/// Documents per batch read from a dump: nothing to page through, and a node indexes larger
/// batches at a lower cost per document (100 000 documents into 3 nodes: 60 s in batches of
/// 1 000, 12 s in batches of 10 000).
const DUMP_BATCH: usize = 10_000;
/// Batches in flight before the oldest one's task is awaited.
const WINDOW: usize = 4;

#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    /// Per index: documents copied (acknowledged by the fleet), and whether it is done.
    indexes: BTreeMap<String, IndexState>,
    keys_done: bool,
}

#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexState {
    copied: u64,
    settings_done: bool,
    done: bool,
}

impl State {
    fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The state file's default name: one per source (a URL or a dump's path).
pub fn default_state_file(from: &str) -> PathBuf {
    let name: String = from
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    PathBuf::from(format!("miroir-import-{name}.json"))
}

pub async fn run(source: &Source, miroir: &Endpoint, state_path: &Path) -> Result<(), String> {
    let mut state = State::load(state_path);
    let indexes = source.indexes().await?;
    println!(
        "importing {} index(es) from {} (progress in {})",
        indexes.len(),
        source.name(),
        state_path.display()
    );
    for (uid, primary_key) in &indexes {
        let mut progress = state.indexes.get(uid).cloned().unwrap_or_default();
        if progress.done {
            println!("{uid}: already imported");
            continue;
        }
        import_index(
            source,
            miroir,
            (uid, primary_key.as_deref()),
            &mut progress,
            |p| {
                state.indexes.insert(uid.clone(), p.clone());
                state.save(state_path)
            },
        )
        .await?;
    }
    if !state.keys_done {
        let copied = import_keys(source, miroir).await?;
        println!("keys: {copied} copied");
        state.keys_done = true;
        state.save(state_path)?;
    }
    // Counts at the end, every index.
    let mut mismatches = Vec::new();
    for (uid, _) in &indexes {
        let (a, b) = (source.count(uid).await?, count(miroir, uid).await?);
        println!("{uid}: {b} document(s) in the fleet, {a} on the source");
        if a != b {
            mismatches.push(format!("{uid}: {b} in the fleet, {a} on the source"));
        }
    }
    match mismatches.is_empty() {
        true => {
            println!("import complete: every index has the source's document count");
            Ok(())
        }
        false => Err(format!(
            "document counts differ (was the source written to during the import?): {}",
            mismatches.join("; ")
        )),
    }
}

async fn list_indexes(source: &Endpoint) -> Result<Vec<(String, Option<String>)>, String> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = source
            .call("GET", &format!("/indexes?limit=1000&offset={offset}"), None)
            .await?;
        let results = page["results"].as_array().cloned().unwrap_or_default();
        offset += results.len();
        all.extend(results.iter().filter_map(|i| {
            Some((
                i["uid"].as_str()?.to_owned(),
                i["primaryKey"].as_str().map(str::to_owned),
            ))
        }));
        if results.len() < 1000 {
            return Ok(all);
        }
    }
}

/// `POST /indexes/{uid}/documents/fetch` with `body`.
async fn fetch(endpoint: &Endpoint, uid: &str, body: &Value) -> Result<Value, String> {
    let path = format!("/indexes/{uid}/documents/fetch");
    endpoint.call("POST", &path, Some(body)).await
}

async fn count(endpoint: &Endpoint, uid: &str) -> Result<u64, String> {
    let answer = fetch(endpoint, uid, &json!({ "limit": 0 })).await?;
    Ok(answer["total"].as_u64().unwrap_or(0))
}

/// Waits for a task of the fleet; its failure is an error naming it.
async fn wait_task(miroir: &Endpoint, answer: &Value) -> Result<(), String> {
    let Some(uid) = answer["taskUid"].as_u64() else {
        return Ok(());
    };
    loop {
        let task = miroir.call("GET", &format!("/tasks/{uid}"), None).await?;
        match task["status"].as_str() {
            Some("succeeded") => return Ok(()),
            Some("failed") | Some("canceled") => {
                return Err(format!(
                    "task {uid} ({}) failed: {}",
                    task["type"].as_str().unwrap_or("?"),
                    task["error"]["message"].as_str().unwrap_or("no message")
                ))
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn import_index(
    source: &Source,
    miroir: &Endpoint,
    (uid, primary_key): (&str, Option<&str>),
    progress: &mut IndexState,
    mut record: impl FnMut(&IndexState) -> Result<(), String>,
) -> Result<(), String> {
    if !progress.settings_done {
        let mut creation = Map::new();
        creation.insert("uid".into(), json!(uid));
        if let Some(pk) = primary_key {
            creation.insert("primaryKey".into(), json!(pk));
        }
        match miroir
            .call("POST", "/indexes", Some(&Value::Object(creation)))
            .await
        {
            Ok(answer) => match wait_task(miroir, &answer).await {
                Err(e) if e.contains("index_already_exists") || e.contains("already exists") => {}
                other => other?,
            },
            Err(e) => return Err(format!("{uid}: creating the index: {e}")),
        }
        let settings = source.settings(uid).await?;
        let answer = miroir
            .call(
                "PATCH",
                &format!("/indexes/{uid}/settings"),
                Some(&settings),
            )
            .await
            .map_err(|e| format!("{uid}: settings: {e}"))?;
        wait_task(miroir, &answer).await?;
        progress.settings_done = true;
        record(progress)?;
    }
    let total = source.count(uid).await?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:<20} {bar:30} {pos:>9}/{len:<9} {per_sec:>12} eta {eta}",
        )
        .map_err(|e| e.to_string())?,
    );
    bar.set_prefix(uid.to_owned());
    bar.set_position(progress.copied);
    let write = match primary_key {
        Some(pk) => format!("/indexes/{uid}/documents?primaryKey={pk}"),
        None => format!("/indexes/{uid}/documents"),
    };
    let mut pending: std::collections::VecDeque<(Value, u64)> = Default::default();
    let mut offset = progress.copied;
    let mut batches = source.documents(uid, offset);
    while let Some(docs) = batches.next().await? {
        let docs: Vec<Value> = docs
            .into_iter()
            .map(|mut d| {
                transfer::writable_document(&mut d);
                d
            })
            .collect();
        let n = docs.len() as u64;
        let answer = miroir
            .call("POST", &write, Some(&Value::Array(docs)))
            .await
            .map_err(|e| format!("{uid}: documents at offset {offset}: {e}"))?;
        offset += n;
        pending.push_back((answer, offset));
        if pending.len() >= WINDOW {
            if let Some((answer, upto)) = pending.pop_front() {
                wait_task(miroir, &answer).await?;
                progress.copied = upto;
                record(progress)?;
                bar.set_position(upto);
            }
        }
    }
    while let Some((answer, upto)) = pending.pop_front() {
        wait_task(miroir, &answer).await?;
        progress.copied = upto;
        record(progress)?;
        bar.set_position(upto);
    }
    bar.finish();
    progress.done = true;
    record(progress)
}

/// Every key of the source but its default ones, with the same uid: with the same master key
/// on the fleet's nodes, the same key strings work.
async fn import_keys(source: &Source, miroir: &Endpoint) -> Result<usize, String> {
    let mut copied = 0;
    for key in &source.keys().await? {
        if key["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Default "))
        {
            continue;
        }
        let body = transfer::key_creation(key);
        match miroir.call("POST", "/keys", Some(&body)).await {
            Ok(_) => copied += 1,
            Err(e) if e.contains("already exists") || e.contains("api_key_already_exists") => {}
            Err(e) => return Err(format!("key {}: {e}", key["uid"])),
        }
    }
    Ok(copied)
}

impl Endpoint {
    fn name(&self) -> &str {
        &self.peer.host_header
    }
}
