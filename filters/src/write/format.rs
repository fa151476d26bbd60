//! Which document format a write carries, from its `Content-Type` header and `csvDelimiter`
//! parameter, with Meilisearch's content-type errors.

use super::errors;
use crate::error::MiroirError;

/// A document payload format Meilisearch accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `application/json`: an array of objects, or one object.
    Json,
    /// `application/x-ndjson`: objects one after the other.
    Ndjson,
    /// `text/csv`: a header row naming the fields (optionally typed, `price:number`), then rows.
    Csv { delimiter: u8 },
}

impl PayloadFormat {
    /// The format of a document write, from the raw `Content-Type` header value (`None` when the
    /// header is absent) and the `csvDelimiter` query parameter, as Meilisearch decides it.
    ///
    /// Parameters such as `; charset=utf-8` are accepted and ignored; type and subtype match
    /// case-insensitively.
    pub fn from_request(
        content_type: Option<&[u8]>,
        csv_delimiter: Option<u8>,
    ) -> Result<Self, MiroirError> {
        let Some(raw) = content_type else {
            return Err(errors::missing_content_type());
        };
        let Some((kind, subtype)) = parse_media_type(raw) else {
            return Err(errors::invalid_content_type(&String::from_utf8_lossy(raw)));
        };
        let is = |k: &str, s: &str| kind.eq_ignore_ascii_case(k) && subtype.eq_ignore_ascii_case(s);
        match csv_delimiter {
            _ if is("text", "csv") => Ok(Self::Csv {
                delimiter: csv_delimiter.unwrap_or(b','),
            }),
            None if is("application", "json") => Ok(Self::Json),
            None if is("application", "x-ndjson") => Ok(Self::Ndjson),
            Some(_) if is("application", "json") => Err(
                errors::csv_delimiter_with_wrong_content_type("application/json"),
            ),
            Some(_) if is("application", "x-ndjson") => Err(
                errors::csv_delimiter_with_wrong_content_type("application/x-ndjson"),
            ),
            _ => Err(errors::invalid_content_type(&format!(
                "{}/{}",
                kind.to_ascii_lowercase(),
                subtype.to_ascii_lowercase()
            ))),
        }
    }

    /// The `Content-Type` of the bodies sent to nodes.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv { .. } => "text/csv",
        }
    }

    /// The name Meilisearch uses in its payload errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Csv { .. } => "csv",
        }
    }
}

/// The `csvDelimiter` query parameter (already percent-decoded): one ASCII character.
pub fn csv_delimiter(param: &str) -> Result<u8, MiroirError> {
    const PREFIX: &str =
        "Invalid value in parameter `csvDelimiter`: expected a string of one character";
    let mut chars = param.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Err(errors::invalid_csv_delimiter(format!(
            "{PREFIX}, but found an empty string"
        ))),
        (Some(c), None) => u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
            errors::invalid_csv_delimiter(format!(
                "csv delimiter must be an ascii character. Found: `{c}`"
            ))
        }),
        (Some(_), Some(_)) => Err(errors::invalid_csv_delimiter(format!(
            "{PREFIX}, but found the following string of {} characters: `{param}`",
            param.chars().count()
        ))),
    }
}

/// `type/subtype` of a media type (RFC 9110 §8.3.1), or `None` when the value does not parse,
/// which Meilisearch reports as an invalid content type quoting the raw value.
fn parse_media_type(raw: &[u8]) -> Option<(&str, &str)> {
    let value = std::str::from_utf8(raw).ok()?;
    let mut parts = value.split(';');
    let essence = parts.next()?.trim_matches(is_ows);
    let (kind, subtype) = essence.split_once('/')?;
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    for parameter in parts {
        let parameter = parameter.trim_matches(is_ows);
        let (name, value) = parameter.split_once('=')?;
        let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
        if !is_token(name) || !(quoted || is_token(value)) {
            return None;
        }
    }
    Some((kind, subtype))
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn format(ct: &str, delimiter: Option<u8>) -> Result<PayloadFormat, MiroirError> {
        PayloadFormat::from_request(Some(ct.as_bytes()), delimiter)
    }

    #[test]
    fn accepts_the_three_formats_with_parameters() {
        assert_eq!(format("application/json", None), Ok(PayloadFormat::Json));
        assert_eq!(
            format("application/json; charset=utf-8", None),
            Ok(PayloadFormat::Json)
        );
        assert_eq!(
            format("Application/JSON;charset=\"UTF-8\"", None),
            Ok(PayloadFormat::Json)
        );
        assert_eq!(
            format("application/x-ndjson", None),
            Ok(PayloadFormat::Ndjson)
        );
        assert_eq!(
            format("text/csv", None),
            Ok(PayloadFormat::Csv { delimiter: b',' })
        );
        assert_eq!(
            format("text/csv", Some(b';')),
            Ok(PayloadFormat::Csv { delimiter: b';' })
        );
    }

    #[test]
    fn missing_header_is_missing_content_type() {
        let e = PayloadFormat::from_request(None, None).unwrap_err();
        assert_eq!(e.code, Code::MissingContentType);
        assert_eq!(e.status(), 415);
        assert_eq!(e.message, "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`");
    }

    #[test]
    fn other_types_are_invalid_content_types() {
        let e = format("text/plain; charset=utf-8", None).unwrap_err();
        assert_eq!(e.code, Code::InvalidContentType);
        assert_eq!(e.message, "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`, `application/x-ndjson`, `text/csv`");
        let e = format("json", None).unwrap_err();
        assert_eq!(e.code, Code::InvalidContentType);
        assert!(e.message.starts_with("The Content-Type `json` is invalid."));
        assert_eq!(
            format("application/json; charset", None).unwrap_err().code,
            Code::InvalidContentType
        );
    }

    #[test]
    fn csv_delimiter_parameter_is_one_ascii_character() {
        assert_eq!(csv_delimiter(";"), Ok(b';'));
        assert_eq!(csv_delimiter("\t"), Ok(b'\t'));
        let e = csv_delimiter("").unwrap_err();
        assert_eq!(e.code, Code::InvalidDocumentCsvDelimiter);
        assert_eq!(e.status(), 400);
        assert_eq!(e.message, "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found an empty string");
        assert_eq!(csv_delimiter("doggo").unwrap_err().message, "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of 5 characters: `doggo`");
        assert_eq!(
            csv_delimiter("🍰").unwrap_err().message,
            "csv delimiter must be an ascii character. Found: `🍰`"
        );
    }

    #[test]
    fn csv_delimiter_needs_csv() {
        let e = format("application/json", Some(b';')).unwrap_err();
        assert_eq!(e.code, Code::InvalidContentType);
        assert_eq!(e.message, "The Content-Type `application/json` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.");
    }
}
