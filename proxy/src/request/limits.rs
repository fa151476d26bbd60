//! The request body limit and how Meilisearch words its error.

use miroir_filters::error::{Code, MiroirError};

pub fn payload_too_large(limit: u64) -> MiroirError {
    MiroirError::new(
        Code::PayloadTooLarge,
        format!(
            "The provided payload reached the size limit. The maximum accepted payload size is {}.",
            human_bytes(limit)
        ),
    )
}

/// The limit as Meilisearch prints it: binary units when it is a multiple of 1024
/// ("100 MiB"), decimal units otherwise ("1.5 MB").
fn human_bytes(n: u64) -> String {
    let (base, units): (f64, [&str; 5]) = if n.is_multiple_of(1024) {
        (1024.0, ["B", "KiB", "MiB", "GiB", "TiB"])
    } else {
        (1000.0, ["B", "KB", "MB", "GB", "TB"])
    };
    let mut value = n as f64;
    let mut unit = 0;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    let number = format!("{value:.2}");
    let number = number.trim_end_matches('0').trim_end_matches('.');
    format!("{number} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn prints_limits_like_meilisearch() {
        assert_eq!(human_bytes(100 * 1024 * 1024), "100 MiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10 MiB");
        assert_eq!(human_bytes(3), "3 B");
        assert_eq!(human_bytes(1500), "1.5 KB");
    }
}
