//! CSV bodies, read with the csv crate configured as Meilisearch configures it. Rows stay their
//! original bytes; typed cells (`price:number`) are checked as Meilisearch converts them.

use std::borrow::Cow;

use csv::{ReaderBuilder, StringRecord};
use serde_json::{Map, Value};

use super::errors;
use super::pk::{self, DocId, PrimaryKey};
use super::scan::{offset, CsvHeader, Doc, Scan};
use crate::error::MiroirError;
use crate::hidden::RESERVED_PREFIX;

/// How Meilisearch converts a column's cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
}

/// A header cell: the field name and how its cells convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Column<'h> {
    name: &'h str,
    kind: Kind,
    /// Whether the cell carried an explicit type (`name:string` too).
    typed: bool,
}

/// With several `:`, only the last one types the column; an unknown type keeps the whole cell
/// as an untyped name.
fn column(header: &str) -> Column<'_> {
    let (name, kind) = match header.rsplit_once(':') {
        Some((name, "string")) => (name, Kind::String),
        Some((name, "number")) => (name, Kind::Number),
        Some((name, "boolean")) => (name, Kind::Boolean),
        _ => {
            return Column {
                name: header,
                kind: Kind::String,
                typed: false,
            }
        }
    };
    Column {
        name,
        kind,
        typed: true,
    }
}

pub(crate) fn scan_csv(
    body: &[u8],
    delimiter: u8,
    primary_key: Result<Option<PrimaryKey>, MiroirError>,
    shards: u32,
) -> Result<Scan, MiroirError> {
    let mut reader = ReaderBuilder::new().delimiter(delimiter).from_reader(body);
    let headers = reader.headers().map_err(errors::malformed_csv)?.clone();
    let header_end = usize::try_from(reader.position().byte()).unwrap_or(body.len());
    let columns: Vec<Column<'_>> = headers.iter().map(column).collect();
    let typed_columns: Vec<(usize, Kind)> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind != Kind::String)
        .map(|(i, c)| (i, c.kind))
        .collect();
    let mut rows = Rows {
        shards,
        columns: &columns,
        primary_key: None,
        pk_column: None,
        rejected: None,
        docs: Vec::new(),
    };
    match primary_key {
        Ok(Some(pk)) => rows.set_primary_key(pk),
        Ok(None) => {}
        Err(e) => rows.rejected = Some(e),
    }

    let mut record = StringRecord::new();
    let mut line = 0;
    while reader
        .read_record(&mut record)
        .map_err(errors::malformed_csv)?
    {
        line += 1;
        check_typed_cells(&typed_columns, &record, line)?;
        if rows.rejected.is_none() {
            let start = record.position().map_or(0, |p| p.byte());
            let span = trim_terminators(body, start as usize, reader.position().byte() as usize);
            if let Err(e) = rows.accept(&record, span) {
                rows.rejected = Some(e);
            }
        }
    }

    if let Some(e) = rows.rejected {
        return Err(e);
    }
    let primary_key = rows
        .primary_key
        .ok_or_else(errors::no_primary_key_candidate)?;
    let (start, end) = trim_terminators(body, 0, header_end);
    Ok(Scan {
        primary_key,
        docs: rows.docs,
        csv_header: Some(CsvHeader {
            line: start..end,
            typed: columns.iter().any(|c| c.typed),
        }),
    })
}

/// The row's bytes without the line terminators the reader consumed around it (blank lines
/// before it, `\r\n` after it). A row cannot start or end with a bare CR or LF: that would be
/// an empty line or a terminator, and a quoted cell starts and ends with `"`.
fn trim_terminators(body: &[u8], start: usize, end: usize) -> (usize, usize) {
    let is_eol = |b: &u8| *b == b'\r' || *b == b'\n';
    let end = end.min(body.len());
    let start = start.min(end);
    let row = &body[start..end];
    let lead = row.iter().take_while(|b| is_eol(b)).count();
    let trail = row[lead..].iter().rev().take_while(|b| is_eol(b)).count();
    (start + lead, end - trail)
}

