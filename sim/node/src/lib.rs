//! A Meilisearch-compatible node simulator: a test double for Miroir's test suite, not a
//! product. It answers over HTTP like a Meilisearch 1.50 node for what Miroir relies on.
