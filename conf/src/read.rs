//! Reads TOML text into the raw schema and words its errors: the key they are about, and
//! never the offending value, which could be a secret.

use crate::error::Problem;
use crate::raw::RawConfig;

/// Parses the TOML into the raw schema. Only the first error can be reported: deserialization
/// stops there.
pub(crate) fn deserialize(text: &str) -> Result<RawConfig, Problem> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let line = inner
            .span()
            .and_then(|span| text.as_bytes().get(..span.start))
            .map(|before| before.iter().filter(|&&b| b == b'\n').count() + 1);
        describe(&path, inner.message(), line)
    })
}

/// Names the key of a deserialization error and words the reason without the offending value,
/// which could be a secret.
fn describe(path: &str, message: &str, line: Option<usize>) -> Problem {
    let at_line = line.map(|l| format!(" (line {l})")).unwrap_or_default();
    // The path ends at the unknown key itself, but only at the struct missing a field.
    let join = |field: &str| match path {
        "" | "." => field.to_owned(),
        _ if path == field || path.ends_with(&format!(".{field}")) => path.to_owned(),
        _ => format!("{path}.{field}"),
    };
    if let Some(field) = backticked(message, "unknown field `") {
        return Problem::new(join(field), format!("unknown key{at_line}"));
    }
    if let Some(field) = backticked(message, "missing field `") {
        return Problem::new(join(field), format!("required{at_line}"));
    }
    let reason = match message.split_once(", expected ") {
        Some((kind, expected)) if message.starts_with("invalid ") => {
            let kind = kind.split(':').next().unwrap_or(kind);
            format!("{kind}, expected {expected}")
        }
        _ => message.trim().replace('\n', "; "),
    };
    let key = match path {
        "" | "." => line.map_or_else(|| "toml".to_owned(), |l| format!("line {l}")),
        _ => path.to_owned(),
    };
    Problem::new(key, format!("{reason}{at_line}"))
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}