/// Meilisearch rejects the whole payload when a typed cell does not convert.
fn check_typed_cells(
    typed_columns: &[(usize, Kind)],
    record: &StringRecord,
    line: usize,
) -> Result<(), MiroirError> {
    for &(i, kind) in typed_columns {
        let value = record.get(i).unwrap_or_default();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            continue;
        }
        match kind {
            Kind::Number if trimmed.parse::<i64>().is_err() => {
                if let Err(error) = trimmed.parse::<f64>() {
                    return Err(errors::malformed_csv(format_args!(
                        "Error parsing number {value:?} at line {line}: {error}"
                    )));
                }
            }
            Kind::Boolean => {
                if let Err(error) = trimmed.parse::<bool>() {
                    return Err(errors::malformed_csv(format_args!(
                        "Error parsing boolean {value:?} at line {line}: {error}"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The rows accepted so far and what they are checked against.
struct Rows<'h> {
    shards: u32,
    columns: &'h [Column<'h>],
    /// `None` until inferred from the header at the first row.
    primary_key: Option<PrimaryKey>,
    /// The column holding the primary key; `None` means every row lacks it.
    pk_column: Option<(usize, Kind)>,
    rejected: Option<MiroirError>,
    docs: Vec<Doc>,
}

impl Rows<'_> {
    fn set_primary_key(&mut self, primary_key: PrimaryKey) {
        // Meilisearch builds each row's object column by column, so a repeated name holds the
        // last column's value; a nested key (`a.b`) can only match a column named `a.b`.
        self.pk_column = self
            .columns
            .iter()
            .rposition(|c| c.name == primary_key.name())
            .map(|i| (i, self.columns[i].kind));
        self.primary_key = Some(primary_key);
    }

    fn accept(
        &mut self,
        record: &StringRecord,
        (start, end): (usize, usize),
    ) -> Result<(), MiroirError> {
        if self.primary_key.is_none() {
            // Every row's object has every header field, so the first document's field names
            // are the header's.
            let primary_key = pk::infer(self.columns.iter().map(|c| c.name))?;
            self.set_primary_key(primary_key);
        }
        if let Some(c) = self
            .columns
            .iter()
            .find(|c| c.name.starts_with(RESERVED_PREFIX))
        {
            return Err(errors::reserved_field(c.name));
        }
        let name = self.primary_key.as_ref().map_or("", PrimaryKey::name);
        let Some((i, kind)) = self.pk_column else {
            return Err(errors::missing_document_id(name, &self.document(record)));
        };
        let cell = record.get(i).unwrap_or_default();
        let id = match id_of(cell, kind) {
            Ok(id) => id,
            Err(value) => return Err(errors::invalid_document_id(&value)),
        };
        self.docs.push(Doc {
            start: offset(start)?,
            end: offset(end)?,
            shard: id.shard(self.shards).0,
        });
        Ok(())
    }

    /// A row as the JSON object Meilisearch makes of it, for error messages.
    fn document(&self, record: &StringRecord) -> Value {
        let mut object = Map::new();
        for (i, c) in self.columns.iter().enumerate() {
            let cell = record.get(i).unwrap_or_default();
            object.insert(c.name.to_owned(), cell_value(cell, c.kind));
        }
        Value::Object(object)
    }
}

/// A primary-key cell as an id, or the value Meilisearch reports as invalid.
fn id_of(cell: &str, kind: Kind) -> Result<DocId<'_>, Value> {
    match kind {
        Kind::String if pk::is_valid_str_id(cell) => Ok(DocId::Str(Cow::Borrowed(cell))),
        Kind::Number => match cell.trim().parse::<i64>() {
            Ok(n) => Ok(DocId::I64(n)),
            Err(_) => Err(cell_value(cell, kind)),
        },
        _ => Err(cell_value(cell, kind)),
    }
}

/// A cell converted as Meilisearch converts it (cells were checked by [`check_typed_cells`]).
fn cell_value(cell: &str, kind: Kind) -> Value {
    let trimmed = cell.trim();
    match kind {
        Kind::String if cell.is_empty() => Value::Null,
        Kind::String => Value::from(cell),
        Kind::Number | Kind::Boolean if trimmed.is_empty() => Value::Null,
        Kind::Number => match trimmed.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => trimmed.parse::<f64>().map_or(Value::Null, Value::from),
        },
        Kind::Boolean => trimmed.parse::<bool>().map_or(Value::Null, Value::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_cells_are_typed_by_their_last_colon() {
        assert_eq!(
            column("price:number"),
            Column {
                name: "price",
                kind: Kind::Number,
                typed: true
            }
        );
        assert_eq!(
            column("a:b:boolean"),
            Column {
                name: "a:b",
                kind: Kind::Boolean,
                typed: true
            }
        );
        assert_eq!(
            column("name:string"),
            Column {
                name: "name",
                kind: Kind::String,
                typed: true
            }
        );
        assert_eq!(
            column("time:12"),
            Column {
                name: "time:12",
                kind: Kind::String,
                typed: false
            }
        );
        assert_eq!(
            column("id"),
            Column {
                name: "id",
                kind: Kind::String,
                typed: false
            }
        );
    }

    #[test]
    fn terminators_are_trimmed_on_both_sides() {
        let body = b"a\r\n\r\nb,c\r\nd";
        assert_eq!(trim_terminators(body, 1, 10), (5, 8));
        assert_eq!(trim_terminators(body, 10, 11), (10, 11));
    }

    #[test]
    fn number_ids_hash_as_integers() {
        assert_eq!(id_of(" 42", Kind::Number), Ok(DocId::I64(42)));
        assert_eq!(id_of("4.5", Kind::Number), Err(Value::from(4.5)));
        assert_eq!(id_of("", Kind::String), Err(Value::Null));
        assert_eq!(id_of(" 42", Kind::String), Err(Value::from(" 42")));
    }
}
