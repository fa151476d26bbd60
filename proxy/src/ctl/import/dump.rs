//! A Meilisearch dump (`.dump`, a gzip-compressed tar as `POST /dumps` writes it, format V6)
//! read as an import source: one pass at opening for what is small (each index's primary key
//! and settings, the keys) and each index's document count; then each index's
//! `documents.jsonl` streamed on a thread of its own, never held whole in memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// What an index of the dump holds, but its documents.
pub struct DumpIndex {
    pub uid: String,
    pub primary_key: Option<String>,
    pub settings: Value,
    pub documents: u64,
}

pub struct Dump {
    path: PathBuf,
    pub indexes: Vec<DumpIndex>,
    /// In the form `GET /keys` lists them (`expiresAt`), the key strings aside: a node derives
    /// them from the uid and its master key.
    pub keys: Vec<Value>,
}

/// Settings a dump always holds but a node accepts only with an experimental feature on
/// (`GET /settings` shows them only then): kept when the dumped node had the feature.
const FEATURE_SETTINGS: [(&str, &str); 2] =
    [("chat", "chatCompletions"), ("foreignKeys", "foreignKeys")];

/// An entry's path without a leading `./`.
fn entry_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let path = entry.path().map_err(|e| e.to_string())?;
    Ok(path.to_string_lossy().trim_start_matches("./").to_owned())
}

fn archive(path: &Path) -> Result<tar::Archive<GzDecoder<BufReader<File>>>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(tar::Archive::new(GzDecoder::new(BufReader::new(file))))
}

fn json(entry: &mut impl Read, name: &str) -> Result<Value, String> {
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .map_err(|e| format!("{name}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))
}

/// A dumped key (`expires_at`) as `GET /keys` shows it (`expiresAt`).
fn listed_key(dumped: Value) -> Value {
    let Value::Object(fields) = dumped else {
        return dumped;
    };
    let renamed: Map<String, Value> = fields
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "expires_at" => ("expiresAt".to_owned(), v),
            "created_at" => ("createdAt".to_owned(), v),
            "updated_at" => ("updatedAt".to_owned(), v),
            _ => (k, v),
        })
        .collect();
    Value::Object(renamed)
}

impl Dump {
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn index(&self, uid: &str) -> Option<&DumpIndex> {
        self.indexes.iter().find(|i| i.uid == uid)
    }

    /// Reads the dump's summary. Blocking: call it off the async workers.
    pub fn open(path: &Path) -> Result<Self, String> {
        let mut version = None;
        let mut keys = Vec::new();
        let mut metadata: Vec<(String, Value)> = Vec::new();
        let mut settings: Vec<(String, Value)> = Vec::new();
        let mut counts: Vec<(String, u64)> = Vec::new();
        let mut features = Value::Null;
        let mut tar = archive(path)?;
        for entry in tar
            .entries()
            .map_err(|e| format!("{}: {e}", path.display()))?
        {
            let mut entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            let name = entry_path(&entry)?;
            let parts: Vec<&str> = name.split('/').collect();
            match parts.as_slice() {
                ["metadata.json"] => {
                    version = json(&mut entry, &name)?["dumpVersion"]
                        .as_str()
                        .map(str::to_owned)
                }
                ["experimental-features.json"] => features = json(&mut entry, &name)?,
                ["keys.jsonl"] => {
                    for line in BufReader::new(&mut entry).lines() {
                        let line = line.map_err(|e| format!("{name}: {e}"))?;
                        if !line.trim().is_empty() {
                            let key =
                                serde_json::from_str(&line).map_err(|e| format!("{name}: {e}"))?;
                            keys.push(listed_key(key));
                        }
                    }
                }
                ["indexes", uid, "metadata.json"] => {
                    metadata.push(((*uid).to_owned(), json(&mut entry, &name)?))
                }
                ["indexes", uid, "settings.json"] => {
                    settings.push(((*uid).to_owned(), json(&mut entry, &name)?))
                }
                ["indexes", uid, "documents.jsonl"] => {
                    let mut n = 0u64;
                    for line in BufReader::new(&mut entry).lines() {
                        let line = line.map_err(|e| format!("{name}: {e}"))?;
                        n += u64::from(!line.trim().is_empty());
                    }
                    counts.push(((*uid).to_owned(), n));
                }
                _ => {}
            }
        }
        match version.as_deref() {
            Some("V6") => {}
            Some(other) => {
                return Err(format!(
                    "{}: a {other} dump; Miroir reads V6 dumps (Meilisearch 1.x)",
                    path.display()
                ))
            }
            None => return Err(format!("{}: not a Meilisearch dump", path.display())),
        }
        let find = |list: &[(String, Value)], uid: &str| {
            let mut found = list.iter().find(|(u, _)| u == uid).map(|(_, v)| v.clone());
            if let Some(Value::Object(settings)) = &mut found {
                for (setting, feature) in FEATURE_SETTINGS {
                    if features[feature] != Value::Bool(true) {
                        settings.remove(setting);
                    }
                }
            }
            found
        };
        let indexes = metadata
            .iter()
            .map(|(uid, meta)| DumpIndex {
                uid: uid.clone(),
                primary_key: meta["primaryKey"].as_str().map(str::to_owned),
                settings: find(&settings, uid).unwrap_or_else(|| Value::Object(Map::new())),
                documents: counts.iter().find(|(u, _)| u == uid).map_or(0, |(_, n)| *n),
            })
            .collect();
        Ok(Self {
            path: path.to_owned(),
            indexes,
            keys,
        })
    }

    /// The index's documents from the `skip`th on, in batches of `batch`, read on a thread of
    /// their own a few batches ahead of the writes.
    pub fn documents(
        &self,
        uid: &str,
        skip: u64,
        batch: usize,
    ) -> mpsc::Receiver<Result<Vec<Value>, String>> {
        let (tx, rx) = mpsc::channel(4);
        let (path, wanted) = (self.path.clone(), format!("indexes/{uid}/documents.jsonl"));
        std::thread::spawn(move || {
            if let Err(e) = stream(&path, &wanted, skip, batch, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }
}

fn stream(
    path: &Path,
    wanted: &str,
    skip: u64,
    batch: usize,
    tx: &mpsc::Sender<Result<Vec<Value>, String>>,
) -> Result<(), String> {
    let mut tar = archive(path)?;
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry_path(&entry)? != wanted {
            continue;
        }
        let mut docs = Vec::with_capacity(batch);
        let mut seen = 0u64;
        for line in BufReader::new(entry).lines() {
            let line = line.map_err(|e| format!("{wanted}: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            seen += 1;
            if seen <= skip {
                continue;
            }
            docs.push(serde_json::from_str(&line).map_err(|e| format!("{wanted}: {e}"))?);
            if docs.len() == batch && tx.blocking_send(Ok(std::mem::take(&mut docs))).is_err() {
                return Ok(());
            }
        }
        if !docs.is_empty() {
            let _ = tx.blocking_send(Ok(docs));
        }
        return Ok(());
    }
    Ok(())
}
