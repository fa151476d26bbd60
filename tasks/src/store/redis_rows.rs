//! The store's rows as Redis keys (see `redis_store` for the layout and the transactions).
//!
//! Reads outside a transaction go straight to Redis. Inside one, every key is `WATCH`ed
//! before it is first read, writes are queued for one `MULTI`/`EXEC` and kept in an overlay
//! the transaction's own keyed reads see; `EXEC` fails when another process changed a
//! watched key meanwhile, and the caller runs the transaction again.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};

use ::redis::{Connection, Pipeline};

use super::rows::{Cell, FactsIter, Rows, RowsMut, Uids};
use super::tables::{decode, encode};
use super::StoreError;
use crate::index::{CellKey, Facts, Summary};
use crate::record::{TaskRecord, TaskUid};

/// Uids are scores; a double holds them exactly below 2^53.
const EXACT: u64 = 1 << 53;
/// The first chunk a range reads; each next one doubles, up to `MAX_CHUNK`.
const FIRST_CHUNK: usize = 16;
const MAX_CHUNK: usize = 1024;

/// A Redis error: `Unavailable` when Redis could not be reached or answer (down, refused,
/// timed out, loading its data), else a backend error. Never carries the URL.
pub(super) fn redis_error(e: ::redis::RedisError) -> StoreError {
    let unreachable = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ::redis::ErrorKind::Server(
                ::redis::ServerErrorKind::BusyLoading | ::redis::ServerErrorKind::MasterDown
            )
        );
    if unreachable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// The names of the store's keys, under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// The next task uid to hand out.
    pub(super) next: String,
    /// Hash: uid -> record JSON.
    pub(super) records: String,
    /// Hash: uid -> `Facts` (36 bytes).
    pub(super) facts: String,
    /// Sorted set of every task's uid.
    pub(super) uids: String,
    /// Hash: `index\0type\0status` -> cell id.
    pub(super) cells: String,
    /// Hash: cell id -> `[index, type, status, count]`.
    pub(super) cell_info: String,
    /// Counter of cell ids.
    pub(super) cell_seq: String,
    /// Hash: `level:block` -> `Summary`.
    pub(super) summaries: String,
    /// Hash: idempotency key -> `digest\0uid`.
    pub(super) idempotency: String,
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        let k = |name: &str| format!("{prefix}:{name}");
        Self {
            next: k("next_uid"),
            records: k("records"),
            facts: k("facts"),
            uids: k("uids"),
            cells: k("cells"),
            cell_info: k("cell_info"),
            cell_seq: k("cell_seq"),
            summaries: k("summaries"),
            idempotency: k("idempotency"),
            prefix: prefix.to_owned(),
        }
    }

    /// Sorted set: one cell's uids.
    fn cell(&self, cell: u32) -> String {
        format!("{}:cell:{cell}", self.prefix)
    }

    /// Sorted set: the uids one task cancelation canceled.
    fn canceler(&self, by: u64) -> String {
        format!("{}:canceled_by:{by}", self.prefix)
    }

    /// The pattern of every canceler's key (tests).
    pub(super) fn cancelers(&self) -> String {
        format!("{}:canceled_by:*", self.prefix)
    }

    /// Sorted set: the blocks of one level that have a summary.
    fn blocks(&self, level: u8) -> String {
        format!("{}:blocks:{level}", self.prefix)
    }

    /// A held idempotency key (see `TaskStore::claim`).
    pub(super) fn claim(&self, key: &str) -> String {
        format!("{}:claim:{key}", self.prefix)
    }
}

fn cell_field(key: &CellKey) -> String {
    format!("{}\0{}\0{}", key.index, key.kind, key.status)
}

fn summary_field(level: u8, block: u64) -> String {
    format!("{level}:{block}")
}

fn encode_facts(f: &Facts) -> Vec<u8> {
    let (cell, a, b, c, by) = f.row();
    let mut out = Vec::with_capacity(36);
    out.extend(cell.to_le_bytes());
    for t in [a, b, c] {
        out.extend(t.to_le_bytes());
    }
    out.extend(by.to_le_bytes());
    out
}

