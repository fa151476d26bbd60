//! Meilisearch-shaped errors: `{message, code, type, link}` with an HTTP status.

use serde_json::{json, Value};

/// Meilisearch's error `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Auth,
    Internal,
    System,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Auth => "auth",
            ErrorType::Internal => "internal",
            ErrorType::System => "system",
        }
    }
}

/// One error as Meilisearch renders it. `code` is Meilisearch's snake_case error code.
#[derive(Debug, Clone, PartialEq)]
pub struct MeiliError {
    pub status: u16,
    pub code: String,
    pub kind: ErrorType,
    pub message: String,
}

impl MeiliError {
    pub fn new(status: u16, code: &str, kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            kind,
            message: message.into(),
        }
    }

    /// The common case: a 400 `invalid_request` error.
    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, ErrorType::InvalidRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", ErrorType::Internal, message)
    }

    /// The JSON body exactly as Meilisearch sends it.
    pub fn to_json(&self) -> Value {
        json!({
            "message": self.message,
            "code": self.code,
            "type": self.kind.as_str(),
            "link": format!("https://docs.meilisearch.com/errors#{}", self.code),
        })
    }
}

impl std::fmt::Display for MeiliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for MeiliError {}
