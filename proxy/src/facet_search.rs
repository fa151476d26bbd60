//! Fan-out reads not served yet: each answers `miroir_not_implemented` naming its route.

use miroir_filters::error::{Code, MiroirError};

use crate::broadcast::{Incoming, Reply};
use crate::state::{Runtime, Shared};

/// `POST /indexes/{uid}/facet-search`.
pub async fn facet_search(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let _ = (shared, rt, inc, index_uid);
    Reply::error(&MiroirError::new(
        Code::NotImplemented,
        "`POST /indexes/{uid}/facet-search` (fan out and merge) is not implemented by this version of Miroir yet.",
    ))
}