fn decode_facts(uid: u64, bytes: &[u8]) -> Result<Facts, StoreError> {
    let corrupt = || StoreError::Corrupt(uid, "facts".into());
    let at = |i: usize, n: usize| bytes.get(i..i + n).ok_or_else(corrupt);
    let u32_at = |i| {
        Ok::<_, StoreError>(u32::from_le_bytes(
            at(i, 4)?.try_into().map_err(|_| corrupt())?,
        ))
    };
    let i64_at = |i| {
        Ok::<_, StoreError>(i64::from_le_bytes(
            at(i, 8)?.try_into().map_err(|_| corrupt())?,
        ))
    };
    let u64_at = |i| {
        Ok::<_, StoreError>(u64::from_le_bytes(
            at(i, 8)?.try_into().map_err(|_| corrupt())?,
        ))
    };
    Ok(Facts::from_row((
        u32_at(0)?,
        i64_at(4)?,
        i64_at(12)?,
        i64_at(20)?,
        u64_at(28)?,
    )))
}

fn score(x: u64) -> String {
    if x >= EXACT {
        "+inf".into()
    } else {
        x.to_string()
    }
}

fn parse_uid(member: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(member)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Backend("a sorted set holds a member that is not a uid".into()))
}

/// A range read chunk by chunk: each chunk starts after the uid of the previous one's last
/// item.
struct Chunks<T, F> {
    fetch: F,
    uid: fn(&T) -> u64,
    buf: VecDeque<T>,
    last: Option<u64>,
    size: usize,
    done: bool,
}

impl<T, F: FnMut(Option<u64>, usize) -> Result<Vec<T>, StoreError>> Iterator for Chunks<T, F> {
    type Item = Result<T, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            match (self.fetch)(self.last, self.size) {
                Ok(chunk) => {
                    self.done = chunk.len() < self.size;
                    self.last = chunk.last().map(self.uid).or(self.last);
                    self.buf.extend(chunk);
                    self.size = (self.size * 2).min(MAX_CHUNK);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

fn chunks<'a, T: 'a>(
    uid: fn(&T) -> u64,
    fetch: impl FnMut(Option<u64>, usize) -> Result<Vec<T>, StoreError> + 'a,
) -> Box<dyn Iterator<Item = Result<T, StoreError>> + 'a> {
    Box::new(Chunks {
        fetch,
        uid,
        buf: VecDeque::new(),
        last: None,
        size: FIRST_CHUNK,
        done: false,
    })
}

/// The rows over one Redis connection; `watching` inside a write transaction.
pub(super) struct RedisRows<'c> {
    con: RefCell<&'c mut Connection>,
    keys: &'c Keys,
    watching: bool,
    watched: RefCell<HashSet<String>>,
    /// The transaction's writes, by (key, field): `None` deleted.
    overlay: HashMap<(String, String), Option<Vec<u8>>>,
    /// The transaction's writes, for `MULTI`/`EXEC`.
    pub(super) writes: Pipeline,
    next_uid: Option<u64>,
}

impl<'c> RedisRows<'c> {
    pub(super) fn new(con: &'c mut Connection, keys: &'c Keys, watching: bool) -> Self {
        let mut writes = ::redis::pipe();
        writes.atomic();
        Self {
            con: RefCell::new(con),
            keys,
            watching,
            watched: RefCell::new(HashSet::new()),
            overlay: HashMap::new(),
            writes,
            next_uid: None,
        }
    }

    /// Whether the transaction queued writes.
    pub(super) fn has_writes(&self) -> bool {
        !self.overlay.is_empty() || self.next_uid.is_some() || !self.writes.is_empty()
    }

    /// Whether some key was watched (then `UNWATCH` before the connection is reused).
    pub(super) fn watches(&self) -> bool {
        !self.watched.borrow().is_empty()
    }

    pub(super) fn connection(&mut self) -> &mut Connection {
        self.con.get_mut()
    }

    pub(super) fn connection_ref(&self) -> std::cell::RefMut<'_, &'c mut Connection> {
        self.con.borrow_mut()
    }

