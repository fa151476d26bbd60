//! Tenant tokens: JWTs a client signs with one of its API keys (HS256, HS384 or HS512), naming
//! the key by uid and the indexes it may search (`searchRules`). Miroir checks the signature,
//! the expiry and the indexes as a node does; the rules' filters are the nodes' to apply.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};
use time::OffsetDateTime;

use super::credentials::constant_time_eq;

/// A credential shaped like a JWT: three segments, the first two JSON objects.
pub struct Token<'a> {
    /// `header.payload`, what the signature signs.
    signed: &'a str,
    signature: &'a str,
    alg: Option<String>,
    claims: Map<String, Value>,
}

/// The index patterns a token may search.
pub struct Rules(Vec<String>);

impl Rules {
    /// The index patterns, in the token's order.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    pub fn covers(&self, index: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => index.starts_with(prefix),
            None => p == index,
        })
    }
}

fn json_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn sign<M: Mac + hmac::digest::KeyInit>(key: &str, data: &str) -> Option<String> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(data.as_bytes());
    Some(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

impl<'a> Token<'a> {
    /// `None` when `credential` is not a JWT: it is then an API key, as on a node.
    pub fn parse(credential: &'a str) -> Option<Self> {
        let (signed, signature) = credential.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        let header = json_object(header)?;
        let claims = json_object(payload)?;
        Some(Self {
            signed,
            signature,
            alg: header.get("alg").and_then(Value::as_str).map(str::to_owned),
            claims,
        })
    }

    /// The uid of the key that signed it ("" when missing: no key has it).
    pub fn key_uid(&self) -> &str {
        self.claims
            .get("apiKeyUid")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Checks the signature with the key string and the expiry; the indexes it may search,
    /// `None` when it is forged, expired or malformed.
    pub fn verify(&self, key: &str, now: OffsetDateTime) -> Option<Rules> {
        let expected = match self.alg.as_deref() {
            Some("HS256") => sign::<Hmac<Sha256>>(key, self.signed),
            Some("HS384") => sign::<Hmac<Sha384>>(key, self.signed),
            Some("HS512") => sign::<Hmac<Sha512>>(key, self.signed),
            _ => None,
        };
        if !expected.is_some_and(|e| constant_time_eq(&e, self.signature)) {
            return None;
        }
        if let Some(exp) = self.claims.get("exp").and_then(Value::as_i64) {
            if now.unix_timestamp() > exp {
                return None;
            }
        }
        match self.claims.get("searchRules") {
            Some(Value::Array(list)) => Some(Rules(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Object(map)) => Some(Rules(map.keys().cloned().collect())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(key: &str, claims: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = sign::<Hmac<Sha256>>(key, &signed).unwrap();
        format!("{signed}.{signature}")
    }

    #[test]
    fn checks_signature_expiry_and_rules() {
        let now = OffsetDateTime::now_utc();
        let good = token(
            "k",
            r#"{"apiKeyUid":"u1","searchRules":{"movies*":{"filter":"x"}}}"#,
        );
        let t = Token::parse(&good).expect("a JWT");
        assert_eq!(t.key_uid(), "u1");
        let rules = t.verify("k", now).expect("valid");
        assert!(rules.covers("movies_fr") && !rules.covers("books"));
        assert!(t.verify("other key", now).is_none());
        let expired = token("k", r#"{"apiKeyUid":"u1","searchRules":["*"],"exp":1}"#);
        assert!(Token::parse(&expired).unwrap().verify("k", now).is_none());
        assert!(Token::parse("not-a-jwt").is_none());
        assert!(Token::parse("a.b.c").is_none());
    }
}
