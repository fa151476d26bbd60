//! Credentials a request carries: the bearer token, comparisons in constant time (a key
//! cannot be guessed byte by byte from timing), and which credential goes on to the nodes.

use miroir_conf::Config;

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of an `Authorization` header value, if any.
pub fn bearer(header: Option<&[u8]>) -> Option<&str> {
    let value = std::str::from_utf8(header?).ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

/// The credential to present to nodes for a client's: Miroir's master key becomes the nodes';
/// any other credential is the nodes' to judge.
pub fn node_credential<'a>(config: &'a Config, presented: Option<&'a str>) -> Option<&'a str> {
    match (presented, &config.master_key, &config.node_master_key) {
        (Some(p), Some(mine), Some(nodes)) if mine.matches(p.as_bytes()) => Some(nodes.expose()),
        (p, _, _) => p,
    }
}

/// What replaces a relayed request's `Authorization` header (`header`, the client's): the
/// nodes' credential when Miroir translates the client's (its master key); `None` leaves the
/// client's header as it is.
pub fn replaced_credential<'a>(config: &'a Config, header: Option<&'a [u8]>) -> Option<&'a str> {
    let presented = bearer(header);
    node_credential(config, presented).filter(|c| Some(*c) != presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_extracts() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert_eq!(bearer(Some(b"Bearer k1")), Some("k1"));
        assert_eq!(bearer(Some(b"Basic k1")), None);
        assert_eq!(bearer(Some(b"Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
