//! The HTTP side of Meilisearch errors: every handler returns `Result<_, ApiError>`, and this
//! is the one place that turns an error into a response. Constructors for the errors the server
//! raises live here too, so codes, statuses and messages are written once.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use meili_sim_engine::{ErrorType, MeiliError};

/// A Meilisearch error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError(pub MeiliError);

impl From<MeiliError> for ApiError {
    fn from(e: MeiliError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.0.to_json().to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn invalid(code: &str, message: impl Into<String>) -> MeiliError {
    MeiliError::invalid(code, message)
}

pub fn index_not_found(uid: &str) -> MeiliError {
    MeiliError::new(
        404,
        "index_not_found",
        ErrorType::InvalidRequest,
        format!("Index `{uid}` not found."),
    )
}

pub fn index_already_exists(uid: &str) -> MeiliError {
    MeiliError::new(
        409,
        "index_already_exists",
        ErrorType::InvalidRequest,
        format!("Index `{uid}` already exists."),
    )
}

pub fn invalid_index_uid(uid: &str) -> MeiliError {
    invalid(
        "invalid_index_uid",
        format!(
            "`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only \
             alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
        ),
    )
}

pub fn document_not_found(id: &str) -> MeiliError {
    MeiliError::new(
        404,
        "document_not_found",
        ErrorType::InvalidRequest,
        format!("Document `{id}` not found."),
    )
}

pub fn task_not_found(uid: &str) -> MeiliError {
    MeiliError::new(
        404,
        "task_not_found",
        ErrorType::InvalidRequest,
        format!("Task `{uid}` not found."),
    )
}

pub fn batch_not_found(uid: &str) -> MeiliError {
    MeiliError::new(
        404,
        "batch_not_found",
        ErrorType::InvalidRequest,
        format!("Batch `{uid}` not found."),
    )
}

pub fn api_key_not_found(key: &str) -> MeiliError {
    MeiliError::new(
        404,
        "api_key_not_found",
        ErrorType::InvalidRequest,
        format!("API key `{key}` not found."),
    )
}

pub fn missing_authorization_header() -> MeiliError {
    MeiliError::new(
        401,
        "missing_authorization_header",
        ErrorType::Auth,
        "The Authorization header is missing. It must use the bearer authorization method.",
    )
}

pub fn missing_master_key() -> MeiliError {
    MeiliError::new(
        401,
        "missing_master_key",
        ErrorType::Auth,
        "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.",
    )
}

/// 403 `invalid_api_key` with one of the auth layer's messages.
pub fn invalid_api_key(message: impl Into<String>) -> MeiliError {
    MeiliError::new(403, "invalid_api_key", ErrorType::Auth, message)
}

pub fn missing_content_type(accepted: &[&str]) -> MeiliError {
    MeiliError::new(
        415,
        "missing_content_type",
        ErrorType::InvalidRequest,
        format!(
            "A Content-Type header is missing. Accepted values for the Content-Type header are: {}",
            quoted_list(accepted)
        ),
    )
}

pub fn invalid_content_type(given: &str, accepted: &[&str]) -> MeiliError {
    MeiliError::new(
        415,
        "invalid_content_type",
        ErrorType::InvalidRequest,
        format!(
            "The Content-Type `{given}` is invalid. Accepted values for the Content-Type header are: {}",
            quoted_list(accepted)
        ),
    )
}

pub fn missing_payload(kind: &str) -> MeiliError {
    invalid("missing_payload", format!("A {kind} payload is missing."))
}

pub fn malformed_json(detail: impl std::fmt::Display) -> MeiliError {
    invalid(
        "malformed_payload",
        format!("The json payload provided is malformed. `{detail}`."),
    )
}

pub fn malformed_documents(kind: &str, detail: impl std::fmt::Display) -> MeiliError {
    invalid(
        "malformed_payload",
        format!("The `{kind}` payload provided is malformed: `{detail}`."),
    )
}

pub fn payload_too_large() -> MeiliError {
    MeiliError::new(
        413,
        "payload_too_large",
        ErrorType::InvalidRequest,
        "The provided payload reached the size limit. The maximum accepted payload size is 100 MiB.",
    )
}

pub fn bad_request(message: impl Into<String>) -> MeiliError {
    invalid("bad_request", message)
}

/// A route or feature this test double deliberately does not implement.
pub fn not_implemented(what: &str) -> MeiliError {
    MeiliError::new(
        501,
        "not_implemented_in_simulator",
        ErrorType::InvalidRequest,
        format!("`{what}` is not implemented by the Meilisearch node simulator (a test double)."),
    )
}

pub fn feature_not_enabled(action: &str, feature: &str, link: &str) -> MeiliError {
    invalid(
        "feature_not_enabled",
        format!("{action} requires enabling the `{feature}` experimental feature. See {link}"),
    )
}

/// A parameter or body field of the wrong shape: `Invalid value type at `.x`: expected ...`.
pub fn invalid_type(
    code: &str,
    location: &str,
    expected: &str,
    found: &serde_json::Value,
) -> MeiliError {
    invalid(
        code,
        format!(
            "Invalid value type at `{location}`: expected {expected}, but found {}: `{found}`",
            json_kind(found)
        ),
    )
}

pub fn unknown_field(code: &str, field: &str, accepted: &[&str]) -> MeiliError {
    invalid(
        code,
        format!(
            "Unknown field `{field}`: expected one of {}",
            quoted_list(accepted)
        ),
    )
}

/// An unexpected query parameter (`bad_request`, as deserr reports it).
pub fn unknown_param(param: &str, accepted: &[&str]) -> MeiliError {
    invalid(
        "bad_request",
        format!(
            "Unknown parameter `{param}`: expected one of {}",
            quoted_list(accepted)
        ),
    )
}

pub fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a number",
        serde_json::Value::Number(_) => "a positive integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
