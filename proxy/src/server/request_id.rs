//! Request ids: the client's `X-Request-Id` when it is a sane token, else a fresh id in UUID
//! form: a random base drawn once per process plus a counter, so no request pays for a
//! random draw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

fn next_id() -> String {
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    uuid::Uuid::from_u128(base.wrapping_add(u128::from(n))).to_string()
}

pub fn from_header(value: Option<&[u8]>) -> String {
    match value {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic()) => {
            // All bytes are ASCII graphic, so this is valid UTF-8.
            String::from_utf8_lossy(v).into_owned()
        }
        _ => next_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_client_ids_and_replaces_others() {
        assert_eq!(from_header(Some(b"abc-123")), "abc-123");
        assert_eq!(from_header(Some(b"bad id\n")).len(), 36);
        assert_eq!(from_header(None).len(), 36);
        assert_eq!(from_header(Some(&[b'a'; 200])).len(), 36);
        assert_ne!(from_header(None), from_header(None));
    }
}
