//! What a client's credential may do on the routes Miroir reads, splits or answers itself:
//! its actions, indexes and expiry, checked the way a Meilisearch node checks them, before
//! anything else of the request is read ([`KeyCache::admit`]). Keys are read from a node with
//! Miroir's own node key (`GET /keys`, never `GET /keys/{key}`: nodes log request paths) and
//! kept a few seconds under a keyed hash of each key string; the key strings stay in memory
//! only to check tenant tokens' signatures, and are never logged, sent in a path or put in an
//! error.
//!
//! Routes passed to nodes are judged by the nodes.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use miroir_filters::error::{Code, MiroirError};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::credentials::constant_time_eq;
use super::tenant;
use crate::cluster::{Cluster, Runtime};
use crate::node_io;
use crate::request::{Incoming, Reply};

/// How long a list of keys is trusted. Short: a deleted key keeps its rights at most this
/// long on Miroir's own routes (expiry dates are checked on every request).
const TTL: Duration = Duration::from_secs(2);

/// An unknown credential makes Miroir read the keys again (the key may be new), at most this
/// often: wrong keys cannot make it flood the nodes.
const MIN_REFRESH: Duration = Duration::from_millis(200);

/// Keys read per `GET /keys` page.
const PAGE: usize = 1000;

const MISSING_HEADER: &str =
    "The Authorization header is missing. It must use the bearer authorization method.";
const INVALID_KEY: &str = "The provided API key is invalid.";

/// The actions `*.get` grants (Meilisearch leaves `keys.get` out, against escalation).
const READ_ACTIONS: [&str; 15] = [
    "search",
    "documents.get",
    "export",
    "indexes.get",
    "tasks.get",
    "settings.get",
    "stats.get",
    "metrics.get",
    "version",
    "experimental.get",
    "network.get",
    "chats.get",
    "chatsSettings.get",
    "webhooks.get",
    "dynamicSearchRules.get",
];

/// Task types that concern exactly one index (Meilisearch's `Kind::related_to_one_index`):
/// the only ones a key restricted to some indexes can see.
const ONE_INDEX_KINDS: [&str; 10] = [
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexCompaction",
    "dsrUpdate",
    "dsrClear",
];

/// An API key's rights as a node lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rights {
    actions: Vec<String>,
    indexes: Vec<String>,
    expires_at: Option<OffsetDateTime>,
}

