//! `/webhooks` as Meilisearch 1.50 serves it: the same bodies, limits, redaction and errors
//! (each checked against the real binary), over Miroir's own registry.

use std::collections::BTreeMap;

use miroir_filters::error::{Code, MiroirError};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::registry::{Hooks, Registry, Webhook};
use crate::request::{found, json_object, Reply};

/// Meilisearch's limits.
const MAX_WEBHOOKS: usize = 20;
const MAX_HEADERS: usize = 200;

pub async fn list(registry: &Registry) -> Reply {
    let results: Vec<Value> = registry
        .current()
        .iter()
        .map(|(uuid, hook)| view(uuid, hook))
        .collect();
    Reply::json(200, &json!({ "results": results }))
}

pub fn get(registry: &Registry, param: &str) -> Result<Reply, MiroirError> {
    let uuid = parse_uuid(param)?;
    let hooks = registry.current();
    let hook = hooks.get(&uuid).ok_or_else(|| not_found(&uuid))?;
    Ok(Reply::json(200, &view(&uuid, hook)))
}

pub async fn create(
    registry: &Registry,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<Reply, MiroirError> {
    let fields = Fields::parse(content_type, body)?;
    let uuid = Uuid::new_v4();
    let url = match fields.url {
        Some(Some(url)) if !url.is_empty() => checked_url(url)?,
        _ => return Err(missing_url(&uuid)),
    };
    let mut headers = BTreeMap::new();
    if let Some(Some(given)) = fields.headers {
        // On creation a `null` value is kept as an empty one, as Meilisearch keeps it.
        for (name, value) in given {
            headers.insert(name, value.unwrap_or_default());
        }
    }
    check_headers(&uuid, &headers)?;
    let hook = Webhook { url, headers };
    let shown = view(&uuid, &hook);
    registry
        .change(
            |hooks| {
                if hooks.len() >= MAX_WEBHOOKS {
                    return Err(too_many_webhooks());
                }
                hooks.insert(uuid, hook);
                Ok(())
            },
            not_saved,
        )
        .await?;
    Ok(Reply::json(201, &shown))
}

pub async fn update(
    registry: &Registry,
    param: &str,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<Reply, MiroirError> {
    let uuid = editable(param)?;
    let fields = Fields::parse(content_type, body)?;
    let url = match fields.url {
        None => None,
        Some(Some(url)) if !url.is_empty() => Some(checked_url(url)?),
        Some(_) => return Err(missing_url(&uuid)),
    };
    let updated = registry
        .change(
            |hooks: &mut Hooks| {
                let hook = hooks.get_mut(&uuid).ok_or_else(|| not_found(&uuid))?;
                let mut next = hook.clone();
                if let Some(url) = url {
                    next.url = url;
                }
                match fields.headers {
                    None => {}
                    Some(None) => next.headers.clear(),
                    // A `null` value removes that header.
                    Some(Some(given)) => {
                        for (name, value) in given {
                            match value {
                                Some(value) => next.headers.insert(name, value),
                                None => next.headers.remove(&name),
                            };
                        }
                    }
                }
                check_headers(&uuid, &next.headers)?;
                *hook = next.clone();
                Ok(next)
            },
            not_saved,
        )
        .await?;
    Ok(Reply::json(200, &view(&uuid, &updated)))
}

pub async fn delete(registry: &Registry, param: &str) -> Result<Reply, MiroirError> {
    let uuid = editable(param)?;
    registry
        .change(
            |hooks: &mut Hooks| {
                hooks
                    .remove(&uuid)
                    .map(drop)
                    .ok_or_else(|| not_found(&uuid))
            },
            not_saved,
        )
        .await?;
    Ok(Reply::raw(204, Vec::new()))
}

/// A webhook as Meilisearch shows it: `Authorization` headers redacted.
fn view(uuid: &Uuid, hook: &Webhook) -> Value {
    let headers: Map<String, Value> = hook
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = if name.eq_ignore_ascii_case("authorization") {
                redacted_authorization(value)
            } else {
                value.clone()
            };
            (name.clone(), Value::String(shown))
        })
        .collect();
    json!({
        "uuid": uuid,
        "isEditable": true,
        "url": hook.url,
        "headers": headers,
    })
}

/// Meilisearch's redaction: a `Bearer ` prefix is kept, then a few leading characters of
/// the secret, more of them the longer it is, and none under ten.
fn redacted_authorization(value: &str) -> String {
    let (prefix, secret) = match value.strip_prefix("Bearer ") {
        Some(rest) => ("Bearer ", rest),
        None => ("", value),
    };
    let (shown, masks) = match secret.chars().count() {
        0..10 => (0, 3),
        10..20 => (2, 4),
        20..30 => (3, 5),
        _ => (5, 6),
    };
    let head: String = secret.chars().take(shown).collect();
    format!("{prefix}{head}{}...", "X".repeat(masks))
}

