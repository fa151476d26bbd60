//! Index aliases: a name clients use wherever Meilisearch takes an index uid, pointing to one
//! index (read and write) or to several (reads merged across them). Kept in Miroir's data
//! directory (`aliases.json`; with several Miroirs, in Redis too, see `shared_record`) and
//! swapped whole: a request loads the table once, so a repoint is atomic for it (it finishes
//! on the index it resolved), and every later request sees the new target. Changes go one at
//! a time, saved before they are visible.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use miroir_handoff::HintStore;
use serde::{Deserialize, Serialize};

use super::shared_record::{Record, Synced, Turn};

const FILE: &str = "aliases.json";

/// Repoints kept per alias; the oldest is dropped first.
pub const HISTORY: usize = 10;

/// One repoint: who, when, from which targets to which.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Repoint {
    pub at: String,
    pub by: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    /// One target: reads and writes; several: reads only, merged.
    pub targets: Vec<String>,
    /// Whether it was created with `targets` (a list) rather than `target`: its kind, which a
    /// repoint keeps.
    pub multi: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The latest repoints, oldest first, at most [`HISTORY`].
    pub history: VecDeque<Repoint>,
}

/// Every alias, by name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AliasTable {
    aliases: BTreeMap<String, Alias>,
}

/// What a name means to a request.
pub enum Resolved<'a> {
    /// Not an alias: an index uid.
    Index,
    /// An alias of one index.
    One(&'a str),
    /// An alias of several indexes.
    Many(&'a [String]),
}

impl AliasTable {
    pub fn get(&self, name: &str) -> Option<&Alias> {
        self.aliases.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Alias)> {
        self.aliases.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    pub fn resolve(&self, name: &str) -> Resolved<'_> {
        match self.aliases.get(name) {
            None => Resolved::Index,
            Some(a) if a.multi => Resolved::Many(&a.targets),
            Some(a) => a
                .targets
                .first()
                .map_or(Resolved::Many(&a.targets), |t| Resolved::One(t)),
        }
    }

    /// The aliases pointing to index `uid`, sorted.
    pub fn pointing_to(&self, uid: &str) -> Vec<&str> {
        self.aliases
            .iter()
            .filter(|(_, a)| a.targets.iter().any(|t| t == uid))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    pub fn insert(&mut self, name: &str, alias: Alias) {
        self.aliases.insert(name.to_owned(), alias);
    }

    pub fn remove(&mut self, name: &str) -> Option<Alias> {
        self.aliases.remove(name)
    }

    /// Points `name` to `to`, remembering the repoint (bounded). `false` when there is no
    /// such alias.
    pub fn repoint(&mut self, name: &str, to: Vec<String>, at: &str, by: &str) -> bool {
        let Some(alias) = self.aliases.get_mut(name) else {
            return false;
        };
        let from = std::mem::replace(&mut alias.targets, to.clone());
        alias.updated_at = at.to_owned();
        alias.history.push_back(Repoint {
            at: at.to_owned(),
            by: by.to_owned(),
            from,
            to,
        });
        while alias.history.len() > HISTORY {
            alias.history.pop_front();
        }
        true
    }
}

/// Whether `name` may be an alias's name or target: an index uid as Meilisearch accepts one
/// (1 to 400 ASCII letters, digits, `-` and `_`).
pub fn valid_uid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 400
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub struct Aliases {
    record: Arc<Record<AliasTable>>,
}

/// A change of the alias table in progress: checks made under it hold until it is saved.
pub type Change<'a> = Turn<'a, AliasTable>;

impl Aliases {
    /// Opens the record in `data_dir` (none yet: no alias), shared through `hints` when
    /// several Miroirs share it.
    pub fn open(data_dir: &Path, hints: &Arc<HintStore>) -> Result<Self, String> {
        let record = Record::open(data_dir, (FILE, "aliases"), hints)?;
        Ok(Self {
            record: Arc::new(record),
        })
    }

    /// The table as it is now; a request keeps what it loaded.
    pub fn load(&self) -> Arc<AliasTable> {
        self.record.load()
    }

    /// Takes the one turn to change aliases (see `shared_record::Record::turn`).
    pub async fn change(&self) -> Result<Change<'_>, String> {
        self.record.turn().await
    }

    /// The record, for the follower that keeps it in step with other Miroirs.
    pub fn synced(&self) -> Arc<dyn Synced> {
        self.record.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(targets: &[&str]) -> Alias {
        Alias {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            multi: targets.len() > 1,
            created_at: "t0".into(),
            updated_at: "t0".into(),
            history: VecDeque::new(),
        }
    }

    #[test]
    fn history_keeps_the_last_ten_repoints() {
        let mut t = AliasTable::default();
        t.insert("products", alias(&["v0"]));
        for i in 1..=11 {
            assert!(t.repoint("products", vec![format!("v{i}")], &format!("t{i}"), "ops"));
        }
        let h = &t.get("products").unwrap().history;
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h.front().unwrap().from, ["v1"]);
        assert_eq!(h.back().unwrap().to, ["v11"]);
        assert!(!t.repoint("nope", vec![], "t", "ops"));
    }

    #[test]
    fn resolves_names_and_lists_aliases_of_an_index() {
        let mut t = AliasTable::default();
        t.insert("products", alias(&["p1"]));
        t.insert("all", alias(&["p1", "p2"]));
        assert!(matches!(t.resolve("products"), Resolved::One("p1")));
        assert!(matches!(t.resolve("all"), Resolved::Many(m) if m.len() == 2));
        assert!(matches!(t.resolve("p1"), Resolved::Index));
        assert_eq!(t.pointing_to("p1"), ["all", "products"]);
        assert!(t.pointing_to("p3").is_empty());
    }

    #[test]
    fn names_follow_meilisearch_index_uids() {
        assert!(valid_uid("products_v-2"));
        for bad in ["", "a b", "é", "a/b", &"x".repeat(401)] {
            assert!(!valid_uid(bad), "{bad}");
        }
    }
}