impl Rights {
    /// Reads `GET /keys/{key}`'s answer; `None` when it is not a key of that shape.
    fn from_key_view(v: &Value) -> Option<Self> {
        let strings = |field: &str| -> Option<Vec<String>> {
            v[field]
                .as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        let expires_at = match &v["expiresAt"] {
            Value::Null => None,
            Value::String(s) => Some(OffsetDateTime::parse(s, &Rfc3339).ok()?),
            _ => return None,
        };
        Some(Self {
            actions: strings("actions")?,
            indexes: strings("indexes")?,
            expires_at,
        })
    }

    fn grants(&self, action: &str) -> bool {
        self.actions.iter().any(|granted| {
            granted == "*"
                || granted == action
                || (granted == "*.get" && READ_ACTIONS.contains(&action))
                || granted.strip_suffix(".*").is_some_and(|family| {
                    action
                        .strip_prefix(family)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
        })
    }

    fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// Index patterns of keys: `*`, an exact uid, or `prefix*`.
fn pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

/// What the request may see.
#[derive(Debug, Clone)]
pub enum Access {
    /// The master key, or no master key configured (Meilisearch is then open).
    All,
    Key(Arc<Rights>),
}

impl Access {
    /// Whether the credential may do `action` on `index`.
    pub fn allows(&self, action: &str, index: &str) -> bool {
        match self {
            Access::All => true,
            Access::Key(r) => r.grants(action) && self.index_allowed(index),
        }
    }

    /// Whether every index is authorized (the key's indexes include `*`).
    pub fn all_indexes(&self) -> bool {
        match self {
            Access::All => true,
            Access::Key(r) => r.indexes.iter().any(|p| p == "*"),
        }
    }

    pub fn index_allowed(&self, index: &str) -> bool {
        match self {
            Access::All => true,
            Access::Key(r) => r.indexes.iter().any(|p| pattern_matches(p, index)),
        }
    }

    /// Whether a task (of type `kind`, on `index_uid`) is shown, as Meilisearch decides it:
    /// a key not covering every index sees only tasks of one authorized index, never swaps,
    /// dumps, task cancelations or deletions.
    pub fn task_visible(&self, index_uid: Option<&str>, kind: &str) -> bool {
        self.all_indexes()
            || (ONE_INDEX_KINDS.contains(&kind) && index_uid.is_some_and(|i| self.index_allowed(i)))
    }
}

/// The nodes' keys, by a keyed hash of their key strings.
#[derive(Default)]
pub struct KeyCache {
    hasher: std::collections::hash_map::RandomState,
    snapshot: Mutex<Option<Snapshot>>,
    /// Held while the keys are read, so concurrent misses read them once.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Snapshot {
    read_at: Instant,
    keys: Arc<Keys>,
}

/// The nodes' keys as last read.
#[derive(Default)]
struct Keys {
    /// By a keyed hash of the key string.
    by_slot: HashMap<u64, Arc<Rights>>,
    /// By uid, with the key string: a tenant token names its key by uid and is signed with it.
    by_uid: HashMap<String, (Arc<Rights>, Arc<str>)>,
}

enum Lookup<T> {
    Found(T),
    /// Not among keys read so recently that reading them again would not help.
    Unknown,
    /// Read the keys again.
    Stale,
}

impl KeyCache {
    fn slot(&self, credential: &str) -> u64 {
        self.hasher.hash_one(credential)
    }

    fn lookup<T>(&self, find: &impl Fn(&Keys) -> Option<T>) -> Lookup<T> {
        let snapshot = match self.snapshot.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match snapshot {
            Some(s) if s.read_at.elapsed() < TTL => match find(&s.keys) {
                Some(r) => Lookup::Found(r),
                None if s.read_at.elapsed() < MIN_REFRESH => Lookup::Unknown,
                None => Lookup::Stale,
            },
            _ => Lookup::Stale,
        }
    }

    /// Forgets the keys read: a key was just created, changed or deleted through Miroir.
    pub fn forget(&self) {
        match self.snapshot.lock() {
            Ok(mut guard) => *guard = None,
            Err(poisoned) => *poisoned.into_inner() = None,
        }
    }

    fn store(&self, keys: Keys) {
        let snapshot = Snapshot {
            read_at: Instant::now(),
            keys: Arc::new(keys),
        };
        match self.snapshot.lock() {
            Ok(mut guard) => *guard = Some(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Some(snapshot),
        }
    }
}

fn invalid_key() -> Reply {
    Reply::error(&MiroirError::new(Code::InvalidApiKey, INVALID_KEY))
}

fn missing_header() -> Reply {
    Reply::error(&MiroirError::new(
        Code::MissingAuthorizationHeader,
        MISSING_HEADER,
    ))
}

/// A key's rights for `action` on `index`.
fn judge(
    rights: &Rights,
    action: &str,
    index: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), Reply> {
    if rights.expired(now) {
        return Err(invalid_key());
    }
    // The index is judged before the action, as a node judges them.
    if let Some(i) = index.filter(|i| !rights.indexes.iter().any(|p| pattern_matches(p, i))) {
        return Err(index_denied(rights, i));
    }
    if !rights.grants(action) {
        return Err(invalid_key());
    }
    Ok(())
}

/// What a node answers a key used on an index it does not cover.
fn index_denied(rights: &Rights, index: &str) -> Reply {
    let mut authorized: Vec<&str> = rights.indexes.iter().map(String::as_str).collect();
    authorized.sort_unstable();
    authorized.dedup();
    refused(format!(
        "The API key cannot acces the index `{index}`, authorized indexes are {authorized:?}."
    ))
}

fn refused(message: String) -> Reply {
    Reply::error(&MiroirError::new(Code::InvalidApiKey, message))
}

impl KeyCache {
    /// Every key of the nodes, read page by page from one node with Miroir's own key.
    async fn read_keys(&self, cluster: &Cluster, rt: &Runtime) -> Result<Keys, Reply> {
        let mut keys = Keys::default();
        let mut offset = 0;
        loop {
            let path = format!("/keys?offset={offset}&limit={PAGE}");
            let resp = node_io::any(cluster, rt, &path, rt.node_key()).await?;
            if resp.status != 200 {
                // Miroir's node key is refused: no key can be checked.
                log::error!(
                    target: "miroir::access",
                    "reading the nodes' keys answered HTTP {}; check node_master_key",
                    resp.status
                );
                return Err(invalid_key());
            }
            let page = resp.json().unwrap_or(Value::Null);
            let results = page["results"].as_array().map_or(&[][..], Vec::as_slice);
            for view in results {
                if let (Some(key), Some(rights)) =
                    (view["key"].as_str(), Rights::from_key_view(view))
                {
                    let rights = Arc::new(rights);
                    keys.by_slot.insert(self.slot(key), rights.clone());
                    if let Some(uid) = view["uid"].as_str() {
                        keys.by_uid.insert(uid.to_owned(), (rights, Arc::from(key)));
                    }
                }
            }
            offset += results.len();
            let total = page["total"].as_u64().unwrap_or(0) as usize;
            if results.is_empty() || offset >= total {
                return Ok(keys);
            }
        }
    }

    /// What `find` finds among the nodes' keys, from the cache or read again; `Err` = the
    /// answer to give (an unknown key, or no node to ask).
    async fn find<T>(
        &self,
        cluster: &Cluster,
        rt: &Runtime,
        find: impl Fn(&Keys) -> Option<T>,
    ) -> Result<T, Reply> {
        match self.lookup(&find) {
            Lookup::Found(r) => return Ok(r),
            Lookup::Unknown => return Err(invalid_key()),
            Lookup::Stale => {}
        }
        let _reading = self.refresh.lock().await;
        // Someone else may have read the keys meanwhile.
        match self.lookup(&find) {
            Lookup::Found(r) => return Ok(r),
            Lookup::Unknown => return Err(invalid_key()),
            Lookup::Stale => {}
        }
        let keys = self.read_keys(cluster, rt).await?;
        let found = find(&keys);
        self.store(keys);
        found.ok_or_else(invalid_key)
    }

    /// The rights of the key `credential`.
    async fn rights(
        &self,
        cluster: &Cluster,
        rt: &Runtime,
        credential: &str,
    ) -> Result<Arc<Rights>, Reply> {
        let slot = self.slot(credential);
        self.find(cluster, rt, |k| k.by_slot.get(&slot).cloned())
            .await
    }

    /// Judges the credential a client presents (`None`: no `Authorization` header) for
    /// `action`, on `index` when the route names one, before anything else of the request is
    /// read or any node contacted: a client without the right learns nothing from Miroir
    /// that a node would not tell it. `Err` is the answer a node would give.
    pub async fn admit(
        &self,
        cluster: &Cluster,
        rt: &Runtime,
        presented: Option<&str>,
        action: &str,
        index: Option<&str>,
    ) -> Result<(), Reply> {
        let Some(master) = rt.config.master_key.as_ref() else {
            return Ok(());
        };
        let Some(credential) = presented else {
            return Err(missing_header());
        };
        if master.matches(credential.as_bytes()) {
            return Ok(());
        }
        // Meilisearch takes tenant tokens on search routes only; elsewhere a token is an
        // unknown key.
        if action == "search" {
            if let Some(token) = tenant::Token::parse(credential) {
                let (rights, key) = self
                    .find(cluster, rt, |k| k.by_uid.get(token.key_uid()).cloned())
                    .await?;
                let now = OffsetDateTime::now_utc();
                let Some(rules) = token.verify(&key, now) else {
                    return Err(invalid_key());
                };
                // The token's indexes, then its key's, each refused in a node's words.
                if let Some(i) = index {
                    if !rules.covers(i) {
                        return Err(refused(format!(
                            "The provided tenant token cannot acces the index `{i}`, allowed indexes are {:?}.",
                            rules.patterns()
                        )));
                    }
                    if !rights.indexes.iter().any(|p| pattern_matches(p, i)) {
                        return Err(refused(format!(
                            "The API key used to generate this tenant token cannot acces the index `{i}`."
                        )));
                    }
                }
                return judge(&rights, action, index, now);
            }
        }
        let rights = self.rights(cluster, rt, credential).await?;
        judge(&rights, action, index, OffsetDateTime::now_utc())
    }

    /// Checks that the request's credential allows `action` (a Meilisearch action name such
    /// as `tasks.get`) and says what it may see; `Err` is the reply a node would give.
    pub async fn authorize(
        &self,
        cluster: &Cluster,
        rt: &Runtime,
        inc: &Incoming,
        action: &str,
    ) -> Result<Access, Reply> {
        self.authorize_for(cluster, rt, inc, action, None).await
    }

    /// Like [`KeyCache::authorize`] for an action on one index: what a node would answer when
    /// the key does not cover the index.
    pub async fn authorize_on(
        &self,
        cluster: &Cluster,
        rt: &Runtime,
        inc: &Incoming,
        action: &str,
        index_uid: &str,
    ) -> Result<Access, Reply> {
        self.authorize_for(cluster, rt, inc, action, Some(index_uid))
            .await
    }

    async fn authorize_for(
        &self,
        cluster: &Cluster,
        rt: &Runtime,
        inc: &Incoming,
        action: &str,
        index: Option<&str>,
    ) -> Result<Access, Reply> {
        // Without a master key Meilisearch (and Miroir) is open.
        if rt.config.master_key.is_none() {
            return Ok(Access::All);
        }
        let Some(credential) = inc.auth.as_deref() else {
            return Err(missing_header());
        };
        // Miroir's master key was translated to the nodes' one on the way in.
        if rt
            .node_key()
            .is_some_and(|master| constant_time_eq(master, credential))
        {
            return Ok(Access::All);
        }
        let rights = self.rights(cluster, rt, credential).await?;
        judge(&rights, action, index, OffsetDateTime::now_utc())?;
        Ok(Access::Key(rights))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rights(actions: &[&str], indexes: &[&str]) -> Rights {
        Rights::from_key_view(&json!({
            "actions": actions, "indexes": indexes, "expiresAt": null,
        }))
        .unwrap()
    }

    #[test]
    fn actions_expand_like_meilisearch() {
        let r = rights(&["tasks.*"], &["*"]);
        assert!(r.grants("tasks.get") && r.grants("tasks.cancel") && r.grants("tasks.delete"));
        assert!(!r.grants("stats.get"));
        let r = rights(&["*.get"], &["*"]);
        assert!(r.grants("tasks.get") && r.grants("stats.get") && !r.grants("tasks.delete"));
        let r = rights(&["*"], &["*"]);
        assert!(r.grants("tasks.delete"));
        let r = rights(&["tasks.get"], &["*"]);
        assert!(r.grants("tasks.get") && !r.grants("tasks.cancel"));
        // A family is a whole dotted prefix.
        assert!(!rights(&["task.*"], &["*"]).grants("tasks.get"));
    }

    #[test]
    fn expiry_and_shape() {
        let past = Rights::from_key_view(&json!({
            "actions": ["*"], "indexes": ["*"], "expiresAt": "2001-01-01T00:00:00Z",
        }))
        .unwrap();
        assert!(past.expired(OffsetDateTime::now_utc()));
        assert!(!rights(&["*"], &["*"]).expired(OffsetDateTime::now_utc()));
        assert!(Rights::from_key_view(&json!({"actions": "*", "indexes": []})).is_none());
    }

    #[test]
    fn restricted_keys_see_only_tasks_of_one_authorized_index() {
        let key = Access::Key(Arc::new(rights(&["tasks.get"], &["movies*", "books"])));
        assert!(!key.all_indexes());
        assert!(key.task_visible(Some("movies_fr"), "documentAdditionOrUpdate"));
        assert!(key.task_visible(Some("books"), "indexCreation"));
        assert!(!key.task_visible(Some("bookshelf"), "indexCreation"));
        assert!(!key.task_visible(None, "dumpCreation"));
        assert!(!key.task_visible(Some("movies"), "indexSwap"));
        let every = Access::Key(Arc::new(rights(&["tasks.get"], &["*"])));
        assert!(every.task_visible(None, "taskDeletion"));
        assert!(Access::All.task_visible(None, "indexSwap"));
    }
}
