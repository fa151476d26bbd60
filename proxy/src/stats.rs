//! Fan-out reads not served yet: each answers `miroir_not_implemented` naming its route.

use miroir_filters::error::{Code, MiroirError};

use crate::broadcast::{Incoming, Reply};
use crate::state::{Runtime, Shared};

/// `GET /indexes/{uid}/stats`.
pub async fn index_stats(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let _ = (shared, rt, inc, index_uid);
    Reply::error(&MiroirError::new(
        Code::NotImplemented,
        "`GET /indexes/{uid}/stats` (fan out and merge) is not implemented by this version of Miroir yet.",
    ))
}

/// `GET /stats`.
pub async fn global_stats(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    let _ = (shared, rt, inc);
    Reply::error(&MiroirError::new(
        Code::NotImplemented,
        "`GET /stats` (fan out and merge) is not implemented by this version of Miroir yet.",
    ))
}
