//! Every error Miroir itself answers, in one table.
//!
//! A variant names the Meilisearch error code a client sees (Meilisearch's own codes where
//! Miroir enforces a Meilisearch rule, `miroir_*` codes for what only a cluster can get wrong),
//! its `type` and its HTTP status. [`MiroirError::to_json`] is the only place the JSON shape
//! `{message, code, type, link}` is built; errors relayed from nodes pass through untouched.

use serde_json::{json, Value};

/// Where Meilisearch documents its codes.
pub const MEILI_ERRORS_URL: &str = "https://docs.meilisearch.com/errors#";
/// Where Miroir documents its own codes (the README's error table).
pub const MIROIR_ERRORS_URL: &str =
    "https://github.com/miroir-proxy/miroir/blob/main/README.md#errors-";

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

/// The codes Miroir answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    // Meilisearch's own codes, for rules Miroir enforces before any node sees the request.
    PayloadTooLarge,
    MissingAuthorizationHeader,
    InvalidApiKey,
    MalformedPayload,
    BadRequest,
    MissingPayload,
    MissingContentType,
    InvalidContentType,
    InvalidDocumentCsvDelimiter,
    MissingDocumentId,
    InvalidDocumentId,
    IndexPrimaryKeyAlreadyExists,
    IndexPrimaryKeyNoCandidateFound,
    IndexPrimaryKeyMultipleCandidatesFound,
    // Miroir's codes.
    /// Miroir knows the route but this version does not serve it yet.
    NotImplemented,
    /// A Meilisearch route Miroir will not serve (it cannot be made correct across nodes).
    UnsupportedRoute,
    /// No node could answer.
    NoNodeAvailable,
    /// A node did not answer in time or broke the connection.
    NodeUnreachable,
    /// The request did not complete within `server.request_timeout_ms`.
    RequestTimeout,
    /// The admin API was called without the admin key.
    InvalidAdminKey,
    /// The admin API is disabled because no admin key is configured.
    AdminDisabled,
    ShardUnavailable,
    NoQuorum,
    ReservedField,
    IdempotencyKeyReused,
    /// A node answered a search with something that is neither a search response nor an error.
    InvalidNodeAnswer,
    AnswerTooLarge,
    /// A topology change is already in progress: one at a time.
    TopologyChangeInProgress,
    /// A topology change Miroir cannot make (a group left without nodes, fewer than RF).
    InvalidTopologyChange,
    /// `apply` with nothing staged.
    NoTopologyChange,
    /// An alias request Miroir refuses (a bad name or body, a name that is an index, a target
    /// that does not exist or is an alias).
    InvalidAlias,
    AliasNotFound,
    AliasAlreadyExists,
    /// A write, a settings change or a deletion through an alias of several indexes.
    MultiAliasNotWritable,
    /// A read other than a search through an alias of several indexes.
    MultiAliasUnsupportedRoute,
    /// Deleting or renaming an index an alias points to.
    IndexHasAliases,
    /// The shared task store (Redis) cannot be reached: a write would have no durable task.
    TaskStoreUnavailable,
    /// A reshard Miroir refuses (a bad shard count, an index that does not exist).
    InvalidReshard,
    /// A reshard of the index is already running, or a step it is not ready for.
    ReshardInProgress,
    /// No reshard of the index is running.
    ReshardNotFound,
    // Meilisearch's task-route codes, for the task registry Miroir answers from.
    TaskNotFound,
    BatchNotFound,
    MissingTaskFilters,
    InvalidTaskUids,
    InvalidIndexUid,
    /// An index uid Miroir keeps for itself (`_miroir_...`), named by a client.
    IndexNotFound,
    FeatureNotEnabled,
    TaskFileNotFound,
    InvalidBatchUids,
    InvalidTaskStatuses,
    InvalidTaskTypes,
    InvalidTaskLimit,
    InvalidTaskFrom,
    InvalidTaskCanceledBy,
    InvalidTaskAfterEnqueuedAt,
    InvalidTaskBeforeEnqueuedAt,
    InvalidTaskAfterStartedAt,
    InvalidTaskBeforeStartedAt,
    InvalidTaskAfterFinishedAt,
    InvalidTaskBeforeFinishedAt,
    // Meilisearch's webhook codes, for the webhooks Miroir keeps and calls itself.
    InvalidWebhookUrl,
    InvalidWebhookHeaders,
    InvalidWebhookUuid,
    InvalidWebhooks,
    WebhookNotFound,
    ImmutableWebhook,
    ImmutableWebhookUuid,
    ImmutableWebhookIsEditable,
    Internal,
}

