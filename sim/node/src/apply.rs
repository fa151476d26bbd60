//! Running one task against the node's state: what each operation does to indexes and the
//! queue, and which Meilisearch error fails it. Called by the worker with the state locked.

use std::collections::HashSet;

use meili_sim_engine::{Document, ErrorType, IndexData, MeiliError};
use serde_json::{json, Map, Value};

use crate::clock::now;
use crate::engine_calls::compile_filter;
use crate::error::{index_already_exists, index_not_found};
use crate::faults::TaskFailure;
use crate::ids::{document_id, infer_primary_key, missing_document_id, primary_key_value};
use crate::settings;
use crate::sizes::{human_size, raw_size};
use crate::state::{Db, Index};
use crate::tasks::{Op, Status};

/// Runs task `uid` (already marked processing) to completion.
pub fn process(db: &mut Db, uid: u32, injected: Option<TaskFailure>) {
    let Some(task) = db.tasks.get_mut(&uid) else {
        return;
    };
    let op = task.op.take();
    let index_uid = task.index_uid.clone().unwrap_or_default();
    let outcome = match (injected, op) {
        (Some(f), _) => Err(MeiliError::new(
            500,
            &f.code,
            ErrorType::Internal,
            f.message,
        )),
        (None, Some(op)) => run(db, uid, &index_uid, op),
        (None, None) => Err(MeiliError::internal("task has no operation")),
    };
    let Some(task) = db.tasks.get_mut(&uid) else {
        return;
    };
    task.finished_at = Some(now());
    match outcome {
        Ok(updates) => {
            task.status = Status::Succeeded;
            if let Some(details) = &mut task.details {
                details.extend(updates);
            }
        }
        Err(error) => {
            task.status = Status::Failed;
            task.error = Some(error);
            task.zero_pending_details();
        }
    }
}

type Updates = Map<String, Value>;

fn run(db: &mut Db, uid: u32, index_uid: &str, op: Op) -> Result<Updates, MeiliError> {
    match op {
        Op::AddDocuments {
            docs,
            primary_key,
            merge,
            skip_creation,
            allow_index_creation,
        } => {
            if !allow_index_creation && !db.indexes.contains_key(index_uid) {
                return Err(index_not_found(index_uid));
            }
            let mode = Write {
                merge,
                skip_creation,
            };
            add_documents(db, index_uid, docs, primary_key, mode)
        }
        Op::DeleteIds(ids) => {
            let index = index_mut(db, index_uid)?;
            let deleted = ids
                .iter()
                .filter(|id| index.data.delete_document(id))
                .count();
            index.touch();
            Ok(one("deletedDocuments", json!(deleted)))
        }
        Op::DeleteFilter(filter) => {
            let index = index_mut(db, index_uid)?;
            let compiled =
                compile_filter(&filter, &index.data.settings, "invalid_document_filter")?;
            let doomed: Vec<String> = match compiled {
                None => index.data.external_ids.keys().cloned().collect(),
                Some(f) => index
                    .data
                    .external_ids
                    .iter()
                    .filter(|(_, internal)| {
                        index.data.docs.get(internal).is_some_and(|d| f.matches(d))
                    })
                    .map(|(external, _)| external.clone())
                    .collect(),
            };
            for id in &doomed {
                index.data.delete_document(id);
            }
            index.touch();
            Ok(one("deletedDocuments", json!(doomed.len())))
        }
        Op::Clear => {
            let index = index_mut(db, index_uid)?;
            let deleted = index.data.docs.len();
            index.data.clear();
            index.touch();
            Ok(one("deletedDocuments", json!(deleted)))
        }
        Op::Settings {
            patch,
            allow_index_creation,
        } => {
            if !allow_index_creation && !db.indexes.contains_key(index_uid) {
                return Err(index_not_found(index_uid));
            }
            let index = db
                .indexes
                .entry(index_uid.to_owned())
                .or_insert_with(|| Index::new(index_uid, None));
            let mut view = index.settings.clone();
            settings::apply(&mut view, &patch);
            index.set_settings(view);
            index.touch();
            Ok(Updates::new())
        }
        Op::CreateIndex { primary_key } => {
            if db.indexes.contains_key(index_uid) {
                return Err(index_already_exists(index_uid));
            }
            db.indexes
                .insert(index_uid.to_owned(), Index::new(index_uid, primary_key));
            Ok(Updates::new())
        }
        Op::UpdateIndex {
            primary_key,
            new_uid,
        } => update_index(db, index_uid, primary_key, new_uid),
        Op::DeleteIndex => {
            let index = db
                .indexes
                .remove(index_uid)
                .ok_or_else(|| index_not_found(index_uid))?;
            Ok(one("deletedDocuments", json!(index.data.docs.len())))
        }
        Op::Compact => {
            let index = index_mut(db, index_uid)?;
            let size = json!(human_size(raw_size(index)));
            Ok(Updates::from_iter([
                ("preCompactionSize".to_owned(), size.clone()),
                ("postCompactionSize".to_owned(), size),
            ]))
        }
        Op::Swap(pairs) => swap(db, &pairs),
        Op::Cancel { matched } => {
            let at = now();
            let mut canceled = 0;
            for m in &matched {
                let Some(t) = db.tasks.get_mut(m) else {
                    continue;
                };
                if t.status == Status::Enqueued {
                    t.status = Status::Canceled;
                    t.canceled_by = Some(uid);
                    t.finished_at = Some(at);
                    t.op = None;
                    t.zero_pending_details();
                    canceled += 1;
                }
            }
            Ok(one("canceledTasks", json!(canceled)))
        }
        Op::Delete { matched } => {
            let before = db.tasks.len();
            let doomed: HashSet<u32> = matched.into_iter().collect();
            db.tasks
                .retain(|id, t| !(doomed.contains(id) && t.status.is_finished()));
            Ok(one("deletedTasks", json!(before - db.tasks.len())))
        }
    }
}

