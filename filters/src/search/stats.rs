//! `GET /indexes/{uid}/stats` and `GET /stats` across shards, as pure functions. Within one
//! replica group every shard lives on exactly `replication_factor` nodes, so the sum of a
//! per-document quantity over the group's nodes, divided by RF, counts each document once.
//! `numberOfDocuments` is set exactly by the caller (counted with the shard filter).

use serde_json::{Map, Value};

use crate::hidden::RESERVED_PREFIX;

/// Sums over a group, divided by `rf` and rounded (replicas that diverge give non-integers).
fn per_copy(sum: f64, rf: u32) -> Value {
    Value::from((sum / f64::from(rf.max(1))).round() as u64)
}

/// One index's stats from the stats of every node of a replica group.
pub fn merge_index_stats(nodes: &[&Value], rf: u32) -> Value {
    let mut sums: Map<String, Value> = Map::new();
    let mut numbers: Vec<(String, f64)> = Vec::new();
    let mut fields: Vec<(String, f64)> = Vec::new();
    let mut databases: Option<Vec<(String, f64)>> = None;
    for node in nodes {
        let Some(obj) = node.as_object() else {
            continue;
        };
        for (key, value) in obj {
            match value {
                Value::Number(n) => add(&mut numbers, key, n.as_f64().unwrap_or(0.0)),
                Value::Bool(b) => {
                    let was = sums.get(key).and_then(Value::as_bool).unwrap_or(false);
                    sums.insert(key.clone(), Value::Bool(was || *b));
                }
                Value::Object(dist) if key == "fieldDistribution" => {
                    for (field, n) in dist {
                        if !field.starts_with(RESERVED_PREFIX) {
                            add(&mut fields, field, n.as_f64().unwrap_or(0.0));
                        }
                    }
                }
                // Each internal database's size is per-document data too: summed likewise.
                Value::Object(sizes) if key == "internalDatabaseSizes" => {
                    let list = databases.get_or_insert_with(Vec::new);
                    for (db, n) in sizes {
                        add(list, db, n.as_f64().unwrap_or(0.0));
                    }
                }
                other => {
                    sums.entry(key.clone()).or_insert_with(|| other.clone());
                }
            }
        }
    }
    for (key, sum) in numbers {
        sums.insert(key, per_copy(sum, rf));
    }
    if let Some(list) = databases {
        sums.insert(
            "internalDatabaseSizes".into(),
            Value::Object(
                list.into_iter()
                    .map(|(k, n)| (k, per_copy(n, rf)))
                    .collect(),
            ),
        );
    }
    let mut dist: Vec<(String, f64)> = fields;
    dist.sort_by(|a, b| a.0.cmp(&b.0));
    sums.insert(
        "fieldDistribution".into(),
        Value::Object(
            dist.into_iter()
                .map(|(k, n)| (k, per_copy(n, rf)))
                .collect(),
        ),
    );
    Value::Object(sums)
}

fn add(list: &mut Vec<(String, f64)>, key: &str, n: f64) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some((_, sum)) => *sum += n,
        None => list.push((key.to_owned(), n)),
    }
}

/// When some node of the group did not answer: scales the per-document figures of `stats`
/// (merged from the nodes that did) so they describe `count` documents, the exact count.
/// An estimate, proportional to what the answering nodes hold.
pub fn rescale_to(stats: &mut Value, count: u64) {
    let seen = stats["numberOfDocuments"].as_u64().unwrap_or(0);
    if seen == 0 || seen == count {
        return;
    }
    let factor = count as f64 / seen as f64;
    let scale = |v: &mut Value| {
        if let Some(n) = v.as_u64() {
            *v = Value::from((n as f64 * factor).round() as u64);
        }
    };
    if let Some(obj) = stats.as_object_mut() {
        for (key, value) in obj.iter_mut() {
            match key.as_str() {
                "rawDocumentDbSize" | "numberOfEmbeddings" | "numberOfEmbeddedDocuments" => {
                    scale(value)
                }
                "fieldDistribution" => value
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                    .for_each(scale),
                _ => {}
            }
        }
    }
}

/// Sets the exact document count and the average size derived from it.
pub fn set_document_count(stats: &mut Value, count: u64) {
    let raw = stats["rawDocumentDbSize"].as_u64();
    if let Some(obj) = stats.as_object_mut() {
        obj.insert("numberOfDocuments".into(), Value::from(count));
        if let Some(raw) = raw {
            obj.insert(
                "avgDocumentSize".into(),
                Value::from(raw.checked_div(count).unwrap_or(0)),
            );
        }
    }
}

/// A byte count as Meilisearch shows it with `sizeFormat=human`: binary units, at most two
/// decimals (`4 KiB`, `3.99 KiB`, `512 B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", UNITS[unit])
}

fn to_human(v: &mut Value) {
    if let Some(n) = v.as_u64() {
        *v = Value::String(human_size(n));
    }
}

/// `sizeFormat=human` on one index's stats: its sizes as text. Miroir merges sizes as numbers
/// and formats them last.
pub fn index_sizes_to_human(stats: &mut Value) {
    let Some(obj) = stats.as_object_mut() else {
        return;
    };
    for (key, value) in obj.iter_mut() {
        match key.as_str() {
            "rawDocumentDbSize" | "avgDocumentSize" => to_human(value),
            "internalDatabaseSizes" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
                .for_each(to_human),
            _ => {}
        }
    }
}

