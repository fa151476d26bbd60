//! Request authorization as Meilisearch does it: master key, API keys (actions, index patterns,
//! expiry) and tenant tokens (HS256/384/512 JWTs signed with an API key, whose `searchRules`
//! narrow the indexes and add filters to searches).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use meili_sim_engine::MeiliError;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};
use uuid::Uuid;

use crate::clock::now;
use crate::error::{invalid_api_key, missing_authorization_header, missing_master_key};
use crate::keys::{index_pattern_matches, KeyStore};

const INVALID_KEY: &str = "The provided API key is invalid.";

/// What an authorized caller may see.
#[derive(Debug, Clone)]
pub struct Access {
    /// Whether a write may create a missing index (the key also has `indexes.create`).
    pub allow_index_creation: bool,
    /// Index patterns of the API key; `None` for the master key or an open node.
    key_indexes: Option<Vec<String>>,
    /// A tenant token's rules: index pattern -> extra filter.
    search_rules: Option<Vec<(String, Option<Value>)>>,
}

impl Default for Access {
    /// Master key, or a node without one: everything is allowed.
    fn default() -> Self {
        Self {
            allow_index_creation: true,
            key_indexes: None,
            search_rules: None,
        }
    }
}

impl Access {
    fn tenant_allows(&self, index: &str) -> bool {
        match &self.search_rules {
            Some(rules) => rules.iter().any(|(p, _)| index_pattern_matches(p, index)),
            None => true,
        }
    }

    fn key_allows(&self, index: &str) -> bool {
        match &self.key_indexes {
            Some(patterns) => patterns.iter().any(|p| index_pattern_matches(p, index)),
            None => true,
        }
    }

    /// Whether every index is visible (`*` among the key's indexes and the token's rules).
    pub fn all_indexes_visible(&self) -> bool {
        self.key_indexes
            .as_ref()
            .is_none_or(|p| p.iter().any(|p| p == "*"))
            && self
                .search_rules
                .as_ref()
                .is_none_or(|r| r.iter().any(|(p, _)| p == "*"))
    }

    pub fn is_index_visible(&self, index: &str) -> bool {
        self.tenant_allows(index) && self.key_allows(index)
    }

    /// The errors Meilisearch gives when a key or token reaches for an index it does not cover.
    pub fn check_index(&self, index: &str) -> Result<(), MeiliError> {
        if !self.tenant_allows(index) {
            let allowed: Vec<&str> = self
                .search_rules
                .iter()
                .flatten()
                .map(|(p, _)| p.as_str())
                .collect();
            return Err(invalid_api_key(format!(
                "The provided tenant token cannot acces the index `{index}`, allowed indexes are {allowed:?}."
            )));
        }
        if !self.key_allows(index) {
            if self.search_rules.is_some() {
                return Err(invalid_api_key(format!(
                    "The API key used to generate this tenant token cannot acces the index `{index}`."
                )));
            }
            let allowed = self.key_indexes.clone().unwrap_or_default();
            return Err(invalid_api_key(format!(
                "The API key cannot acces the index `{index}`, authorized indexes are {allowed:?}."
            )));
        }
        Ok(())
    }

    /// The tenant token's filter for `index`: an exact rule wins over a pattern.
    pub fn extra_filter(&self, index: &str) -> Option<Value> {
        let rules = self.search_rules.as_ref()?;
        let exact = rules.iter().find(|(p, _)| p == index);
        let rule = exact.or_else(|| rules.iter().find(|(p, _)| index_pattern_matches(p, index)))?;
        rule.1.clone()
    }
}

/// Authorizes a request needing `action` (on `index` when the route names one).
pub fn authorize(
    keys: &KeyStore,
    authorization: Option<&str>,
    action: &str,
    index: Option<&str>,
) -> Result<Access, MeiliError> {
    let is_keys_route = action.starts_with("keys.");
    let Some(master_key) = keys.master_key() else {
        return if is_keys_route {
            Err(missing_master_key())
        } else {
            Ok(Access::default())
        };
    };
    let token = match authorization {
        None => return Err(missing_authorization_header()),
        Some(header) => match header.split_once(' ') {
            Some(("Bearer", token)) => token,
            _ if header == "Bearer" => return Err(invalid_api_key(INVALID_KEY)),
            _ => return Err(missing_authorization_header()),
        },
    };
    if token == master_key {
        return Ok(Access::default());
    }

    let tenant = if action == "search" || action == "chatCompletions" {
        tenant_token(keys, token)?
    } else {
        None
    };
    let (key_uid, search_rules) = match tenant {
        Some((uid, rules)) => (uid, Some(rules)),
        None => (
            keys.by_key_string(token)
                .map(|k| k.uid)
                .ok_or_else(|| invalid_api_key(INVALID_KEY))?,
            None,
        ),
    };
    let key = keys
        .by_uid(&key_uid)
        .ok_or_else(|| invalid_api_key(INVALID_KEY))?;
    let access = Access {
        allow_index_creation: key.allows_action("indexes.create"),
        key_indexes: Some(key.indexes.clone()),
        search_rules,
    };
    if let Some(index) = index {
        access.check_index(index)?;
    }
    if key.is_expired(now()) || !key.allows_action(action) {
        return Err(invalid_api_key(INVALID_KEY));
    }
    Ok(access)
}

