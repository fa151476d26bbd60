//! Database sizes as the simulator shows them: the documents' JSON text stands in for a
//! database's bytes, shown to people the way Meilisearch shows sizes.

use serde_json::Value;

use crate::state::Index;

/// The index's documents as JSON text, in bytes: the simulator's stand-in for a database size.
pub(crate) fn raw_size(index: &Index) -> usize {
    index
        .data
        .docs
        .values()
        .map(|doc| Value::Object(doc.clone()).to_string().len())
        .sum()
}

/// A byte count the way Meilisearch shows one to people: binary units, at most two decimals.
pub(crate) fn human_size(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_use_binary_units_and_at_most_two_decimals() {
        // As a Meilisearch 1.50 node shows them (`sizeFormat=human`, compaction details).
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(2040), "1.99 KiB");
        assert_eq!(human_size(73_728), "72 KiB");
    }
}
