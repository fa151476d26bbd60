//! Engine of the Meilisearch node simulator (a test double, not a product).
//!
//! Pure, synchronous code over one index's documents and settings: the data model, the filter
//! language, ranking, facets and formatting. The HTTP server, auth and the task queue live in the
//! `meili-sim` crate, which calls into this one.
//!
//! Ranking follows milli's rules (`words`, `typo`, `proximity`, `attributeRank`, `sort`,
//! `wordPosition`, `exactness`, custom `field:asc|desc`) but evaluates them per document, so a
//! document's `_rankingScore` and `_rankingScoreDetails` depend only on the document and the
//! query. Known differences from Meilisearch 1.50:
//! - typo and prefix derivations are not bounded by the index dictionary: a term's typo budget
//!   always counts as available (milli lowers `maxTypoCount` when no derivation exists), and
//!   prefixes match any word; word splitting/concatenation (n-grams) is not modelled;
//! - the tokenizer is a Latin-script approximation of charabia (no CJK segmentation, a small
//!   diacritics table, no locales); synonyms expand single query words (to words or phrases),
//!   not query n-grams; negative phrases (`-"a b"`) are not supported;
//! - filters nest at most about 100 levels deep (Meilisearch: 2000 parser levels);
//! - `filterableAttributes` object rules decide whether a field is filterable, facetable and
//!   facet-searchable (`filterable`), but their `equality`/`comparison` split does not restrict
//!   filter operators (Meilisearch answers "Filter operator `>` is not allowed ...");
//!   Meilisearch also quotes the filter text after the error position (`2:7 "genre" = "a"`
//!   for `genre = a`) and names `_geo/_geojson` in geo-filter errors, which the simulator
//!   does not;
//! - `frequency` counts term frequencies over the whole index, as milli does, so it is the one
//!   strategy whose ranks depend on other documents;
//! - embedders are `userProvided` only (vectors sent with the documents, cosine similarity);
//!   semantic search (`vector` with `hybrid`, `semanticRatio: 1.0` or no `q`) and `/similar`
//!   compare every document exactly (Meilisearch's HNSW is approximate); a search mixing
//!   keyword and semantic results answers `not_implemented_in_simulator`.

pub mod cache;
pub mod crop;
pub mod distinct;
pub mod error;
pub mod facet_search;
pub mod facets;
pub mod fields;
pub mod filter;
pub mod filterable;
pub mod format;
pub mod geo;
pub mod matching;
pub mod model;
pub mod multi;
pub mod params;
pub mod project;
pub mod query;
pub mod ranking;
pub mod search;
pub mod similar;
pub mod sort;
pub mod tokenize;
pub mod typo;
mod validate;
pub mod vector;

pub use error::{ErrorType, MeiliError};
pub use facet_search::facet_search;
pub use filter::Filter;
pub use model::{Document, FacetOrder, IndexData, Settings, TypoTolerance};
pub use multi::multi_search;
pub use project::project;
pub use search::search;
pub use similar::similar;
