//! Document payloads: JSON (array or single object), NDJSON and CSV with Meilisearch's typed
//! headers (`price:number`, `ok:boolean`). Parsing happens at request time, so a malformed
//! payload is a 400 on the request, not a failed task, as in Meilisearch.

use meili_sim_engine::{Document, ErrorType, MeiliError};
use serde_json::{Map, Value};

use crate::error::{
    invalid_content_type, malformed_documents, missing_content_type, missing_payload,
};

pub const ACCEPTED: &[&str] = &["application/json", "application/x-ndjson", "text/csv"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    pub fn from_content_type(content_type: Option<&str>) -> Result<Format, MeiliError> {
        let raw = content_type.ok_or_else(|| missing_content_type(ACCEPTED))?;
        let essence = raw
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Format::Json),
            "application/x-ndjson" => Ok(Format::Ndjson),
            "text/csv" => Ok(Format::Csv),
            _ => Err(invalid_content_type(raw, ACCEPTED)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// The `csvDelimiter` parameter: one ASCII character, and only with `text/csv`.
pub fn csv_delimiter(
    param: Option<&str>,
    format: Format,
    content_type: Option<&str>,
) -> Result<u8, MeiliError> {
    match param {
        None => Ok(b','),
        Some(_) if format != Format::Csv => Err(MeiliError::new(
            415,
            "invalid_content_type",
            ErrorType::InvalidRequest,
            format!(
                "The Content-Type `{}` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`.",
                content_type.unwrap_or_default()
            ),
        )),
        Some(d) => match d.as_bytes() {
            [b] if b.is_ascii() => Ok(*b),
            _ => Err(MeiliError::invalid(
                "invalid_document_csv_delimiter",
                format!(
                    "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of {} characters: `{d}`",
                    d.chars().count()
                ),
            )),
        },
    }
}

/// The `skipCreation` parameter: when true, documents that do not exist yet are ignored.
pub fn skip_creation(param: Option<&str>) -> Result<bool, MeiliError> {
    match param {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(MeiliError::invalid(
            "invalid_skip_creation",
            format!("skipCreation must be either `true` or `false`. Found: `{v}`"),
        )),
    }
}

pub fn parse(body: &[u8], format: Format, csv_delimiter: u8) -> Result<Vec<Document>, MeiliError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(missing_payload(format.name()));
    }
    match format {
        Format::Json => parse_json(body),
        Format::Ndjson => parse_ndjson(body),
        Format::Csv => parse_csv(body, csv_delimiter),
    }
}

fn parse_json(body: &[u8]) -> Result<Vec<Document>, MeiliError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed_documents("json", e))?;
    match value {
        Value::Object(doc) => Ok(vec![doc]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(doc) => Ok(doc),
                other => Err(malformed_documents(
                    "json",
                    format!("expected a document object, found `{other}`"),
                )),
            })
            .collect(),
        other => Err(malformed_documents(
            "json",
            format!("expected an object or an array of objects, found `{other}`"),
        )),
    }
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<Document>, MeiliError> {
    let text = std::str::from_utf8(body).map_err(|e| malformed_documents("ndjson", e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(doc)) => Ok(doc),
            Ok(other) => Err(malformed_documents(
                "ndjson",
                format!("expected a document object, found `{other}`"),
            )),
            Err(e) => Err(malformed_documents("ndjson", e)),
        })
        .collect()
}

enum Kind {
    String,
    Number,
    Boolean,
}

fn parse_csv(body: &[u8], delimiter: u8) -> Result<Vec<Document>, MeiliError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(body);
    let headers: Vec<(String, Kind)> = reader
        .headers()
        .map_err(|e| malformed_documents("csv", e))?
        .iter()
        .map(|h| match h.rsplit_once(':') {
            Some((name, "string")) => (name.to_owned(), Kind::String),
            Some((name, "number")) => (name.to_owned(), Kind::Number),
            Some((name, "boolean")) => (name.to_owned(), Kind::Boolean),
            _ => (h.to_owned(), Kind::String),
        })
        .collect();
    let mut docs = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| malformed_documents("csv", e))?;
        let mut doc = Map::new();
        for ((name, kind), cell) in headers.iter().zip(record.iter()) {
            let trimmed = cell.trim();
            let value = match kind {
                Kind::String if cell.is_empty() => Value::Null,
                Kind::String => Value::String(cell.to_owned()),
                Kind::Number | Kind::Boolean if trimmed.is_empty() => Value::Null,
                Kind::Number => match trimmed.parse::<i64>() {
                    Ok(i) => Value::from(i),
                    Err(_) => trimmed.parse::<f64>().map(Value::from).map_err(|e| {
                        malformed_documents(
                            "csv",
                            format!(
                                "{e}: could not parse `{cell}` as a number at line {}",
                                line + 1
                            ),
                        )
                    })?,
                },
                Kind::Boolean => trimmed.parse::<bool>().map(Value::Bool).map_err(|e| {
                    malformed_documents(
                        "csv",
                        format!(
                            "{e}: could not parse `{cell}` as a boolean at line {}",
                            line + 1
                        ),
                    )
                })?,
            };
            doc.insert(name.clone(), value);
        }
        docs.push(doc);
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_headers_carry_types() {
        let docs = parse(
            b"id,price:number,ok:boolean,name\n1,9.5,true,x\n2,,false,\n",
            Format::Csv,
            b',',
        )
        .unwrap();
        assert_eq!(
            Value::Object(docs[0].clone()),
            json!({"id": "1", "price": 9.5, "ok": true, "name": "x"})
        );
        assert_eq!(
            Value::Object(docs[1].clone()),
            json!({"id": "2", "price": null, "ok": false, "name": null})
        );
        assert_eq!(
            parse(b"id,p:number\n1,abc\n", Format::Csv, b',')
                .unwrap_err()
                .code,
            "malformed_payload"
        );
    }

    #[test]
    fn json_accepts_object_or_array_and_rejects_garbage() {
        assert_eq!(parse(br#"{"id":1}"#, Format::Json, b',').unwrap().len(), 1);
        assert_eq!(
            parse(br#"[{"id":1},{"id":2}]"#, Format::Json, b',')
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse(b"[1]", Format::Json, b',').unwrap_err().code,
            "malformed_payload"
        );
        assert_eq!(
            parse(b"{", Format::Json, b',').unwrap_err().code,
            "malformed_payload"
        );
        assert_eq!(
            parse(b"{\"id\":1}\n{\"id\":2}\n", Format::Ndjson, b',')
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            Format::from_content_type(None).unwrap_err().code,
            "missing_content_type"
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain"))
                .unwrap_err()
                .status,
            415
        );
    }
}
