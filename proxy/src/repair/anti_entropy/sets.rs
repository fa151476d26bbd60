//! Key sets and index sets compared across nodes (pure): what each node's copy of one key or
//! one index should become. Miroir keeps no record of the keys and indexes it acknowledged
//! beyond each node's log (whose nodes are not compared until it is replayed), so the
//! nodes that are caught up decide by strict majority; with none, nothing is changed.

use serde_json::{json, Value};

use crate::repair::majority::{no_majority, strict_majority};

/// A key as compared: what `POST /keys` sets, and the key string the node derived from its
/// uid (the same on every node sharing the master key). `actions` and `indexes` are sorted:
/// their order means nothing.
pub fn key_view(listed: &Value) -> Value {
    let sorted = |v: &Value| -> Value {
        let mut list: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        list.sort();
        json!(list)
    };
    json!({
        "uid": listed["uid"],
        "key": listed["key"],
        "name": listed["name"],
        "description": listed["description"],
        "actions": sorted(&listed["actions"]),
        "indexes": sorted(&listed["indexes"]),
        "expiresAt": listed["expiresAt"],
    })
}

/// Meilisearch makes its default keys on every node at its first start, each with a uid of
/// its own: one node's defaults absent from the others are expected (Miroir copies the first
/// node's to every node), never removed.
fn is_default(key: &Value) -> bool {
    key["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Default "))
}

/// What to do to one node's copy of a key.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyFix {
    /// Create it (with the majority's uid, hence the same key string).
    Create(Value),
    /// Set its name and description (the only fields a key update changes).
    Rename(Value),
    /// Delete it and create it again as the majority holds it (actions, indexes or expiry).
    Recreate(Value),
    /// Delete it: the majority has no such key.
    Delete,
}

/// One key's fate: a fix per node (by position in `copies`), or why it is left as is.
#[derive(Debug, PartialEq)]
pub enum Judged<F> {
    Same,
    Fix(Vec<(usize, F)>),
    Unresolved(String),
}

/// Judges one key uid from each compared node's view of it (`None`: the node lacks it).
pub fn judge_key(copies: &[Option<Value>]) -> Judged<KeyFix> {
    if copies.len() < 2 || copies.iter().all(|c| c == &copies[0]) {
        return Judged::Same;
    }
    let target = match strict_majority(copies) {
        Ok(t) => t,
        // One node's own default key, not copied yet: expected (two nodes, or a tie).
        Err(_) if copies.iter().flatten().all(is_default) => return Judged::Same,
        Err(sizes) => return Judged::Unresolved(no_majority(&sizes)),
    };
    let mut fixes = Vec::new();
    for (i, copy) in copies.iter().enumerate() {
        let fix = match (copy, target) {
            (c, t) if c == t => continue,
            (Some(held), None) if is_default(held) => continue,
            (Some(_), None) => KeyFix::Delete,
            (None, Some(want)) => KeyFix::Create(want.clone()),
            (Some(held), Some(want)) if held["key"] != want["key"] => {
                return Judged::Unresolved(
                    "the same uid gives another key string on some node: its master key differs"
                        .into(),
                )
            }
            (Some(held), Some(want)) => {
                let same = |f: &str| held[f] == want[f];
                if same("actions") && same("indexes") && same("expiresAt") {
                    KeyFix::Rename(
                        json!({"name": want["name"], "description": want["description"]}),
                    )
                } else {
                    KeyFix::Recreate(want.clone())
                }
            }
            (None, None) => continue,
        };
        fixes.push((i, fix));
    }
    if fixes.is_empty() {
        Judged::Same
    } else {
        Judged::Fix(fixes)
    }
}

/// What to do to one node's copy of an index.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexFix {
    /// Create it with this primary key and the majority's settings; its documents come back
    /// through the document pass that follows.
    Create(Option<String>),
    /// Give it the majority's primary key (it has none, so it holds no document).
    PrimaryKey(String),
}

