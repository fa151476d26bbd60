//! What a node's answer to a write or broadcast means: accepted (a task enqueued), judged
//! (a verdict every replica would repeat), or missed.

use miroir_filters::error::{Code, MiroirError};
use serde_json::Value;

use crate::upstream::NodeResult;

/// The node's task uid when it accepted the request (202).
pub fn accepted_task_uid(result: &NodeResult) -> Option<u64> {
    match result {
        Ok(resp) if resp.status == 202 => resp.json().and_then(|v| v["taskUid"].as_u64()),
        _ => None,
    }
}

/// No answer, or a server error: the node did not judge the request, so it missed it.
pub fn missed(result: &NodeResult) -> bool {
    result.as_ref().map_or(true, |resp| !resp.judged())
}

/// The error JSON a node's failure stands for in a task.
pub fn failure_json(result: &NodeResult) -> Value {
    match result {
        Ok(resp) => resp
            .json()
            .filter(|v| v.get("code").is_some())
            .unwrap_or_else(|| {
                MiroirError::new(
                    Code::NodeUnreachable,
                    format!("The node answered HTTP {}.", resp.status),
                )
                .to_json()
            }),
        Err(e) => MiroirError::new(
            Code::NodeUnreachable,
            format!("The node did not answer: {e}."),
        )
        .to_json(),
    }
}
