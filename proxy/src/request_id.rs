//! Request ids: the client's `X-Request-Id` when it is a sane token, else a fresh UUID v4.

pub fn from_header(value: Option<&[u8]>) -> String {
    match value {
        Some(v) if !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic()) => {
            // All bytes are ASCII graphic, so this is valid UTF-8.
            String::from_utf8_lossy(v).into_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
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
    }
}
