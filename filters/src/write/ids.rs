//! `POST /indexes/{uid}/documents/delete-batch`: a JSON array of ids, grouped by shard.
//!
//! Meilisearch accepts any JSON value in the array and deletes by its string form (a string as
//! is, anything else as its JSON text), so no value is refused; a value that is not a valid id
//! matches no document wherever it is sent.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::error::Category;
use serde_json::Value;

use crate::error::{Code, MiroirError};
use crate::routing::{shard_for_key, ShardId};

/// Groups the ids of a delete-batch body by shard, each id as the client sent it, in order.
pub fn split_ids(body: &[u8], shards: u32) -> Result<BTreeMap<ShardId, Vec<Value>>, MiroirError> {
    if shards == 0 {
        return Err(super::errors::internal("the shard count is 0"));
    }
    let ids: Vec<Value> = serde_json::from_slice(body).map_err(|e| body_error(&e))?;
    let mut by_shard: BTreeMap<ShardId, Vec<Value>> = BTreeMap::new();
    for id in ids {
        let key = match &id {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            other => Cow::Owned(other.to_string()),
        };
        let shard = shard_for_key(&key, shards);
        by_shard.entry(shard).or_default().push(id);
    }
    Ok(by_shard)
}

/// Meilisearch's errors for a JSON body read into a typed value (actix's JSON extractor).
fn body_error(e: &serde_json::Error) -> MiroirError {
    match e.classify() {
        Category::Eof if e.line() == 1 && e.column() == 0 => {
            MiroirError::new(Code::MissingPayload, "A json payload is missing.")
        }
        Category::Data => {
            MiroirError::new(Code::BadRequest, format!("Json deserialize error: {e}"))
        }
        _ => MiroirError::new(
            Code::MalformedPayload,
            format!("The json payload provided is malformed. `{e}`."),
        ),
    }
}