/// `sizeFormat=human` on `GET /stats`: the database sizes and every index's sizes as text.
pub fn global_sizes_to_human(stats: &mut Value) {
    for key in ["databaseSize", "usedDatabaseSize"] {
        if let Some(v) = stats.get_mut(key) {
            to_human(v);
        }
    }
    if let Some(indexes) = stats.get_mut("indexes").and_then(Value::as_object_mut) {
        indexes.values_mut().for_each(index_sizes_to_human);
    }
}

/// `GET /stats` from the answers of every node of a replica group: sizes summed over the
/// group, the latest `lastUpdate`, each index merged as by [`merge_index_stats`].
pub fn merge_global_stats(nodes: &[&Value], rf: u32) -> Value {
    let size = |key: &str| -> u64 { nodes.iter().filter_map(|n| n[key].as_u64()).sum() };
    // RFC 3339 timestamps in one format (UTC, `Z`) order as strings.
    let last_update = nodes
        .iter()
        .filter_map(|n| n["lastUpdate"].as_str())
        .max()
        .map_or(Value::Null, |s| Value::String(s.to_owned()));
    let mut uids: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n["indexes"].as_object())
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    uids.sort_unstable();
    uids.dedup();
    let indexes: Map<String, Value> = uids
        .into_iter()
        .map(|uid| {
            let per_node: Vec<&Value> =
                nodes.iter().filter_map(|n| n["indexes"].get(uid)).collect();
            (uid.to_owned(), merge_index_stats(&per_node, rf))
        })
        .collect();
    let mut out = Map::new();
    out.insert("databaseSize".into(), Value::from(size("databaseSize")));
    if nodes.iter().any(|n| n.get("usedDatabaseSize").is_some()) {
        out.insert(
            "usedDatabaseSize".into(),
            Value::from(size("usedDatabaseSize")),
        );
    }
    out.insert("lastUpdate".into(), last_update);
    out.insert("indexes".into(), Value::Object(indexes));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_sums_are_divided_by_the_replication_factor() {
        let a = json!({"numberOfDocuments": 6, "rawDocumentDbSize": 600, "avgDocumentSize": 100, "isIndexing": false,
            "numberOfEmbeddings": 0, "fieldDistribution": {"id": 6, "genre": 4, "_miroir_shard": 6}});
        let b = json!({"numberOfDocuments": 4, "rawDocumentDbSize": 400, "avgDocumentSize": 100, "isIndexing": true,
            "numberOfEmbeddings": 0, "fieldDistribution": {"id": 4, "genre": 2, "_miroir_shard": 4}});
        let mut merged = merge_index_stats(&[&a, &b], 2);
        set_document_count(&mut merged, 5);
        assert_eq!(
            merged,
            json!({"numberOfDocuments": 5, "rawDocumentDbSize": 500, "avgDocumentSize": 100, "isIndexing": true,
                "numberOfEmbeddings": 0, "fieldDistribution": {"genre": 3, "id": 5}})
        );
        let global = merge_global_stats(
            &[
                &json!({"databaseSize": 10, "usedDatabaseSize": 5, "lastUpdate": "2026-01-02T00:00:00Z", "indexes": {"m": a}}),
                &json!({"databaseSize": 20, "usedDatabaseSize": 7, "lastUpdate": null, "indexes": {"m": b}}),
            ],
            2,
        );
        assert_eq!(global["databaseSize"], 30);
        assert_eq!(global["usedDatabaseSize"], 12);
        assert_eq!(global["lastUpdate"], "2026-01-02T00:00:00Z");
        assert_eq!(global["indexes"]["m"]["fieldDistribution"]["id"], 5);

        // Only `a` answered: its figures, scaled to the exact count.
        let mut partial = merge_index_stats(&[&a], 2);
        rescale_to(&mut partial, 6);
        set_document_count(&mut partial, 6);
        assert_eq!(partial["fieldDistribution"], json!({"genre": 4, "id": 6}));
        assert_eq!(partial["rawDocumentDbSize"], 600);
    }

    #[test]
    fn internal_database_sizes_are_summed_and_human_sizes_formatted_last() {
        let a = json!({"numberOfDocuments": 1, "rawDocumentDbSize": 4096, "avgDocumentSize": 4096,
            "internalDatabaseSizes": {"main": 4096, "documents": 8192}, "fieldDistribution": {}});
        let b = json!({"numberOfDocuments": 1, "rawDocumentDbSize": 4080, "avgDocumentSize": 4080,
            "internalDatabaseSizes": {"main": 4096, "documents": 4096}, "fieldDistribution": {}});
        let mut merged = merge_index_stats(&[&a, &b], 1);
        assert_eq!(
            merged["internalDatabaseSizes"],
            json!({"main": 8192, "documents": 12288})
        );
        set_document_count(&mut merged, 2);
        index_sizes_to_human(&mut merged);
        assert_eq!(merged["rawDocumentDbSize"], "7.98 KiB");
        assert_eq!(merged["avgDocumentSize"], "3.99 KiB");
        assert_eq!(
            merged["internalDatabaseSizes"],
            json!({"main": "8 KiB", "documents": "12 KiB"})
        );
        assert_eq!(merged["numberOfDocuments"], 2);
        // Without the parameter the nodes send no internal sizes, and Miroir adds none.
        let plain = merge_index_stats(&[&json!({"rawDocumentDbSize": 1})], 1);
        assert!(plain.get("internalDatabaseSizes").is_none());

        let mut global =
            json!({"databaseSize": 249856, "usedDatabaseSize": 512, "indexes": {"m": merged}});
        global_sizes_to_human(&mut global);
        assert_eq!(global["databaseSize"], "244 KiB");
        assert_eq!(global["usedDatabaseSize"], "512 B");
        assert_eq!(global["indexes"]["m"]["avgDocumentSize"], "3.99 KiB");
    }
}
