//! Query strings, read as Meilisearch reads them (`application/x-www-form-urlencoded`:
//! `+` is a space, `%XX` escapes decoded), and values written into them.

use std::borrow::Cow;

/// The decoded `(name, value)` pairs of a query string (without its `?`), in order.
pub fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.as_bytes())
}

/// The first value of parameter `name` in the query string of `path_and_query`.
pub fn param<'a>(path_and_query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let query = path_and_query.split_once('?')?.1;
    pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// `value` escaped for a query string.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `path_and_query` with parameter `name` set to `value`, replacing any value it had.
pub fn with_param(path_and_query: &str, name: &str, value: &str) -> String {
    let (base, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs(query).filter(|(k, _)| k != name) {
        out.append_pair(&k, &v);
    }
    out.append_pair(name, value);
    format!("{base}?{}", out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_a_space_and_escapes_are_decoded() {
        let got: Vec<(String, String)> = pairs("q=new+york&f=a%2Cb&empty&x=%E2%9C%93")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("q".into(), "new york".into()),
                ("f".into(), "a,b".into()),
                ("empty".into(), String::new()),
                ("x".into(), "✓".into()),
            ]
        );
        assert_eq!(param("/i?a=1&b=x+y", "b").as_deref(), Some("x y"));
        assert_eq!(param("/i", "b"), None);
    }

    #[test]
    fn a_parameter_is_replaced_and_escaped() {
        assert_eq!(
            with_param(
                "/indexes/m/documents?primaryKey=x&csvDelimiter=%3B",
                "primaryKey",
                "the id"
            ),
            "/indexes/m/documents?csvDelimiter=%3B&primaryKey=the+id"
        );
        assert_eq!(with_param("/d", "primaryKey", "a&b"), "/d?primaryKey=a%26b");
        assert_eq!(encode("a b&c"), "a+b%26c");
    }
}
