//! Engine of the Meilisearch node simulator (a test double, not a product).
//!
//! Pure, synchronous code over one index's documents and settings: the data model, the filter
//! language, ranking, facets and formatting. The HTTP server, auth and the task queue live in the
//! `meili-sim` crate, which calls into this one.

pub mod error;
pub mod model;

pub use error::{ErrorType, MeiliError};
pub use model::{Document, FacetOrder, IndexData, Settings, TypoTolerance};
