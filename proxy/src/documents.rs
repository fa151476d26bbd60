//! Fan-out reads not served yet: each answers `miroir_not_implemented` naming its route.

use miroir_filters::error::{Code, MiroirError};

use crate::broadcast::{Incoming, Reply};
use crate::state::{Runtime, Shared};

/// `GET /indexes/{uid}/documents and POST /indexes/{uid}/documents/fetch`.
pub async fn browse(shared: &Shared, rt: &Runtime, inc: &Incoming, index_uid: &str) -> Reply {
    let _ = (shared, rt, inc, index_uid);
    Reply::error(&MiroirError::new(
        Code::NotImplemented,
        "`GET /indexes/{uid}/documents and POST /indexes/{uid}/documents/fetch` (fan out and merge) is not implemented by this version of Miroir yet.",
    ))
}
