//! What one document's copies on a shard's owners should become. Pure.
//!
//! The latest acknowledged write wins: the copy with the highest version, unless a recorded
//! deletion is newer than every copy (then the document is deleted where it remains). A copy
//! without a version was never written through Miroir (or predates versions): it wins only
//! when no copy has a version and a strict majority of the owners hold it, identical.

use serde_json::Value;

use miroir_filters::hidden;

/// One owner's copy of a document, as compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    pub version: Option<u64>,
    pub digest: u64,
}

impl Copy {
    pub fn of(doc: &Value) -> Self {
        Self {
            version: doc
                .get(hidden::VERSION_FIELD)
                .and_then(hidden::parse_version),
            digest: digest(doc),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every owner holds the same copy (or none does).
    Same,
    /// Write the copy of owner `from` to the owners `to`.
    Write { from: usize, to: Vec<usize> },
    /// Delete the document from the owners `on`.
    Delete { on: Vec<usize> },
    /// The copies differ and nothing says which is right.
    Unresolved(&'static str),
}

/// `copies[i]` is owner `i`'s copy; `deleted_at` the latest recorded deletion covering the id.
pub fn judge(copies: &[Option<Copy>], deleted_at: Option<u64>) -> Verdict {
    let Some(first) = copies.first() else {
        return Verdict::Same;
    };
    if copies.iter().all(|c| c == first) {
        return Verdict::Same;
    }
    let holders: Vec<usize> = (0..copies.len()).filter(|&i| copies[i].is_some()).collect();
    let latest = copies.iter().flatten().filter_map(|c| c.version).max();
    if deleted_at.is_some_and(|d| latest.is_none_or(|v| d > v)) {
        return Verdict::Delete { on: holders };
    }
    let candidates: Vec<usize> = holders
        .iter()
        .copied()
        .filter(|&i| copies[i].and_then(|c| c.version) == latest)
        .collect();
    let winner = match majority(copies, &candidates) {
        Some(w) => w,
        None if latest.is_some() => {
            return Verdict::Unresolved("copies of the same version differ, with no majority")
        }
        // Unversioned everywhere: an identical strict majority of owners, or a stray.
        None if holders.len() == copies.len() => {
            return Verdict::Unresolved("unversioned copies differ, with no majority")
        }
        None => return Verdict::Delete { on: holders },
    };
    if latest.is_none() {
        let same = holders
            .iter()
            .filter(|&&i| copies[i] == copies[winner])
            .count();
        if same * 2 <= copies.len() {
            return Verdict::Delete { on: holders };
        }
    }
    let to = (0..copies.len())
        .filter(|&i| copies[i] != copies[winner])
        .collect();
    Verdict::Write { from: winner, to }
}

/// The candidate whose copy more than half of the candidates share.
fn majority(copies: &[Option<Copy>], candidates: &[usize]) -> Option<usize> {
    candidates.iter().copied().find(|&i| {
        let same = candidates
            .iter()
            .filter(|&&j| copies[j] == copies[i])
            .count();
        same * 2 > candidates.len()
    })
}

/// A digest of a document's content that does not depend on the order of its fields (a node
/// lists them in the order it first saw them).
pub fn digest(doc: &Value) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    feed(&mut h, doc);
    h.digest()
}

fn feed(h: &mut xxhash_rust::xxh3::Xxh3, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.update(b"#");
            h.update(n.to_string().as_bytes());
        }
        Value::String(s) => {
            h.update(b"s");
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Array(a) => {
            h.update(b"[");
            a.iter().for_each(|e| feed(h, e));
            h.update(b"]");
        }
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_unstable();
            h.update(b"{");
            for k in keys {
                h.update(&(k.len() as u64).to_le_bytes());
                h.update(k.as_bytes());
                feed(h, &o[k.as_str()]);
            }
            h.update(b"}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(version: Option<u64>, digest: u64) -> Option<Copy> {
        Some(Copy { version, digest })
    }

    #[test]
    fn the_latest_version_wins_and_is_written_where_it_lacks() {
        assert_eq!(judge(&[c(Some(5), 1), c(Some(5), 1)], None), Verdict::Same);
        assert_eq!(
            judge(&[c(Some(5), 1), None, c(Some(3), 2)], None),
            Verdict::Write {
                from: 0,
                to: vec![1, 2]
            }
        );
        // A copy changed behind Miroir's back lost its version: the versioned one wins.
        assert_eq!(
            judge(&[c(None, 9), c(Some(5), 1)], None),
            Verdict::Write {
                from: 1,
                to: vec![0]
            }
        );
    }

    #[test]
    fn a_newer_deletion_removes_the_copies_an_older_one_does_not() {
        assert_eq!(
            judge(&[c(Some(5), 1), None], Some(7)),
            Verdict::Delete { on: vec![0] }
        );
        assert_eq!(
            judge(&[c(Some(9), 1), None], Some(7)),
            Verdict::Write {
                from: 0,
                to: vec![1]
            }
        );
    }

    #[test]
    fn unversioned_copies_win_only_with_a_majority() {
        // Added on one node behind Miroir's back.
        assert_eq!(
            judge(&[None, c(None, 4)], None),
            Verdict::Delete { on: vec![1] }
        );
        assert_eq!(
            judge(&[c(None, 4), c(None, 4), None], None),
            Verdict::Write {
                from: 0,
                to: vec![2]
            }
        );
        assert!(matches!(
            judge(&[c(None, 4), c(None, 5)], None),
            Verdict::Unresolved(_)
        ));
    }

    #[test]
    fn same_version_different_content_goes_to_the_majority_or_is_left() {
        assert_eq!(
            judge(&[c(Some(5), 1), c(Some(5), 2), c(Some(5), 1)], None),
            Verdict::Write {
                from: 0,
                to: vec![1]
            }
        );
        assert!(matches!(
            judge(&[c(Some(5), 1), c(Some(5), 2)], None),
            Verdict::Unresolved(_)
        ));
    }

    #[test]
    fn the_digest_ignores_field_order_only() {
        let a = json!({"id": 1, "t": "x", "n": {"a": 1, "b": [1, 2]}});
        let b = json!({"n": {"b": [1, 2], "a": 1}, "t": "x", "id": 1});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&json!({"id": 1, "t": "y", "n": {"a": 1, "b": [1, 2]}}))
        );
        assert_ne!(digest(&json!({"a": "1"})), digest(&json!({"a": 1})));
    }
}
