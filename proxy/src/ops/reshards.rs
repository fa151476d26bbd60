//! The reshard admin API: `GET /_miroir/reshards`, `POST /_miroir/reshards`
//! (`{"index": "...", "shards": N}`), `POST /_miroir/reshards/{index}/rollback` and
//! `.../finish` (see `reshard`).

use miroir_filters::error::{Code, MiroirError};
use serde_json::Value;

use crate::request::Reply;
use crate::reshard;
use crate::shared::Shared;

pub async fn handle(
    shared: &Shared,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Reply, MiroirError> {
    let path = path.trim_end_matches('/');
    let rest = path.strip_prefix("/_miroir/reshards").unwrap_or("");
    let reply = |status: u16, v: Value| Ok(Reply::raw(status, v.to_string().into_bytes()));
    match (method, rest) {
        ("GET", "") => reply(200, reshard::status(shared)),
        ("POST", "") => {
            let body: Value = serde_json::from_slice(body).map_err(|e| {
                MiroirError::new(
                    Code::InvalidReshard,
                    format!("The body must be a JSON object `{{\"index\", \"shards\"}}`: {e}."),
                )
            })?;
            reply(202, reshard::start(shared, &body).await?)
        }
        ("POST", r) if r.ends_with("/rollback") => {
            let index = r.trim_start_matches('/').trim_end_matches("/rollback");
            reply(202, reshard::rollback(shared, index).await?)
        }
        ("POST", r) if r.ends_with("/finish") => {
            let index = r.trim_start_matches('/').trim_end_matches("/finish");
            reply(202, reshard::finish(shared, index).await?)
        }
        _ => Err(MiroirError::new(
            Code::NotImplemented,
            format!("`{method} {path}` is not an admin route of this version of Miroir."),
        )),
    }
}
