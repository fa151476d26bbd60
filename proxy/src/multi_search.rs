//! Fan-out reads not served yet: each answers `miroir_not_implemented` naming its route.

use miroir_filters::error::{Code, MiroirError};

use crate::broadcast::{Incoming, Reply};
use crate::state::{Runtime, Shared};

/// `POST /multi-search`.
pub async fn multi_search(shared: &Shared, rt: &Runtime, inc: &Incoming) -> Reply {
    let _ = (shared, rt, inc);
    Reply::error(&MiroirError::new(
        Code::NotImplemented,
        "`POST /multi-search` (fan out and merge) is not implemented by this version of Miroir yet.",
    ))
}