impl Code {
    /// (code string, type, HTTP status): the whole table.
    pub fn spec(self) -> (&'static str, ErrorType, u16) {
        use ErrorType::*;
        match self {
            Code::PayloadTooLarge => ("payload_too_large", InvalidRequest, 413),
            Code::MissingAuthorizationHeader => ("missing_authorization_header", Auth, 401),
            Code::InvalidApiKey => ("invalid_api_key", Auth, 403),
            Code::MalformedPayload => ("malformed_payload", InvalidRequest, 400),
            Code::BadRequest => ("bad_request", InvalidRequest, 400),
            Code::MissingPayload => ("missing_payload", InvalidRequest, 400),
            Code::MissingContentType => ("missing_content_type", InvalidRequest, 415),
            Code::InvalidContentType => ("invalid_content_type", InvalidRequest, 415),
            Code::InvalidDocumentCsvDelimiter => {
                ("invalid_document_csv_delimiter", InvalidRequest, 400)
            }
            Code::MissingDocumentId => ("missing_document_id", InvalidRequest, 400),
            Code::InvalidDocumentId => ("invalid_document_id", InvalidRequest, 400),
            Code::IndexPrimaryKeyAlreadyExists => {
                ("index_primary_key_already_exists", InvalidRequest, 400)
            }
            Code::IndexPrimaryKeyNoCandidateFound => {
                ("index_primary_key_no_candidate_found", InvalidRequest, 400)
            }
            Code::IndexPrimaryKeyMultipleCandidatesFound => (
                "index_primary_key_multiple_candidates_found",
                InvalidRequest,
                400,
            ),
            Code::NotImplemented => ("miroir_not_implemented", InvalidRequest, 501),
            Code::UnsupportedRoute => ("miroir_unsupported_route", InvalidRequest, 501),
            Code::NoNodeAvailable => ("miroir_no_node_available", System, 503),
            Code::NodeUnreachable => ("miroir_node_unreachable", System, 502),
            Code::RequestTimeout => ("miroir_request_timeout", System, 504),
            Code::InvalidAdminKey => ("miroir_invalid_admin_key", Auth, 403),
            Code::AdminDisabled => ("miroir_admin_disabled", Auth, 403),
            Code::ShardUnavailable => ("miroir_shard_unavailable", System, 503),
            Code::NoQuorum => ("miroir_no_quorum", System, 503),
            Code::ReservedField => ("miroir_reserved_field", InvalidRequest, 400),
            Code::IdempotencyKeyReused => ("miroir_idempotency_key_reused", InvalidRequest, 409),
            Code::InvalidNodeAnswer => ("miroir_invalid_node_answer", System, 502),
            Code::AnswerTooLarge => ("miroir_answer_too_large", InvalidRequest, 400),
            Code::TopologyChangeInProgress => {
                ("miroir_topology_change_in_progress", InvalidRequest, 409)
            }
            Code::InvalidTopologyChange => ("miroir_invalid_topology_change", InvalidRequest, 400),
            Code::NoTopologyChange => ("miroir_no_topology_change", InvalidRequest, 400),
            Code::InvalidAlias => ("miroir_invalid_alias", InvalidRequest, 400),
            Code::AliasNotFound => ("miroir_alias_not_found", InvalidRequest, 404),
            Code::AliasAlreadyExists => ("miroir_alias_already_exists", InvalidRequest, 409),
            Code::MultiAliasNotWritable => ("miroir_multi_alias_not_writable", InvalidRequest, 409),
            Code::MultiAliasUnsupportedRoute => {
                ("miroir_multi_alias_unsupported_route", InvalidRequest, 400)
            }
            Code::IndexHasAliases => ("miroir_index_has_aliases", InvalidRequest, 409),
            Code::TaskStoreUnavailable => ("miroir_task_store_unavailable", System, 503),
            Code::InvalidReshard => ("miroir_invalid_reshard", InvalidRequest, 400),
            Code::ReshardInProgress => ("miroir_reshard_in_progress", InvalidRequest, 409),
            Code::ReshardNotFound => ("miroir_reshard_not_found", InvalidRequest, 404),
            Code::TaskNotFound => ("task_not_found", InvalidRequest, 404),
            Code::BatchNotFound => ("batch_not_found", InvalidRequest, 404),
            Code::MissingTaskFilters => ("missing_task_filters", InvalidRequest, 400),
            Code::InvalidTaskUids => ("invalid_task_uids", InvalidRequest, 400),
            Code::InvalidIndexUid => ("invalid_index_uid", InvalidRequest, 400),
            Code::IndexNotFound => ("index_not_found", InvalidRequest, 404),
            Code::FeatureNotEnabled => ("feature_not_enabled", InvalidRequest, 400),
            Code::TaskFileNotFound => ("task_file_not_found", InvalidRequest, 404),
            Code::InvalidBatchUids => ("invalid_batch_uids", InvalidRequest, 400),
            Code::InvalidTaskStatuses => ("invalid_task_statuses", InvalidRequest, 400),
            Code::InvalidTaskTypes => ("invalid_task_types", InvalidRequest, 400),
            Code::InvalidTaskLimit => ("invalid_task_limit", InvalidRequest, 400),
            Code::InvalidTaskFrom => ("invalid_task_from", InvalidRequest, 400),
            Code::InvalidTaskCanceledBy => ("invalid_task_canceled_by", InvalidRequest, 400),
            Code::InvalidTaskAfterEnqueuedAt => {
                ("invalid_task_after_enqueued_at", InvalidRequest, 400)
            }
            Code::InvalidTaskBeforeEnqueuedAt => {
                ("invalid_task_before_enqueued_at", InvalidRequest, 400)
            }
            Code::InvalidTaskAfterStartedAt => {
                ("invalid_task_after_started_at", InvalidRequest, 400)
            }
            Code::InvalidTaskBeforeStartedAt => {
                ("invalid_task_before_started_at", InvalidRequest, 400)
            }
            Code::InvalidTaskAfterFinishedAt => {
                ("invalid_task_after_finished_at", InvalidRequest, 400)
            }
            Code::InvalidTaskBeforeFinishedAt => {
                ("invalid_task_before_finished_at", InvalidRequest, 400)
            }
            Code::InvalidWebhookUrl => ("invalid_webhook_url", InvalidRequest, 400),
            Code::InvalidWebhookHeaders => ("invalid_webhook_headers", InvalidRequest, 400),
            Code::InvalidWebhookUuid => ("invalid_webhook_uuid", InvalidRequest, 400),
            Code::InvalidWebhooks => ("invalid_webhooks", InvalidRequest, 400),
            Code::WebhookNotFound => ("webhook_not_found", InvalidRequest, 404),
            Code::ImmutableWebhook => ("immutable_webhook", InvalidRequest, 400),
            Code::ImmutableWebhookUuid => ("immutable_webhook_uuid", InvalidRequest, 400),
            Code::ImmutableWebhookIsEditable => {
                ("immutable_webhook_is_editable", InvalidRequest, 400)
            }
            Code::Internal => ("internal", Internal, 500),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.spec().0
    }

    pub fn status(self) -> u16 {
        self.spec().2
    }
}

/// An error Miroir answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiroirError {
    pub code: Code,
    pub message: String,
}

