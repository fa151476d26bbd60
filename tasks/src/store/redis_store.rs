//! The Redis backend: one registry shared by every Miroir process that names the same Redis.
//!
//! Layout (under a prefix, `miroir:tasks`): the uid sequence (`next_uid`), records and their
//! facts in two hashes, every uid in a sorted set, one sorted set of uids per cell and per
//! task cancelation, the cells and their counts, block summaries (a hash, and one sorted set
//! of block numbers per level), idempotency keys in a hash and their claims as keys that
//! expire. The same indexes as the embedded store, so a page costs the same reads (each a
//! Redis command; uid lists are read in chunks).
//!
//! Writes: one transaction at a time per process (as redb's one writer); across processes,
//! optimistic: every key read is `WATCH`ed, the writes go in one `MULTI`/`EXEC`, and a
//! transaction another process interfered with runs again. The client is synchronous: the
//! proxy calls the store off the async workers, like the embedded store.
//!
//! Reads are not one snapshot: a listing made while another process writes may count a
//! task its page no longer shows (each record read is checked to exist).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use ::redis::{Client, Connection};
use serde_json::Value;
use time::OffsetDateTime;

use super::ops::{self, parse_idempotency};
use super::reader::Reader;
use super::redis_rows::{redis_error, Keys, RedisRows};
use super::rows::Rows;
use super::{audit, prune, Claim, Created, Page, Pruned, StoreError, TaskStore};
use crate::query::TaskQuery;
use crate::record::{Idempotency, NewTask, TaskRecord, TaskUid};

/// The prefix of every key the store writes.
pub const PREFIX: &str = "miroir:tasks";
/// How long connecting, or waiting for one answer, may take before Redis counts as down.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Transactions other processes interfered with, run again at most this often.
const ATTEMPTS: usize = 1000;
/// Connections kept for reuse.
const IDLE: usize = 16;

/// Deletes a claim only if it is still the caller's.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