fn one(key: &str, value: Value) -> Updates {
    Updates::from_iter([(key.to_owned(), value)])
}

fn index_mut<'a>(db: &'a mut Db, uid: &str) -> Result<&'a mut Index, MeiliError> {
    db.indexes.get_mut(uid).ok_or_else(|| index_not_found(uid))
}

fn pk_already_exists(existing: &str) -> MeiliError {
    MeiliError::invalid(
        "index_primary_key_already_exists",
        format!("Index already has a primary key: `{existing}`."),
    )
}

/// All documents are checked before any is written: one bad document fails the whole task.
/// The index is created first, as Meilisearch 1.50 does: a batch that fails (no primary key
/// to infer, a document without a usable id) still leaves the index, without a primary key.
fn add_documents(
    db: &mut Db,
    index_uid: &str,
    docs: Vec<Document>,
    requested_pk: Option<String>,
    mode: Write,
) -> Result<Updates, MeiliError> {
    db.indexes
        .entry(index_uid.to_owned())
        .or_insert_with(|| Index::new(index_uid, None));
    let existing_pk = db
        .indexes
        .get(index_uid)
        .and_then(|i| i.data.primary_key.clone());
    let primary_key = match (existing_pk, requested_pk) {
        (Some(existing), Some(requested)) if existing != requested => {
            return Err(pk_already_exists(&existing))
        }
        (Some(existing), _) => existing,
        (None, Some(requested)) => requested,
        (None, None) => infer_primary_key(docs.first())?,
    };
    let mut identified = Vec::with_capacity(docs.len());
    let settings = db.indexes.get(index_uid).map(|i| &i.data.settings);
    for doc in docs {
        let id = match primary_key_value(&doc, &primary_key) {
            Some(value) => document_id(value)?,
            None => return Err(missing_document_id(&primary_key, &doc)),
        };
        // An update (PUT) of an existing document keeps its vectors when it sends none.
        if let Some(settings) = settings.filter(|_| !mode.merge || doc.contains_key("_vectors")) {
            crate::engine_calls::check_vectors(index_uid, settings, &id, &doc)?;
        }
        identified.push((id, doc));
    }
    let index = db
        .indexes
        .entry(index_uid.to_owned())
        .or_insert_with(|| Index::new(index_uid, None));
    index.data.primary_key = Some(primary_key);
    let indexed = write_documents(&mut index.data, identified, mode);
    index.touch();
    Ok(one("indexedDocuments", json!(indexed)))
}

