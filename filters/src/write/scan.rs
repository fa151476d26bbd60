//! What validating a body yields before any byte is copied: where each document sits in the
//! body and which shard it goes to.

use std::ops::Range;

use super::errors;
use super::pk::PrimaryKey;
use crate::error::{Code, MiroirError};

/// One accepted document. Offsets are `u32` to keep the index at 12 bytes a document; bodies
/// over 4 GiB are refused up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Doc {
    pub start: u32,
    /// JSON: the offset of the closing `}`. CSV: the end of the row, without its terminator.
    pub end: u32,
    pub shard: u32,
}

impl Doc {
    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The CSV header row: its bytes (without terminator) and whether it types its columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CsvHeader {
    pub line: Range<usize>,
    pub typed: bool,
}

/// A validated body.
#[derive(Debug)]
pub(crate) struct Scan {
    pub primary_key: PrimaryKey,
    pub docs: Vec<Doc>,
    pub csv_header: Option<CsvHeader>,
}

/// Offsets must fit the `u32`s of [`Doc`].
pub(crate) fn check_body_len(body: &[u8]) -> Result<(), MiroirError> {
    if u32::try_from(body.len()).is_err() {
        return Err(MiroirError::new(
            Code::PayloadTooLarge,
            "Miroir splits document batches of at most 4 GiB.",
        ));
    }
    Ok(())
}

/// Narrows an offset already bounded by [`check_body_len`].
pub(crate) fn offset(at: usize) -> Result<u32, MiroirError> {
    u32::try_from(at).map_err(|_| errors::internal("document offset beyond 4 GiB"))
}
