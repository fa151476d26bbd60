//! A JSON request body checked as Meilisearch's payload extractor checks it, before the
//! route looks at anything else: the `Content-Type`, then an empty body, then the syntax,
//! then the shape (an object). Each error is the one a node gives, word for word.

use miroir_filters::error::{Code, MiroirError};
use serde_json::{Map, Value};

/// The body of a request that must carry one JSON object.
pub fn json_object(
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<Map<String, Value>, MiroirError> {
    json_content_type(content_type)?;
    // Only an empty body is missing; whitespace alone is malformed JSON (Meilisearch 1.50).
    if body.is_empty() {
        return Err(MiroirError::new(
            Code::MissingPayload,
            "A json payload is missing.",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        MiroirError::new(
            Code::MalformedPayload,
            format!("The json payload provided is malformed. `{e}`."),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(MiroirError::new(
            Code::BadRequest,
            format!(
                "Invalid value type: expected an object, but found {}",
                found(&other)
            ),
        )),
    }
}

/// A JSON value as Meilisearch's deserializer names it in its errors.
pub fn found(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{kind}: `{value}`")
}

/// Only `application/json` bodies, with Meilisearch's errors for the rest.
pub fn json_content_type(content_type: Option<&[u8]>) -> Result<(), MiroirError> {
    const ACCEPTED: &str = "Accepted values for the Content-Type header are: `application/json`";
    let Some(raw) = content_type else {
        return Err(MiroirError::new(
            Code::MissingContentType,
            format!("A Content-Type header is missing. {ACCEPTED}"),
        ));
    };
    let raw = String::from_utf8_lossy(raw);
    let media = raw.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(MiroirError::new(
            Code::InvalidContentType,
            format!("The Content-Type `{media}` is invalid. {ACCEPTED}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_gets_meilisearchs_error_in_its_order() {
        let json = Some(&b"application/json"[..]);
        let err = |ct: Option<&[u8]>, body: &str| json_object(ct, body.as_bytes()).unwrap_err();
        let e = err(None, "{");
        assert_eq!(e.code, Code::MissingContentType);
        assert_eq!(
            e.message,
            "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`"
        );
        let e = err(Some(b"text/plain; charset=utf-8"), "{}");
        assert_eq!(e.code, Code::InvalidContentType);
        assert_eq!(
            e.message,
            "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`"
        );
        assert_eq!(err(json, "").code, Code::MissingPayload);
        let e = err(json, "  ");
        assert_eq!(e.code, Code::MalformedPayload);
        assert_eq!(
            e.message,
            "The json payload provided is malformed. `EOF while parsing a value at line 1 column 2`."
        );
        let e = err(json, r#"{"q":"#);
        assert_eq!(e.code, Code::MalformedPayload);
        assert_eq!(
            e.message,
            "The json payload provided is malformed. `EOF while parsing a value at line 1 column 5`."
        );
        let e = err(json, "[1]");
        assert_eq!(e.code, Code::BadRequest);
        assert_eq!(
            e.message,
            "Invalid value type: expected an object, but found an array: `[1]`"
        );
        let ok = json_object(Some(b"Application/JSON; charset=utf-8"), br#"{"q":"a"}"#);
        assert_eq!(ok.unwrap()["q"], "a");
    }
}