pub struct RedisStore {
    client: Client,
    keys: Keys,
    idle: Mutex<Vec<Connection>>,
    /// This process's write transactions, one at a time.
    writer: Mutex<()>,
    /// Claims this process holds: key -> its token.
    token: String,
    release: ::redis::Script,
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host:port[/db]`) and checks that Redis
    /// answers. Errors never contain the URL (it may hold a password).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_prefix(url, PREFIX)
    }

    /// Like [`RedisStore::open`], with every key under `prefix` (tests share one Redis).
    #[doc(hidden)]
    pub fn open_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = Client::open(url).map_err(|_| {
            StoreError::Backend(
                "not a Redis URL this build can use (redis://host:port/db; no TLS)".into(),
            )
        })?;
        let store = Self {
            client,
            keys: Keys::new(prefix),
            idle: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            token: uuid_like(),
            release: ::redis::Script::new(RELEASE),
        };
        store.ready()?;
        Ok(store)
    }

    /// A connection: one kept from earlier calls (`true`), or a new one.
    fn connect(&self) -> Result<(Connection, bool), StoreError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(con) = pooled {
            return Ok((con, true));
        }
        let con = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(redis_error)?;
        con.set_read_timeout(Some(TIMEOUT)).map_err(redis_error)?;
        con.set_write_timeout(Some(TIMEOUT)).map_err(redis_error)?;
        Ok((con, false))
    }

    /// Runs `f` on a connection. A connection that failed is dropped, and with it every kept
    /// one (Redis went away: they are all broken), so the store works again as soon as Redis
    /// is back. When a kept connection fails and `again()` says `f` changed nothing yet, `f`
    /// runs once more on a new connection: the first call after Redis restarted succeeds.
    fn with<T>(
        &self,
        again: impl Fn() -> bool,
        mut f: impl FnMut(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (mut con, pooled) = self.connect()?;
        let out = match f(&mut con) {
            Err(StoreError::Unavailable(e)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.clear();
                }
                if !(pooled && again()) {
                    return Err(StoreError::Unavailable(e));
                }
                con = self.connect()?.0;
                f(&mut con)?
            }
            other => other?,
        };
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE {
                idle.push(con);
            }
        }
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl Fn(Reader<RedisRows<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(
            || true,
            |con| f(Reader::open(RedisRows::new(con, &self.keys, false))?),
        )
    }

    /// Runs `op` as one transaction (see the module's documentation); `op` may run several
    /// times. Returns its result once its writes committed (or when it wrote nothing).
    fn write<T>(
        &self,
        mut op: impl FnMut(&mut RedisRows<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _turn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("a task store writer panicked".into()))?;
        // Set once `EXEC` is sent: from then on the transaction may have committed, and is
        // not run again on another connection.
        let committing = std::cell::Cell::new(false);
        self.with(
            || !committing.get(),
            |con| {
                for _ in 0..ATTEMPTS {
                    let mut rows = RedisRows::new(con, &self.keys, true);
                    let out = op(&mut rows)?;
                    if !rows.has_writes() {
                        if rows.watches() {
                            ::redis::cmd("UNWATCH")
                                .exec(rows.connection())
                                .map_err(redis_error)?;
                        }
                        return Ok(out);
                    }
                    let writes = std::mem::replace(&mut rows.writes, ::redis::pipe());
                    committing.set(true);
                    let done: ::redis::Value =
                        writes.query(rows.connection()).map_err(redis_error)?;
                    if !matches!(done, ::redis::Value::Nil) {
                        return Ok(out);
                    }
                    committing.set(false);
                }
                Err(StoreError::Backend(
                    "task store: too many concurrent writers".into(),
                ))
            },
        )
    }

    /// Deletes the claim key `claim` if this store still holds it.
    fn let_go(&self, con: &mut Connection, claim: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .release
            .key(claim)
            .arg(&self.token)
            .invoke(con)
            .map_err(redis_error)?;
        Ok(())
    }

    /// Stores `records` as they are (their uids kept) and moves the uid sequence past them
    /// (tests and benchmarks).
    pub fn import(&self, records: impl IntoIterator<Item = TaskRecord>) -> Result<(), StoreError> {
        let records: Vec<TaskRecord> = records.into_iter().collect();
        for chunk in records.chunks(5_000) {
            self.write(|rows| ops::import(rows, chunk.iter().cloned()))?;
        }
        Ok(())
    }

    /// Checks every index against the records (tests), as `EmbeddedStore::audit`.
    #[doc(hidden)]
    pub fn audit(&self) -> Result<(), String> {
        let run = || -> Result<(), StoreError> {
            self.with(
                || true,
                |con| {
                    let all: Vec<(u64, Vec<u8>)> = ::redis::cmd("HGETALL")
                        .arg(&self.keys.records)
                        .query(con)
                        .map_err(redis_error)?;
                    let mut records = Vec::with_capacity(all.len());
                    for (uid, bytes) in all {
                        records.push(super::tables::decode(uid, &bytes)?);
                    }
                    records.sort_by_key(|r| r.uid);
                    let cancelers: Vec<String> = ::redis::cmd("KEYS")
                        .arg(self.keys.cancelers())
                        .query(con)
                        .map_err(redis_error)?;
                    let rows = RedisRows::new(con, &self.keys, false);
                    let cells = rows.cells()?;
                    let mut listed = 0;
                    for c in &cells {
                        listed += rows.cell_uids(c.id, 0, u64::MAX, false)?.count() as u64;
                    }
                    let mut canceled = 0;
                    for key in &cancelers {
                        let n: u64 = ::redis::cmd("ZCARD")
                            .arg(key)
                            .query(&mut **rows.connection_ref())
                            .map_err(redis_error)?;
                        canceled += n;
                    }
                    audit::audit(&rows, &records, (listed, canceled))
                },
            )
        };
        run().map_err(|e| format!("audit: {e}"))
    }
}

/// A token naming this store's claims (unique enough: time and process).
fn uuid_like() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", std::process::id(), now.as_nanos())
}

impl TaskStore for RedisStore {
    fn create(
        &self,
        task: NewTask,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let created = self.write(|rows| ops::create(rows, task.clone(), idempotency))?;
        if let (Some(idem), Created::New(_)) = (idempotency, &created) {
            // Recorded: the key's claim has done its job.
            self.release(&idem.key)?;
        }
        Ok(created)
    }

    fn claim(&self, idem: &Idempotency, hold: Duration) -> Result<Claim, StoreError> {
        let claim = self.keys.claim(&idem.key);
        self.with(
            || true,
            |con| {
                let seen = |con: &mut Connection| -> Result<Option<Claim>, StoreError> {
                    let value: Option<String> = ::redis::cmd("HGET")
                        .arg(&self.keys.idempotency)
                        .arg(&idem.key)
                        .query(con)
                        .map_err(redis_error)?;
                    Ok(value
                        .as_deref()
                        .and_then(parse_idempotency)
                        .map(|(digest, uid)| Claim::Seen(digest, uid)))
                };
                if let Some(seen) = seen(con)? {
                    return Ok(seen);
                }
                // The holder before, if any (then nothing is set): this store itself when an
                // earlier try took the key and lost its answer.
                let holder: Option<String> = ::redis::cmd("SET")
                    .arg(&claim)
                    .arg(&self.token)
                    .arg("NX")
                    .arg("GET")
                    .arg("PX")
                    .arg(hold.as_millis().max(1) as u64)
                    .query(con)
                    .map_err(redis_error)?;
                if holder.is_some_and(|h| h != self.token) {
                    return Ok(Claim::Busy);
                }
                // Its holder may have recorded the task and let go between the two reads.
                if let Some(seen) = seen(con)? {
                    self.let_go(con, &claim)?;
                    return Ok(seen);
                }
                Ok(Claim::Claimed)
            },
        )
    }

    fn release(&self, key: &str) -> Result<(), StoreError> {
        let claim = self.keys.claim(key);
        self.with(|| true, |con| self.let_go(con, &claim))
    }

    fn ready(&self) -> Result<(), StoreError> {
        self.with(
            || true,
            |con| {
                ::redis::cmd("PING")
                    .query::<String>(con)
                    .map_err(redis_error)?;
                Ok(())
            },
        )
    }

    fn get(&self, uid: TaskUid) -> Result<Option<TaskRecord>, StoreError> {
        self.read(|r| r.rows.record(uid.0))
    }

    fn idempotency(&self, key: &str) -> Result<Option<(String, TaskUid)>, StoreError> {
        self.with(
            || true,
            |con| {
                let value: Option<String> = ::redis::cmd("HGET")
                    .arg(&self.keys.idempotency)
                    .arg(key)
                    .query(con)
                    .map_err(redis_error)?;
                Ok(value.as_deref().and_then(parse_idempotency))
            },
        )
    }

    fn modify(
        &self,
        uid: TaskUid,
        change: &mut dyn FnMut(&mut TaskRecord),
    ) -> Result<bool, StoreError> {
        self.write(|rows| ops::modify(rows, uid, change))
    }

    fn settle(&self, views: Vec<(TaskUid, Value)>) -> Result<Vec<TaskUid>, StoreError> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|rows| ops::settle(rows, &views))
    }

    fn unsettled(&self, q: &TaskQuery, max: usize) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(|r| r.unsettled(q, max))
    }

    fn list(&self, q: &TaskQuery, pending: &BTreeSet<u64>) -> Result<Page, StoreError> {
        self.read(|r| r.page(q, pending))
    }

    fn delete(&self, uids: &[TaskUid]) -> Result<usize, StoreError> {
        self.write(|rows| ops::delete(rows, uids))
    }

    fn count(&self) -> Result<u64, StoreError> {
        self.read(|r| r.rows.task_count())
    }

    fn prune(&self, limit: u64, batch: usize, now: OffsetDateTime) -> Result<Pruned, StoreError> {
        self.write(|rows| prune::prune(rows, limit, batch, now))
    }
}