/// The uuid in the path, refusing the one Meilisearch reserves for the webhook given on its
/// command line (Miroir has none, but a client cannot change it either).
fn editable(param: &str) -> Result<Uuid, MiroirError> {
    let uuid = parse_uuid(param)?;
    if uuid.is_nil() {
        return Err(MiroirError::new(
            Code::ImmutableWebhook,
            format!("Webhook `{uuid}` is immutable. The webhook defined from the command line cannot be modified using the API."),
        ));
    }
    Ok(uuid)
}

fn parse_uuid(param: &str) -> Result<Uuid, MiroirError> {
    Uuid::parse_str(param)
        .map_err(|e| MiroirError::new(Code::InvalidWebhookUuid, format!("Invalid UUID: {e}")))
}

fn checked_url(url: String) -> Result<String, MiroirError> {
    match reqwest::Url::parse(&url) {
        Ok(_) => Ok(url),
        Err(e) => Err(MiroirError::new(
            Code::InvalidWebhookUrl,
            format!("Invalid URL `{url}`: {e}"),
        )),
    }
}

fn check_headers(uuid: &Uuid, headers: &BTreeMap<String, String>) -> Result<(), MiroirError> {
    if headers.len() > MAX_HEADERS {
        return Err(MiroirError::new(
            Code::InvalidWebhookHeaders,
            format!("Too many headers for the webhook `{uuid}`. Please limit the number of headers to {MAX_HEADERS}. Hint: To remove an already defined header set its value to `null`"),
        ));
    }
    for (name, value) in headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(MiroirError::new(
                Code::InvalidWebhookHeaders,
                format!("Invalid header name `{name}`: invalid HTTP header name"),
            ));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(MiroirError::new(
                Code::InvalidWebhookHeaders,
                format!("Invalid header value `{name}`: failed to parse header value"),
            ));
        }
    }
    Ok(())
}

fn missing_url(uuid: &Uuid) -> MiroirError {
    MiroirError::new(
        Code::InvalidWebhookUrl,
        format!("The URL for the webhook `{uuid}` is missing."),
    )
}

fn not_found(uuid: &Uuid) -> MiroirError {
    MiroirError::new(
        Code::WebhookNotFound,
        format!("Webhook `{uuid}` not found."),
    )
}

fn too_many_webhooks() -> MiroirError {
    MiroirError::new(
        Code::InvalidWebhooks,
        format!("Defining too many webhooks would crush the server. Please limit the number of webhooks to {MAX_WEBHOOKS}. You may use a third-party proxy server to dispatch events to more than {MAX_WEBHOOKS} endpoints."),
    )
}

fn not_saved(e: String) -> MiroirError {
    log::error!(target: "miroir::webhooks", "could not save the webhooks: {e}");
    MiroirError::new(Code::Internal, "Miroir could not save the webhooks.")
}

/// A webhook body's fields: absent (`None`), `null` (`Some(None)`) or given.
struct Fields {
    url: Option<Option<String>>,
    /// Header names with their value, `None` for `null`, in the body's order.
    headers: Option<GivenHeaders>,
}

impl Fields {
    /// Parses a JSON body the way Meilisearch's deserializer reports it: the first problem in
    /// the body's order, with its code.
    fn parse(content_type: Option<&[u8]>, body: &[u8]) -> Result<Self, MiroirError> {
        let map = json_object(content_type, body)?;
        let mut fields = Fields {
            url: None,
            headers: None,
        };
        for (key, value) in map {
            match key.as_str() {
                "url" => {
                    fields.url = Some(match value {
                        Value::Null => None,
                        Value::String(url) => Some(url),
                        other => {
                            return Err(MiroirError::new(
                                Code::InvalidWebhookUrl,
                                format!(
                                    "Invalid value type at `.url`: expected a string, but found {}",
                                    found(&other)
                                ),
                            ))
                        }
                    })
                }
                "headers" => fields.headers = Some(headers(value)?),
                "uuid" => {
                    return Err(MiroirError::new(
                        Code::ImmutableWebhookUuid,
                        "Immutable field `uuid`: expected one of `url`, `headers`",
                    ))
                }
                "isEditable" => {
                    return Err(MiroirError::new(
                        Code::ImmutableWebhookIsEditable,
                        "Immutable field `isEditable`: expected one of `url`, `headers`",
                    ))
                }
                other => {
                    return Err(MiroirError::new(
                        Code::BadRequest,
                        format!("Unknown field `{other}`: expected one of `url`, `headers`"),
                    ))
                }
            }
        }
        Ok(fields)
    }
}