/// Judges one index uid from each compared node's view of it: `None` where it is absent,
/// else its primary key. An index held by a minority only is reported, not deleted: without
/// a record of the indexes it acknowledged, Miroir cannot tell a deletion the node missed
/// from a creation the others lost, and deleting an index cannot be undone.
pub fn judge_index(copies: &[Option<Option<String>>]) -> Judged<IndexFix> {
    if copies.len() < 2 || copies.iter().all(|c| c == &copies[0]) {
        return Judged::Same;
    }
    let target = match strict_majority(copies) {
        Ok(t) => t,
        Err(sizes) => return Judged::Unresolved(no_majority(&sizes)),
    };
    let Some(want) = target else {
        return Judged::Unresolved(
            "held by a minority of the nodes only (a missed deletion or a lost creation?)".into(),
        );
    };
    let mut fixes = Vec::new();
    for (i, copy) in copies.iter().enumerate() {
        match (copy, want) {
            (Some(pk), _) if pk == want => {}
            (None, _) => fixes.push((i, IndexFix::Create(want.clone()))),
            (Some(None), Some(pk)) => fixes.push((i, IndexFix::PrimaryKey(pk.clone()))),
            (Some(held), _) => {
                return Judged::Unresolved(format!(
                    "primary key {held:?} on some node, {want:?} on the majority"
                ))
            }
        }
    }
    Judged::Fix(fixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str, actions: Value) -> Value {
        key_view(&json!({
            "uid": uid, "key": format!("k-{uid}"), "name": "n", "description": null,
            "actions": actions, "indexes": ["*"], "expiresAt": null,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
        }))
    }

    #[test]
    fn a_key_missing_extra_or_changed_on_a_minority_is_fixed_there() {
        let k = key("u", json!(["search", "documents.add"]));
        let same_order = key("u", json!(["documents.add", "search"]));
        assert_eq!(
            judge_key(&[Some(k.clone()), Some(same_order)]),
            Judged::Same
        );
        assert_eq!(
            judge_key(&[Some(k.clone()), None, Some(k.clone())]),
            Judged::Fix(vec![(1, KeyFix::Create(k.clone()))])
        );
        assert_eq!(
            judge_key(&[None, Some(k.clone()), None]),
            Judged::Fix(vec![(1, KeyFix::Delete)])
        );
        let mut renamed = k.clone();
        renamed["name"] = json!("other");
        assert_eq!(
            judge_key(&[Some(k.clone()), Some(renamed), Some(k.clone())]),
            Judged::Fix(vec![(
                1,
                KeyFix::Rename(json!({"name": "n", "description": null}))
            )])
        );
        let wider = key("u", json!(["*"]));
        assert_eq!(
            judge_key(&[Some(wider), Some(k.clone()), Some(k.clone())]),
            Judged::Fix(vec![(0, KeyFix::Recreate(k.clone()))])
        );
    }

    #[test]
    fn no_majority_another_key_string_or_a_default_key_changes_nothing() {
        let k = key("u", json!(["search"]));
        assert!(matches!(
            judge_key(&[Some(k.clone()), None]),
            Judged::Unresolved(_)
        ));
        let mut other = k.clone();
        other["key"] = json!("derived-from-another-master-key");
        assert!(matches!(
            judge_key(&[Some(k.clone()), Some(other), Some(k)]),
            Judged::Unresolved(_)
        ));
        let mut default = key("d", json!(["search"]));
        default["name"] = json!("Default Search API Key");
        assert_eq!(
            judge_key(&[Some(default.clone()), None, None]),
            Judged::Same
        );
        assert_eq!(judge_key(&[Some(default), None]), Judged::Same);
    }

    #[test]
    fn an_index_missing_on_a_minority_is_created_one_on_a_minority_reported() {
        let pk = Some(Some("id".to_owned()));
        assert_eq!(
            judge_index(&[pk.clone(), None, pk.clone()]),
            Judged::Fix(vec![(1, IndexFix::Create(Some("id".into())))])
        );
        assert_eq!(
            judge_index(&[pk.clone(), Some(None), pk.clone()]),
            Judged::Fix(vec![(1, IndexFix::PrimaryKey("id".into()))])
        );
        assert!(matches!(
            judge_index(&[pk.clone(), None, None]),
            Judged::Unresolved(_)
        ));
        assert!(matches!(
            judge_index(&[pk.clone(), None]),
            Judged::Unresolved(_)
        ));
        let other = Some(Some("sku".to_owned()));
        assert!(matches!(
            judge_index(&[pk.clone(), other, pk.clone()]),
            Judged::Unresolved(_)
        ));
        assert_eq!(judge_index(&[pk.clone(), pk]), Judged::Same);
    }
}