/// How a document addition treats existing and new documents.
#[derive(Debug, Clone, Copy, Default)]
struct Write {
    /// PUT: merge fields into the existing document instead of replacing it.
    merge: bool,
    /// `skipCreation=true`: only existing documents are written.
    skip_creation: bool,
}

/// Writes a batch in one pass with `IndexData::put_document`'s semantics (a replaced document
/// keeps its internal id, a new one takes the lowest free id) but without its per-document
/// scan for a free id, which is quadratic on large batches. Returns how many were written.
fn write_documents(data: &mut IndexData, docs: Vec<(String, Document)>, mode: Write) -> usize {
    let mut known: HashSet<String> = data.fields.iter().cloned().collect();
    let mut free = FreeIds::new(data.docs.keys().copied());
    let mut written = 0;
    for (id, doc) in docs {
        let existing = data.external_ids.get(&id).copied();
        if existing.is_none() && mode.skip_creation {
            continue;
        }
        written += 1;
        for key in doc.keys() {
            if known.insert(key.clone()) {
                data.fields.push(key.clone());
            }
        }
        data.record_paths(&doc);
        match existing {
            Some(internal) => {
                let doc = match (mode.merge, data.docs.get(&internal)) {
                    (true, Some(old)) => {
                        let mut merged = old.clone();
                        merged.extend(doc);
                        merged
                    }
                    _ => doc,
                };
                data.docs.insert(internal, doc);
            }
            None => {
                let internal = free.take();
                data.external_ids.insert(id, internal);
                data.docs.insert(internal, doc);
            }
        }
    }
    // The engine's contract after editing `docs` directly.
    data.search_cache.clear();
    written
}

/// Internal ids not in use, lowest first.
struct FreeIds {
    holes: std::vec::IntoIter<u32>,
    next: u32,
}

impl FreeIds {
    fn new(used: impl Iterator<Item = u32>) -> Self {
        let mut holes = Vec::new();
        let mut expected = 0u32;
        for id in used {
            holes.extend(expected..id);
            expected = id + 1;
        }
        Self {
            holes: holes.into_iter(),
            next: expected,
        }
    }