type GivenHeaders = Option<Vec<(String, Option<String>)>>;

fn headers(value: Value) -> Result<GivenHeaders, MiroirError> {
    let map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        other => {
            return Err(MiroirError::new(
                Code::InvalidWebhookHeaders,
                format!(
                    "Invalid value type at `.headers`: expected an object, but found {}",
                    found(&other)
                ),
            ))
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let value = match value {
            Value::Null => None,
            Value::String(v) => Some(v),
            other => {
                return Err(MiroirError::new(
                    Code::InvalidWebhookHeaders,
                    format!(
                        "Invalid value type at `.headers.{name}`: expected a string, but found {}",
                        found(&other)
                    ),
                ))
            }
        };
        out.push((name, value));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_redacted_as_meilisearch_redacts_it() {
        // Each pair observed on Meilisearch 1.50.
        for (given, shown) in [
            ("Bearer x", "Bearer XXX..."),
            ("abc", "XXX..."),
            ("Basic dXNlcjpwYXNzd29yZA==", "BasXXXXX..."),
            ("Bearer abcdefghijklmnop", "Bearer abXXXX..."),
            ("bearer abcdefghijklmnop", "beaXXXXX..."),
            ("123456789", "XXX..."),
            ("1234567890123456", "12XXXX..."),
            (
                "Bearer 12345678901234567890123456789012",
                "Bearer 12345XXXXXX...",
            ),
            ("Token abcdefghijklmnopqrstuvwxyz", "TokenXXXXXX..."),
            ("abcdefghijklmnopqrs", "abXXXX..."),
            ("abcdefghijklmnopqrst", "abcXXXXX..."),
            ("abcdefghijklmnopqrstuvwxyzabc", "abcXXXXX..."),
            ("abcdefghijklmnopqrstuvwxyzabcd", "abcdeXXXXXX..."),
        ] {
            assert_eq!(redacted_authorization(given), shown, "{given}");
        }
    }

    #[test]
    fn bodies_fail_on_their_first_problem_in_order() {
        let json = Some(&b"application/json"[..]);
        let err = |body: &str| Fields::parse(json, body.as_bytes()).err().unwrap();
        let e = err(r#"{"foo":1,"url":2}"#);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                Code::BadRequest,
                "Unknown field `foo`: expected one of `url`, `headers`"
            )
        );
        let e = err(r#"{"url":2,"foo":1}"#);
        assert_eq!(e.code, Code::InvalidWebhookUrl);
        assert_eq!(
            e.message,
            "Invalid value type at `.url`: expected a string, but found a positive integer: `2`"
        );
        let e = err(r#"{"url":"https://a.com","headers":{"a":1.5}}"#);
        assert_eq!(
            e.message,
            "Invalid value type at `.headers.a`: expected a string, but found a number: `1.5`"
        );
        assert_eq!(
            err("null").message,
            "Invalid value type: expected an object, but found null"
        );
        assert_eq!(
            err(r#"{"isEditable":false}"#).code,
            Code::ImmutableWebhookIsEditable
        );
        assert_eq!(err("").code, Code::MissingPayload);
        assert_eq!(err(" ").code, Code::MalformedPayload);
        assert_eq!(
            err("nope").message,
            "The json payload provided is malformed. `expected ident at line 1 column 2`."
        );
        let e = Fields::parse(None, b"{}").err().unwrap();
        assert_eq!(e.code, Code::MissingContentType);
    }

    #[test]
    fn uuids_parse_in_every_form_meilisearch_takes() {
        let u = "83d3590b-6c31-47bf-9ee6-96459a49cbf5";
        for form in [
            u,
            "83d3590b6c3147bf9ee696459a49cbf5",
            "83D3590B-6C31-47BF-9EE6-96459A49CBF5",
            "urn:uuid:83d3590b-6c31-47bf-9ee6-96459a49cbf5",
        ] {
            assert_eq!(parse_uuid(form).unwrap().to_string(), u);
        }
        assert_eq!(
            parse_uuid("zzz").unwrap_err().message,
            "Invalid UUID: invalid character: found `z` at 0"
        );
        assert_eq!(
            parse_uuid("1234").unwrap_err().message,
            "Invalid UUID: invalid length: found 4"
        );
        assert_eq!(
            editable("00000000-0000-0000-0000-000000000000")
                .unwrap_err()
                .code,
            Code::ImmutableWebhook
        );
    }
}