    /// Runs `cmd` after watching `key` (inside a transaction), in one round trip.
    fn query<T: ::redis::FromRedisValue>(
        &self,
        key: &str,
        cmd: ::redis::Cmd,
    ) -> Result<T, StoreError> {
        let mut con = self.con.borrow_mut();
        if self.watching && self.watched.borrow_mut().insert(key.to_owned()) {
            let mut p = ::redis::pipe();
            p.cmd("WATCH").arg(key).ignore().add_command(cmd);
            let (out,): (T,) = p.query(&mut **con).map_err(redis_error)?;
            return Ok(out);
        }
        cmd.query(&mut **con).map_err(redis_error)
    }

    /// One hash field, as the transaction sees it.
    fn field(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(&(key.to_owned(), field.to_owned())) {
            return Ok(v.clone());
        }
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(key).arg(field);
        self.query(key, cmd)
    }

    fn set_field(&mut self, key: &str, field: &str, value: Vec<u8>) {
        self.writes
            .cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(&value)
            .ignore();
        self.overlay
            .insert((key.to_owned(), field.to_owned()), Some(value));
    }

    fn del_field(&mut self, key: &str, field: &str) {
        self.writes.cmd("HDEL").arg(key).arg(field).ignore();
        self.overlay
            .insert((key.to_owned(), field.to_owned()), None);
    }

    /// Uids of a sorted set in `[lo, hi]`, after `after` in the walk's direction.
    fn zrange(
        &self,
        key: &str,
        (lo, hi): (u64, u64),
        descending: bool,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let (lo, hi) = match (after, descending) {
            (Some(a), false) => (format!("({a}"), score(hi)),
            (Some(a), true) => (score(lo), format!("({a}")),
            (None, _) => (score(lo), score(hi)),
        };
        let mut cmd = if descending {
            let mut c = ::redis::cmd("ZREVRANGEBYSCORE");
            c.arg(key).arg(hi).arg(lo);
            c
        } else {
            let mut c = ::redis::cmd("ZRANGEBYSCORE");
            c.arg(key).arg(lo).arg(hi);
            c
        };
        cmd.arg("LIMIT").arg(0).arg(limit);
        let members: Vec<Vec<u8>> = self.query(key, cmd)?;
        members.iter().map(|m| parse_uid(m)).collect()
    }

    fn range(&self, key: String, bounds: (u64, u64), descending: bool) -> Uids<'_> {
        if bounds.0 > bounds.1 || bounds.0 >= EXACT {
            return Box::new(std::iter::empty());
        }
        chunks(
            |&uid| uid,
            move |after, limit| self.zrange(&key, bounds, descending, after, limit),
        )
    }

    /// Several fields of one hash in one round trip (outside the overlay: range reads).
    fn fields(&self, key: &str, fields: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(key).arg(fields);
        self.query(key, cmd)
    }

    fn next_uid(&mut self) -> Result<u64, StoreError> {
        if let Some(n) = self.next_uid {
            return Ok(n);
        }
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(&self.keys.next);
        let n: Option<u64> = self.query(&self.keys.next, cmd)?;
        Ok(n.unwrap_or(0))
    }

    fn set_next_uid(&mut self, n: u64) {
        self.next_uid = Some(n);
        self.writes.cmd("SET").arg(&self.keys.next).arg(n).ignore();
    }
}

