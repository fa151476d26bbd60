//! API keys: storage, Meilisearch's key derivation (HMAC-SHA256 of the hyphenated uid with the
//! master key, as lowercase hex) and the action/index grammar. Request authorization lives in
//! `auth.rs`; this module only knows keys.

use hmac::{Hmac, Mac};
use meili_sim_engine::{ErrorType, MeiliError};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clock::{now, parse_rfc3339, rfc3339};
use crate::error::{api_key_not_found, invalid_type, unknown_field};
use crate::faults::seeded_bytes;

/// Every action a key may be given, as Meilisearch 1.50 spells them.
pub const ACTIONS: &[&str] = &[
    "*",
    "search",
    "documents.*",
    "documents.add",
    "documents.get",
    "documents.delete",
    "indexes.*",
    "indexes.create",
    "indexes.get",
    "indexes.update",
    "indexes.delete",
    "indexes.swap",
    "indexes.compact",
    "tasks.*",
    "tasks.cancel",
    "tasks.delete",
    "tasks.get",
    "tasks.compact",
    "settings.*",
    "settings.get",
    "settings.update",
    "stats.*",
    "stats.get",
    "metrics.*",
    "metrics.get",
    "dumps.*",
    "dumps.create",
    "snapshots.*",
    "snapshots.create",
    "version",
    "keys.create",
    "keys.get",
    "keys.update",
    "keys.delete",
    "experimental.get",
    "experimental.update",
    "export",
    "network.get",
    "network.update",
    "chatCompletions",
    "chats.*",
    "chats.get",
    "chats.delete",
    "chatsSettings.*",
    "chatsSettings.get",
    "chatsSettings.update",
    "*.get",
    "webhooks.get",
    "webhooks.update",
    "webhooks.delete",
    "webhooks.create",
    "webhooks.*",
    "fields.post",
    "dynamicSearchRules.get",
    "dynamicSearchRules.create",
    "dynamicSearchRules.update",
    "dynamicSearchRules.delete",
    "dynamicSearchRules.*",
];

/// Actions covered by `*.get` (Meilisearch leaves `keys.get` out to prevent escalation).
const READ_ACTIONS: &[&str] = &[
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

/// Whether a granted action covers the one a route needs.
pub fn action_covers(granted: &str, wanted: &str) -> bool {
    if granted == wanted || granted == "*" {
        return true;
    }
    if granted == "*.get" {
        return READ_ACTIONS.contains(&wanted);
    }
    match granted.strip_suffix(".*") {
        Some(family) => wanted
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('.')),
        None => false,
    }
}

/// Index patterns on keys: exact uid, `*`, or `prefix*`.
pub fn index_pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