impl MiroirError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The Meilisearch-shaped body.
    pub fn to_json(&self) -> Value {
        let (code, kind, _) = self.code.spec();
        let base = if code.starts_with("miroir_") {
            MIROIR_ERRORS_URL
        } else {
            MEILI_ERRORS_URL
        };
        let link = format!("{base}{code}");
        json!({ "message": self.message, "code": code, "type": kind.as_str(), "link": link })
    }

    pub fn to_body(&self) -> Vec<u8> {
        // Serializing a `Value` built from strings cannot fail.
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }
}

impl std::fmt::Display for MiroirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for MiroirError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_meilisearch_shape() {
        let e = MiroirError::new(Code::PayloadTooLarge, "too big");
        let v = e.to_json();
        assert_eq!(v["code"], "payload_too_large");
        assert_eq!(v["type"], "invalid_request");
        assert_eq!(v["message"], "too big");
        assert_eq!(
            v["link"],
            "https://docs.meilisearch.com/errors#payload_too_large"
        );
        assert_eq!(e.status(), 413);
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["message", "code", "type", "link"]);
    }

    #[test]
    fn miroir_codes_are_prefixed() {
        for code in [Code::NoQuorum, Code::ShardUnavailable, Code::NotImplemented] {
            assert!(code.as_str().starts_with("miroir_"));
        }
    }
}