impl Rows for RedisRows<'_> {
    fn cells(&self) -> Result<Vec<Cell>, StoreError> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(&self.keys.cell_info);
        let all: Vec<(u32, Vec<u8>)> = self.query(&self.keys.cell_info, cmd)?;
        let mut cells = Vec::with_capacity(all.len());
        for (id, info) in all {
            let (index, kind, status, count): (String, String, u8, u64) =
                serde_json::from_slice(&info)
                    .map_err(|e| StoreError::Backend(format!("cell {id}: {e}")))?;
            cells.push(Cell {
                id,
                index,
                kind,
                status,
                count,
            });
        }
        cells.sort_by_key(|c| c.id);
        Ok(cells)
    }

    fn record(&self, uid: u64) -> Result<Option<TaskRecord>, StoreError> {
        let bytes = self.field(&self.keys.records, &uid.to_string())?;
        bytes.map(|b| decode(uid, &b)).transpose()
    }

    fn facts(&self, uid: u64) -> Result<Option<Facts>, StoreError> {
        let bytes = self.field(&self.keys.facts, &uid.to_string())?;
        bytes.map(|b| decode_facts(uid, &b)).transpose()
    }

    fn facts_range(&self, lo: u64, hi: u64, descending: bool) -> Result<FactsIter<'_>, StoreError> {
        if lo > hi || lo >= EXACT {
            return Ok(Box::new(std::iter::empty()));
        }
        let key = self.keys.uids.clone();
        Ok(chunks(
            |(uid, _)| *uid,
            move |after, limit| {
                let uids = self.zrange(&key, (lo, hi), descending, after, limit)?;
                let names: Vec<String> = uids.iter().map(u64::to_string).collect();
                let stored = self.fields(&self.keys.facts, &names)?;
                uids.into_iter()
                    .zip(stored)
                    .map(|(uid, f)| {
                        let f = f.ok_or_else(|| StoreError::Corrupt(uid, "no facts".into()))?;
                        Ok((uid, decode_facts(uid, &f)?))
                    })
                    .collect()
            },
        ))
    }

    fn cell_uids(
        &self,
        cell: u32,
        lo: u64,
        hi: u64,
        descending: bool,
    ) -> Result<Uids<'_>, StoreError> {
        Ok(self.range(self.keys.cell(cell), (lo, hi), descending))
    }

    fn canceled_by(&self, by: u64) -> Result<Uids<'_>, StoreError> {
        Ok(self.range(self.keys.canceler(by), (0, u64::MAX), false))
    }

    fn blocks(&self, level: u8, lo: u64, hi: u64) -> Result<Vec<(u64, Summary)>, StoreError> {
        let numbers: Vec<u64> = self
            .range(self.keys.blocks(level), (lo, hi), false)
            .collect::<Result<_, _>>()?;
        let names: Vec<String> = numbers.iter().map(|&b| summary_field(level, b)).collect();
        let stored = self.fields(&self.keys.summaries, &names)?;
        Ok(numbers
            .into_iter()
            .zip(stored)
            .filter_map(|(block, s)| Some((block, Summary::decode(&s?).unwrap_or_default())))
            .collect())
    }

    fn task_count(&self) -> Result<u64, StoreError> {
        let mut cmd = ::redis::cmd("HLEN");
        cmd.arg(&self.keys.records);
        self.query(&self.keys.records, cmd)
    }
}