/// The key string Meilisearch derives for `uid`: identical on every node sharing a master key.
pub fn derive_key(master_key: &str, uid: &Uuid) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(master_key.as_bytes()) else {
        return String::new();
    };
    mac.update(uid.hyphenated().to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub uid: Uuid,
    pub key: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub actions: Vec<String>,
    pub indexes: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl ApiKey {
    pub fn is_expired(&self, at: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|exp| exp <= at)
    }

    pub fn allows_action(&self, action: &str) -> bool {
        self.actions
            .iter()
            .any(|granted| action_covers(granted, action))
    }

    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "key": self.key,
            "uid": self.uid.hyphenated().to_string(),
            "actions": self.actions,
            "indexes": self.indexes,
            "expiresAt": self.expires_at.map(rfc3339),
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

/// The keys of one node, in creation order.
#[derive(Debug, Clone)]
pub struct KeyStore {
    master_key: Option<String>,
    keys: Vec<ApiKey>,
    /// Source of generated uids: deterministic per node, different between seeds.
    seed: u64,
    generated: u64,
}

const CREATE_FIELDS: &[&str] = &[
    "description",
    "name",
    "uid",
    "actions",
    "indexes",
    "expiresAt",
];
const PATCH_FIELDS: &[&str] = &["description", "name"];

impl KeyStore {
    /// A store with Meilisearch's default keys (when a master key is set). Their uids come
    /// from `seed`, so two nodes with different seeds have different default keys.
    pub fn new(master_key: Option<String>, seed: u64) -> Self {
        let mut store = Self {
            master_key,
            keys: Vec::new(),
            seed,
            generated: 0,
        };
        if store.master_key.is_none() {
            return store;
        }
        let defaults: [(&str, &str, &[&str]); 4] = [
            ("Default Chat API Key", "Use it to chat and search from the frontend", &["chatCompletions", "search"]),
            (
                "Default Read-Only Admin API Key",
                "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
                &["*.get", "keys.get"],
            ),
            (
                "Default Admin API Key",
                "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
                &["*"],
            ),
            ("Default Search API Key", "Use it to search from the frontend", &["search"]),
        ];
        let created = now();
        for (i, (name, description, actions)) in defaults.into_iter().enumerate() {
            let uid = uuid::Builder::from_random_bytes(seeded_bytes::<16>(seed, i as u64 + 1))
                .into_uuid();
            let key = ApiKey {
                uid,
                key: store.derive(&uid),
                name: Some(name.to_owned()),
                description: Some(description.to_owned()),
                actions: actions.iter().map(|a| (*a).to_owned()).collect(),
                indexes: vec!["*".to_owned()],
                expires_at: None,
                // Distinct instants keep Meilisearch's newest-first listing order stable.
                created_at: created + time::Duration::microseconds(i as i64),
                updated_at: created + time::Duration::microseconds(i as i64),
            };
            store.keys.push(key);
        }
        store
    }

    /// A v4-shaped uid from the node's seed (Meilisearch draws a random one).
    fn generate_uid(&mut self) -> Uuid {
        self.generated += 1;
        let bytes = seeded_bytes::<16>(self.seed, 1_000 + self.generated);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    pub fn master_key(&self) -> Option<&str> {
        self.master_key.as_deref()
    }

    pub fn derive(&self, uid: &Uuid) -> String {
        self.master_key
            .as_deref()
            .map(|mk| derive_key(mk, uid))
            .unwrap_or_default()
    }

    pub fn by_key_string(&self, key: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|k| k.key == key)
    }

    pub fn by_uid(&self, uid: &Uuid) -> Option<&ApiKey> {
        self.keys.iter().find(|k| &k.uid == uid)
    }

    /// `GET /keys/{key}` accepts either the uid or the key string.
    pub fn find(&self, key_or_uid: &str) -> Result<&ApiKey, MeiliError> {
        let found = match Uuid::parse_str(key_or_uid) {
            Ok(uid) => self.by_uid(&uid),
            Err(_) => self.by_key_string(key_or_uid),
        };
        found.ok_or_else(|| api_key_not_found(key_or_uid))
    }

    /// Newest first, as Meilisearch lists them.
    pub fn list(&self) -> Vec<&ApiKey> {
        let mut keys: Vec<&ApiKey> = self.keys.iter().rev().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        keys
    }

    pub fn create(&mut self, body: &Value) -> Result<&ApiKey, MeiliError> {
        let obj = body
            .as_object()
            .ok_or_else(|| invalid_type("bad_request", ".", "an object", body))?;
        if let Some(field) = obj.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
            return Err(unknown_field("bad_request", field, CREATE_FIELDS));
        }
        let description = optional_string(obj, "description", "invalid_api_key_description")?;
        let name = optional_string(obj, "name", "invalid_api_key_name")?;
        let uid = match obj.get("uid") {
            None | Some(Value::Null) => self.generate_uid(),
            Some(Value::String(s)) => Uuid::parse_str(s).map_err(|e| {
                MeiliError::invalid(
                    "invalid_api_key_uid",
                    format!("Invalid value at `.uid`: {e}"),
                )
            })?,
            Some(other) => {
                return Err(invalid_type(
                    "invalid_api_key_uid",
                    ".uid",
                    "a string",
                    other,
                ))
            }
        };
        let actions = string_list(
            obj,
            "actions",
            "invalid_api_key_actions",
            "missing_api_key_actions",
        )?;
        for (i, action) in actions.iter().enumerate() {
            if !ACTIONS.contains(&action.as_str()) {
                return Err(MeiliError::invalid(
                    "invalid_api_key_actions",
                    format!(
                        "Unknown value `{action}` at `.actions[{i}]`: expected one of {}",
                        ACTIONS
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let indexes = string_list(
            obj,
            "indexes",
            "invalid_api_key_indexes",
            "missing_api_key_indexes",
        )?;
        for (i, pattern) in indexes.iter().enumerate() {
            let stem = pattern.strip_suffix('*').unwrap_or(pattern);
            let valid = stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && (pattern == "*" || !stem.is_empty());
            if !valid {
                return Err(MeiliError::invalid(
                    "invalid_api_key_indexes",
                    format!(
                        "Invalid value at `.indexes[{i}]`: `{pattern}` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*)."
                    ),
                ));
            }
        }
        let expires_at = match obj.get("expiresAt") {
            None => {
                return Err(MeiliError::invalid(
                    "missing_api_key_expires_at",
                    "Missing field `expiresAt`",
                ));
            }
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_expiration(s)?),
            Some(other) => {
                return Err(invalid_type(
                    "invalid_api_key_expires_at",
                    ".expiresAt",
                    "a string",
                    other,
                ));
            }
        };
        if self.by_uid(&uid).is_some() {
            return Err(MeiliError::new(
                409,
                "api_key_already_exists",
                ErrorType::InvalidRequest,
                format!("`uid` field value `{uid}` is already an existing API key."),
            ));
        }
        let created = now();
        let key = ApiKey {
            uid,
            key: self.derive(&uid),
            name,
            description,
            actions,
            indexes,
            expires_at,
            created_at: created,
            updated_at: created,
        };
        self.keys.push(key);
        let last = self.keys.len() - 1;
        Ok(&self.keys[last])
    }

    pub fn update(&mut self, key_or_uid: &str, body: &Value) -> Result<&ApiKey, MeiliError> {
        let obj = body
            .as_object()
            .ok_or_else(|| invalid_type("bad_request", ".", "an object", body))?;
        if let Some(field) = obj.keys().find(|k| !PATCH_FIELDS.contains(&k.as_str())) {
            let code = match field.as_str() {
                "uid" => "immutable_api_key_uid",
                "actions" => "immutable_api_key_actions",
                "indexes" => "immutable_api_key_indexes",
                "expiresAt" => "immutable_api_key_expires_at",
                "createdAt" => "immutable_api_key_created_at",
                "updatedAt" => "immutable_api_key_updated_at",
                "key" => "immutable_api_key_key",
                _ => return Err(unknown_field("bad_request", field, PATCH_FIELDS)),
            };
            return Err(MeiliError::invalid(
                code,
                format!("Immutable field `{field}`: expected one of `description`, `name`"),
            ));
        }
        let description = obj
            .get("description")
            .map(|_| optional_string(obj, "description", "invalid_api_key_description"))
            .transpose()?;
        let name = obj
            .get("name")
            .map(|_| optional_string(obj, "name", "invalid_api_key_name"))
            .transpose()?;
        let uid = self.find(key_or_uid)?.uid;
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.uid == uid)
            .ok_or_else(|| api_key_not_found(key_or_uid))?;
        if let Some(d) = description {
            key.description = d;
        }
        if let Some(n) = name {
            key.name = n;
        }
        key.updated_at = now();
        Ok(key)
    }

    pub fn delete(&mut self, key_or_uid: &str) -> Result<(), MeiliError> {
        let uid = self.find(key_or_uid)?.uid;
        self.keys.retain(|k| k.uid != uid);
        Ok(())
    }
}

fn optional_string(
    obj: &Map<String, Value>,
    field: &str,
    code: &str,
) -> Result<Option<String>, MeiliError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_type(code, &format!(".{field}"), "a string", other)),
    }
}