type Rules = Vec<(String, Option<Value>)>;

/// `Ok(None)` when the token is not a JWT (it is then tried as an API key), as Meilisearch does.
fn tenant_token(keys: &KeyStore, token: &str) -> Result<Option<(Uuid, Rules)>, MeiliError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let decode_json = |part: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()?
            .as_object()
            .cloned()
    };
    let could_not_decode =
        |why: &str| invalid_api_key(format!("Could not decode tenant token, {why}."));
    let (Some(jwt_header), Some(claims)) = (decode_json(header), decode_json(payload)) else {
        return Ok(None);
    };
    let uid = claims
        .get("apiKeyUid")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| could_not_decode("JSON error: missing field `apiKeyUid`"))?;
    let secret = keys.derive(&uid);
    let signed = format!("{header}.{payload}");
    let expected = match jwt_header.get("alg").and_then(Value::as_str) {
        Some("HS256") => hmac_sign::<Hmac<Sha256>>(&secret, &signed),
        Some("HS384") => hmac_sign::<Hmac<Sha384>>(&secret, &signed),
        Some("HS512") => hmac_sign::<Hmac<Sha512>>(&secret, &signed),
        _ => return Err(could_not_decode("InvalidAlgorithm")),
    };
    if expected.as_deref() != Some(signature) {
        return Err(could_not_decode("InvalidSignature"));
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
        let now = now().unix_timestamp();
        if now > exp {
            return Err(invalid_api_key(format!(
                "Tenant token expired. Was valid up to `{exp}` and we're now `{now}`."
            )));
        }
    }
    let rules = match claims.get("searchRules") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|p| (p.to_owned(), None))
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(p, rule)| {
                (
                    p.clone(),
                    rule.get("filter").filter(|f| !f.is_null()).cloned(),
                )
            })
            .collect(),
        _ => return Err(could_not_decode("JSON error: missing field `searchRules`")),
    };
    Ok(Some((uid, rules)))
}

fn hmac_sign<M: Mac + hmac::digest::KeyInit>(secret: &str, data: &str) -> Option<String> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(data.as_bytes());
    Some(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Builds an HS256 tenant token; for tests and the harness.
pub fn sign_tenant_token(
    api_key: &str,
    api_key_uid: &str,
    search_rules: Value,
    exp: Option<i64>,
) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = serde_json::json!({ "apiKeyUid": api_key_uid, "searchRules": search_rules });
    if let Some(exp) = exp {
        claims["exp"] = exp.into();
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signature = hmac_sign::<Hmac<Sha256>>(api_key, &signed).unwrap_or_default();
    format!("{signed}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> KeyStore {
        KeyStore::new(Some("masterKey".into()), 3)
    }

    #[test]
    fn master_key_and_missing_header() {
        let keys = store();
        assert!(authorize(&keys, Some("Bearer masterKey"), "indexes.create", None).is_ok());
        assert_eq!(
            authorize(&keys, None, "search", Some("a"))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize(&keys, Some("Bearer nope"), "search", Some("a"))
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn tenant_token_rules_become_filters_and_bad_signature_fails() {
        let keys = store();
        let search = keys
            .list()
            .into_iter()
            .find(|k| k.actions == ["search"])
            .unwrap()
            .clone();
        let uid = search.uid.to_string();
        let token = sign_tenant_token(
            &search.key,
            &uid,
            json!({"movies": {"filter": "genre = x"}}),
            None,
        );
        let access = authorize(
            &keys,
            Some(&format!("Bearer {token}")),
            "search",
            Some("movies"),
        )
        .unwrap();
        assert_eq!(access.extra_filter("movies"), Some(json!("genre = x")));
        let err = authorize(
            &keys,
            Some(&format!("Bearer {token}")),
            "search",
            Some("books"),
        )
        .unwrap_err();
        assert!(err
            .message
            .contains("tenant token cannot acces the index `books`"));
        let forged = sign_tenant_token("not-the-key", &uid, json!(["*"]), None);
        let err = authorize(
            &keys,
            Some(&format!("Bearer {forged}")),
            "search",
            Some("movies"),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Could not decode tenant token, InvalidSignature."
        );
    }
}
