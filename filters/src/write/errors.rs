//! The errors of a document write, worded as Meilisearch words them.
//!
//! Meilisearch builds these messages in `meilisearch-types/src/document_formats.rs` (payload
//! format), `milli/src/error.rs` (primary key and document id) and
//! `meilisearch/src/routes/indexes/documents.rs` (content type); clients and SDKs match on them.

use serde_json::Value;

use super::format::PayloadFormat;
use crate::error::{Code, MiroirError};
use crate::hidden::RESERVED_PREFIX;

/// What Meilisearch says when a parsed value is not a document (a JSON data error).
const NOT_DOCUMENTS: &str = "data are neither an object nor a list of objects";

/// The content types Meilisearch lists in its content-type errors, in its order.
const ACCEPTED: &str = "`application/json`, `application/x-ndjson`, `text/csv`";

pub(crate) fn missing_payload(format: PayloadFormat) -> MiroirError {
    MiroirError::new(
        Code::MissingPayload,
        format!("A {} payload is missing.", format.name()),
    )
}

/// A JSON or NDJSON body serde_json rejected.
pub(crate) fn malformed_json(format: PayloadFormat, error: &serde_json::Error) -> MiroirError {
    if error.classify() == serde_json::error::Category::Data {
        return not_documents(format);
    }
    malformed_json_message(format, error.to_string())
}

/// A JSON or NDJSON value that is not an object where a document was expected.
pub(crate) fn not_documents(format: PayloadFormat) -> MiroirError {
    malformed_json_message(format, NOT_DOCUMENTS.to_owned())
}

fn malformed_json_message(format: PayloadFormat, mut message: String) -> MiroirError {
    // Meilisearch keeps the first 50 and last 85 bytes of a long parser message: it may quote
    // the user's input.
    const HEAD: usize = 50;
    const TAIL: usize = 85;
    const ELLIPSIS: &str = "...";
    if message.len() > HEAD + TAIL + ELLIPSIS.len() {
        let head = floor_char_boundary(&message, HEAD);
        let tail = ceil_char_boundary(&message, message.len() - TAIL);
        message.replace_range(head..tail, ELLIPSIS);
    }
    MiroirError::new(
        Code::MalformedPayload,
        format!(
            "The `{}` payload provided is malformed. `Couldn't serialize document value: {message}`.",
            format.name()
        ),
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A CSV body the csv reader rejected, or a typed cell that does not parse.
pub(crate) fn malformed_csv(detail: impl std::fmt::Display) -> MiroirError {
    MiroirError::new(
        Code::MalformedPayload,
        format!("The `csv` payload provided is malformed: `{detail}`."),
    )
}

pub(crate) fn missing_content_type() -> MiroirError {
    MiroirError::new(
        Code::MissingContentType,
        format!("A Content-Type header is missing. Accepted values for the Content-Type header are: {ACCEPTED}"),
    )
}

pub(crate) fn invalid_content_type(content_type: &str) -> MiroirError {
    MiroirError::new(
        Code::InvalidContentType,
        format!("The Content-Type `{content_type}` is invalid. Accepted values for the Content-Type header are: {ACCEPTED}"),
    )
}

pub(crate) fn csv_delimiter_with_wrong_content_type(content_type: &str) -> MiroirError {
    MiroirError::new(
        Code::InvalidContentType,
        format!("The Content-Type `{content_type}` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`."),
    )
}

pub(crate) fn invalid_csv_delimiter(message: impl Into<String>) -> MiroirError {
    MiroirError::new(Code::InvalidDocumentCsvDelimiter, message)
}

pub(crate) fn primary_key_already_exists(index_primary_key: &str) -> MiroirError {
    MiroirError::new(
        Code::IndexPrimaryKeyAlreadyExists,
        format!("Index already has a primary key: `{index_primary_key}`."),
    )
}

pub(crate) fn no_primary_key_candidate() -> MiroirError {
    MiroirError::new(
        Code::IndexPrimaryKeyNoCandidateFound,
        "The primary key inference failed as the engine did not find any field ending with `id` in its name. Please specify the primary key manually using the `primaryKey` query parameter.",
    )
}

/// `candidates` holds at least two names, sorted.
pub(crate) fn multiple_primary_key_candidates(candidates: &[&str]) -> MiroirError {
    let first = candidates.first().copied().unwrap_or_default();
    let second = candidates.get(1).copied().unwrap_or_default();
    MiroirError::new(
        Code::IndexPrimaryKeyMultipleCandidatesFound,
        format!(
            "The primary key inference failed as the engine found {} fields ending with `id` in their names: '{first}' and '{second}'. Please specify the primary key manually using the `primaryKey` query parameter.",
            candidates.len()
        ),
    )
}

/// `document` is the whole document, rendered compactly as Meilisearch does.
pub(crate) fn missing_document_id(primary_key: &str, document: &Value) -> MiroirError {
    MiroirError::new(
        Code::MissingDocumentId,
        format!("Document doesn't have a `{primary_key}` attribute: `{document}`."),
    )
}

/// Meilisearch reports a primary key found twice (nested keys) as an invalid id.
pub(crate) fn too_many_document_ids(primary_key: &str, document: &Value) -> MiroirError {
    MiroirError::new(
        Code::InvalidDocumentId,
        format!("Document have too many matching `{primary_key}` attribute: `{document}`."),
    )
}

pub(crate) fn invalid_document_id(id: &Value) -> MiroirError {
    MiroirError::new(
        Code::InvalidDocumentId,
        format!(
            "Document identifier `{id}` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes."
        ),
    )
}

pub(crate) fn reserved_field(field: &str) -> MiroirError {
    MiroirError::new(
        Code::ReservedField,
        format!("The field `{field}` is reserved: Miroir keeps top-level fields starting with `{RESERVED_PREFIX}` for its own bookkeeping. Rename the field."),
    )
}

pub(crate) fn internal(what: &str) -> MiroirError {
    MiroirError::new(
        Code::Internal,
        format!("Miroir failed to split the documents: {what}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_parser_messages_are_trimmed_like_meilisearch() {
        let e = malformed_json_message(PayloadFormat::Json, "x".repeat(200));
        let inner = format!("{}...{}", "x".repeat(50), "x".repeat(85));
        assert_eq!(
            e.message,
            format!("The `json` payload provided is malformed. `Couldn't serialize document value: {inner}`.")
        );
    }

    #[test]
    fn trimming_respects_utf8() {
        let e = malformed_json_message(PayloadFormat::Json, "é".repeat(100));
        assert!(e.message.contains("..."));
    }
}