fn string_list(
    obj: &Map<String, Value>,
    field: &str,
    code: &str,
    missing: &str,
) -> Result<Vec<String>, MeiliError> {
    let value = obj
        .get(field)
        .ok_or_else(|| MeiliError::invalid(missing, format!("Missing field `{field}`")))?;
    let items = value
        .as_array()
        .ok_or_else(|| invalid_type(code, &format!(".{field}"), "an array", value))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(invalid_type(
                code,
                &format!(".{field}[{i}]"),
                "a string",
                other,
            )),
        })
        .collect()
}

/// Meilisearch accepts RFC 3339, `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD`
/// (the naive forms in UTC), and only dates in the future.
fn parse_expiration(s: &str) -> Result<OffsetDateTime, MeiliError> {
    let invalid = || {
        MeiliError::invalid(
            "invalid_api_key_expires_at",
            format!(
                "Invalid value at `.expiresAt`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'."
            ),
        )
    };
    let parsed = parse_rfc3339(s)
        .or_else(|| {
            let naive = s.replacen(' ', "T", 1);
            let full = if naive.len() == 10 {
                format!("{naive}T00:00:00Z")
            } else {
                format!("{naive}Z")
            };
            parse_rfc3339(&full)
        })
        .ok_or_else(invalid)?;
    if parsed <= now() {
        return Err(invalid());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_derivation_is_hmac_sha256_of_hyphenated_uid() {
        let uid = Uuid::parse_str("01b4bc42-eb33-4041-b481-254d00cce834").unwrap();
        let a = derive_key("masterKey", &uid);
        assert_eq!(a.len(), 64);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a, derive_key("masterKey", &uid));
        assert_ne!(a, derive_key("otherKey", &uid));
    }

    #[test]
    fn wildcard_actions_cover_their_family_only() {
        assert!(action_covers("documents.*", "documents.add"));
        assert!(!action_covers("documents.*", "indexes.get"));
        assert!(action_covers("*", "keys.delete"));
        assert!(action_covers("*.get", "settings.get"));
        assert!(!action_covers("*.get", "keys.get"));
        assert!(!action_covers("search", "documents.get"));
    }

    #[test]
    fn default_key_uids_follow_the_seed() {
        let a = KeyStore::new(Some("mk".into()), 1);
        let b = KeyStore::new(Some("mk".into()), 1);
        let c = KeyStore::new(Some("mk".into()), 2);
        let uids = |s: &KeyStore| s.keys.iter().map(|k| k.uid).collect::<Vec<_>>();
        assert_eq!(uids(&a), uids(&b));
        assert_ne!(uids(&a), uids(&c));
        assert_eq!(a.list()[0].name.as_deref(), Some("Default Search API Key"));
    }
}