impl RowsMut for RedisRows<'_> {
    fn put_record(&mut self, record: &TaskRecord) -> Result<(), StoreError> {
        let key = self.keys.records.clone();
        self.set_field(&key, &record.uid.0.to_string(), encode(record)?);
        Ok(())
    }

    fn remove_record(&mut self, uid: u64) -> Result<bool, StoreError> {
        let key = self.keys.records.clone();
        let field = uid.to_string();
        let existed = self.field(&key, &field)?.is_some();
        self.del_field(&key, &field);
        Ok(existed)
    }

    fn allocate_uid(&mut self) -> Result<TaskUid, StoreError> {
        let uid = self.next_uid()?;
        self.set_next_uid(uid + 1);
        Ok(TaskUid(uid))
    }

    fn raise_next_uid(&mut self, next: u64) -> Result<(), StoreError> {
        let now = self.next_uid()?;
        self.set_next_uid(now.max(next));
        Ok(())
    }

    fn put_facts(&mut self, uid: u64, facts: Facts) -> Result<(), StoreError> {
        let key = self.keys.facts.clone();
        self.set_field(&key, &uid.to_string(), encode_facts(&facts));
        self.writes
            .cmd("ZADD")
            .arg(&self.keys.uids)
            .arg(uid)
            .arg(uid)
            .ignore();
        Ok(())
    }

    fn remove_facts(&mut self, uid: u64) -> Result<(), StoreError> {
        let key = self.keys.facts.clone();
        self.del_field(&key, &uid.to_string());
        self.writes
            .cmd("ZREM")
            .arg(&self.keys.uids)
            .arg(uid)
            .ignore();
        Ok(())
    }

    fn cell_insert(&mut self, cell: u32, uid: u64) -> Result<(), StoreError> {
        let key = self.keys.cell(cell);
        self.writes.cmd("ZADD").arg(key).arg(uid).arg(uid).ignore();
        Ok(())
    }

    fn cell_remove(&mut self, cell: u32, uid: u64) -> Result<(), StoreError> {
        let key = self.keys.cell(cell);
        self.writes.cmd("ZREM").arg(key).arg(uid).ignore();
        Ok(())
    }

    fn canceler_insert(&mut self, by: u64, uid: u64) -> Result<(), StoreError> {
        let key = self.keys.canceler(by);
        self.writes.cmd("ZADD").arg(key).arg(uid).arg(uid).ignore();
        Ok(())
    }

    fn canceler_remove(&mut self, by: u64, uid: u64) -> Result<(), StoreError> {
        let key = self.keys.canceler(by);
        self.writes.cmd("ZREM").arg(key).arg(uid).ignore();
        Ok(())
    }

    fn cell_id(&mut self, key: &CellKey) -> Result<Option<u32>, StoreError> {
        let id = self.field(&self.keys.cells, &cell_field(key))?;
        Ok(id.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok()))
    }

    fn create_cell(&mut self, key: &CellKey) -> Result<u32, StoreError> {
        // Taken outside the transaction: an id a failed transaction took is never used.
        let id: u32 = ::redis::cmd("INCR")
            .arg(&self.keys.cell_seq)
            .query(&mut **self.con.get_mut())
            .map_err(redis_error)?;
        let cells = self.keys.cells.clone();
        self.set_field(&cells, &cell_field(key), id.to_string().into_bytes());
        self.set_cell_count(id, key, 0)?;
        Ok(id)
    }

    fn cell_info(&mut self, cell: u32) -> Result<Option<(CellKey, u64)>, StoreError> {
        let Some(info) = self.field(&self.keys.cell_info, &cell.to_string())? else {
            return Ok(None);
        };
        let (index, kind, status, count): (String, String, u8, u64) = serde_json::from_slice(&info)
            .map_err(|e| StoreError::Backend(format!("cell {cell}: {e}")))?;
        Ok(Some((
            CellKey {
                index,
                kind,
                status,
            },
            count,
        )))
    }

    fn set_cell_count(&mut self, cell: u32, key: &CellKey, count: u64) -> Result<(), StoreError> {
        let info = serde_json::to_vec(&(&key.index, &key.kind, key.status, count))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let cell_info = self.keys.cell_info.clone();
        self.set_field(&cell_info, &cell.to_string(), info);
        Ok(())
    }

    fn drop_cell(&mut self, cell: u32, key: &CellKey) -> Result<(), StoreError> {
        let (cell_info, cells) = (self.keys.cell_info.clone(), self.keys.cells.clone());
        self.del_field(&cell_info, &cell.to_string());
        self.del_field(&cells, &cell_field(key));
        Ok(())
    }

    fn summary(&mut self, level: u8, block: u64) -> Result<Option<Summary>, StoreError> {
        let stored = self.field(&self.keys.summaries, &summary_field(level, block))?;
        Ok(stored.map(|s| Summary::decode(&s).unwrap_or_default()))
    }

    fn put_summary(&mut self, level: u8, block: u64, s: &Summary) -> Result<(), StoreError> {
        let key = self.keys.summaries.clone();
        self.set_field(&key, &summary_field(level, block), s.encode());
        let blocks = self.keys.blocks(level);
        self.writes
            .cmd("ZADD")
            .arg(blocks)
            .arg(block)
            .arg(block)
            .ignore();
        Ok(())
    }

    fn remove_summary(&mut self, level: u8, block: u64) -> Result<(), StoreError> {
        let key = self.keys.summaries.clone();
        self.del_field(&key, &summary_field(level, block));
        let blocks = self.keys.blocks(level);
        self.writes.cmd("ZREM").arg(blocks).arg(block).ignore();
        Ok(())
    }

    fn idempotency(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let value = self.field(&self.keys.idempotency, key)?;
        Ok(value.and_then(|v| String::from_utf8(v).ok()))
    }

    fn put_idempotency(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        let idempotency = self.keys.idempotency.clone();
        self.set_field(&idempotency, key, value.as_bytes().to_vec());
        Ok(())
    }
}