    fn take(&mut self) -> u32 {
        self.holes.next().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

fn update_index(
    db: &mut Db,
    index_uid: &str,
    primary_key: Option<String>,
    new_uid: Option<String>,
) -> Result<Updates, MeiliError> {
    if let Some(new_uid) = &new_uid {
        if new_uid != index_uid && db.indexes.contains_key(new_uid) {
            return Err(MeiliError::new(
                409,
                "index_already_exists",
                ErrorType::InvalidRequest,
                format!("Cannot rename `{index_uid}` to `{new_uid}` as the index already exists. Hint: You can remove `{new_uid}` first and then do your remove."),
            ));
        }
    }
    let index = index_mut(db, index_uid)?;
    if let Some(pk) = primary_key {
        match &index.data.primary_key {
            Some(existing) if existing != &pk && !index.data.docs.is_empty() => {
                return Err(pk_already_exists(existing))
            }
            _ => index.data.primary_key = Some(pk),
        }
    }
    index.touch();
    if let Some(new_uid) = new_uid.filter(|n| n != index_uid) {
        if let Some(mut index) = db.indexes.remove(index_uid) {
            index.data.uid = new_uid.clone();
            db.indexes.insert(new_uid, index);
        }
    }
    Ok(Updates::new())
}

fn swap(db: &mut Db, pairs: &[(String, String, bool)]) -> Result<Updates, MeiliError> {
    let missing: Vec<&str> = pairs
        .iter()
        .flat_map(|(a, b, rename)| if *rename { vec![a] } else { vec![a, b] })
        .filter(|uid| !db.indexes.contains_key(uid.as_str()))
        .map(String::as_str)
        .collect();
    match missing.as_slice() {
        [] => {}
        [one] => return Err(index_not_found(one)),
        many => {
            let list = many
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(MeiliError::new(
                404,
                "index_not_found",
                ErrorType::InvalidRequest,
                format!("Indexes {list} not found."),
            ));
        }
    }
    for (a, b, rename) in pairs {
        if *rename {
            if db.indexes.contains_key(b) {
                return Err(MeiliError::invalid(
                    "invalid_swap_rename",
                    format!("Cannot rename `{a}` to `{b}` as the index already exists. Hint: You can remove `{b}` first and then do your remove."),
                ));
            }
            if let Some(mut index) = db.indexes.remove(a) {
                index.data.uid = b.clone();
                db.indexes.insert(b.clone(), index);
            }
            continue;
        }
        if let (Some(mut ia), Some(mut ib)) = (db.indexes.remove(a), db.indexes.remove(b)) {
            std::mem::swap(&mut ia.data.uid, &mut ib.data.uid);
            db.indexes.insert(b.clone(), ia);
            db.indexes.insert(a.clone(), ib);
        }
    }
    // Like Meilisearch, the task history follows the data it describes.
    for task in db.tasks.values_mut() {
        for (a, b, rename) in pairs {
            match task.index_uid.as_deref() {
                Some(x) if x == a => task.index_uid = Some(b.clone()),
                Some(x) if x == b && !rename => task.index_uid = Some(a.clone()),
                _ => {}
            }
        }
    }
    Ok(Updates::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn batch_writes_reuse_holes_like_put_document() {
        let mut bulk = IndexData::new("i", Some("id".into()), "t");
        let mut single = bulk.clone();
        for id in ["a", "b", "c", "d"] {
            bulk.put_document(id.into(), doc(json!({"id": id})));
            single.put_document(id.into(), doc(json!({"id": id})));
        }
        for idx in [&mut bulk, &mut single] {
            idx.delete_document("a");
            idx.delete_document("c");
        }
        let batch: Vec<(String, Document)> = ["e", "b", "f", "g"]
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    doc(json!({"id": id, "x": {"y": [{"z": 1}]}})),
                )
            })
            .collect();
        for (id, d) in batch.clone() {
            single.put_document(id, d);
        }
        write_documents(&mut bulk, batch, Write::default());
        assert_eq!(bulk.docs, single.docs);
        assert_eq!(bulk.external_ids, single.external_ids);
        assert_eq!(bulk.fields, single.fields);
        assert_eq!(bulk.field_paths, single.field_paths);
        let paths: Vec<&str> = bulk.field_paths.iter().map(String::as_str).collect();
        assert_eq!(paths, ["id", "x", "x.y", "x.y.z"]);
    }

    #[test]
    fn skip_creation_only_updates_existing_documents() {
        let mut index = IndexData::new("i", Some("id".into()), "t");
        index.put_document("a".into(), doc(json!({"id": "a", "v": 1})));
        let batch = vec![
            ("a".to_owned(), doc(json!({"id": "a", "w": 2}))),
            ("b".to_owned(), doc(json!({"id": "b"}))),
        ];
        let mode = Write {
            merge: true,
            skip_creation: true,
        };
        assert_eq!(write_documents(&mut index, batch, mode), 1);
        assert_eq!(
            Value::Object(index.get_document("a").unwrap().clone()),
            json!({"id": "a", "v": 1, "w": 2})
        );
        assert!(index.get_document("b").is_none());
    }
}
