//! The shared backend: every node's log in Redis, so a hint one Miroir kept is replayed by
//! another when the first is gone for good.
//!
//! Layout (under a prefix, `miroir:hints`): the sequence (`seq`), per queue a sorted set of
//! sequence numbers (`q:<queue>`), their stored hints and sizes in two hashes (`h:<queue>`,
//! `s:<queue>`), one hash of every queue's counts (`backlog`: `h:`, `b:`, `r:` fields for
//! hints, bytes and the resync mark), and per queue the replay lease (`lease:<queue>`).
//! Every change is one Lua script: atomic, and durable as Redis's AOF makes it.
//!
//! The client is synchronous: the store calls it from its own threads or off the async
//! workers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, Script};

use crate::hint::Hint;
use crate::store::{HintError, NodeBacklog};

/// How long connecting, or waiting for one answer, may take before Redis counts as down.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Connections kept for reuse.
const IDLE: usize = 8;

/// Appends hints: ARGV = prefix, then (queue, size, cap, stored hint) per hint. Answers
/// (seq or -1 when the queue is full or marked for resync, hints, bytes, resync) per hint.
const APPEND: &str = r"
local p = ARGV[1]
local bk = p .. ':backlog'
local out = {}
local i = 2
while i <= #ARGV do
  local q, size, cap = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local h = tonumber(redis.call('HGET', bk, 'h:' .. q) or '0')
  local b = tonumber(redis.call('HGET', bk, 'b:' .. q) or '0')
  local r = redis.call('HGET', bk, 'r:' .. q) == '1'
  local seq = -1
  if not r and b + size <= cap then
    seq = redis.call('INCR', p .. ':seq')
    redis.call('ZADD', p .. ':q:' .. q, seq, seq)
    redis.call('HSET', p .. ':h:' .. q, seq, ARGV[i + 3])
    redis.call('HSET', p .. ':s:' .. q, seq, size)
    h = redis.call('HINCRBY', bk, 'h:' .. q, 1)
    b = redis.call('HINCRBY', bk, 'b:' .. q, size)
  end
  out[#out + 1] = seq
  out[#out + 1] = h
  out[#out + 1] = b
  out[#out + 1] = r and 1 or 0
  i = i + 4
end
return out";

/// Removes one hint: ARGV = prefix, queue, seq, lease token ('' for none), lease ms. Answers
/// (-1 when the token no longer holds the queue's lease (fenced), 0 when the hint was not
/// there, 1 when removed; the queue's hints and bytes after).
const REMOVE: &str = r"
local p, q, seq = ARGV[1], ARGV[2], ARGV[3]
local lease = p .. ':lease:' .. q
if ARGV[4] ~= '' then
  if redis.call('GET', lease) ~= ARGV[4] then return {-1, 0, 0} end
  redis.call('PEXPIRE', lease, ARGV[5])
end
local bk = p .. ':backlog'
if redis.call('ZREM', p .. ':q:' .. q, seq) == 0 then
  return {0, tonumber(redis.call('HGET', bk, 'h:' .. q) or '0'),
    tonumber(redis.call('HGET', bk, 'b:' .. q) or '0')}
end
local size = tonumber(redis.call('HGET', p .. ':s:' .. q, seq) or '0')
redis.call('HDEL', p .. ':h:' .. q, seq)
redis.call('HDEL', p .. ':s:' .. q, seq)
local h = redis.call('HINCRBY', bk, 'h:' .. q, -1)
local b = redis.call('HINCRBY', bk, 'b:' .. q, -size)
if h <= 0 then
  redis.call('HDEL', bk, 'h:' .. q, 'b:' .. q)
  h, b = 0, 0
end
return {1, h, b}";

/// Takes or renews a lease: ARGV = key, token, ms. 1 when the token holds it.
const LEASE: &str = r"
local cur = redis.call('GET', ARGV[1])
if cur == ARGV[2] then redis.call('PEXPIRE', ARGV[1], ARGV[3]) return 1 end
if not cur then redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0";

/// Takes the write order of a scope unless another process holds it: ARGV = key, token, ms,
/// backlog key. Answers every queue's counts (as `HGETALL` of the backlog hash) when taken,
/// false when not: a write checks its nodes' logs in the same step as it takes its turn.
/// A process refused marks itself as waiting (`<key>:next`, briefly), and a free order goes
/// to the waiting process first, so a busy Miroir does not keep it from the others.
const ORDER: &str = r"
local cur = redis.call('GET', ARGV[1])
local nextk = ARGV[1] .. ':next'
local waiting = redis.call('GET', nextk)
if (cur and cur ~= ARGV[2]) or (not cur and waiting and waiting ~= ARGV[2]) then
  if not waiting or waiting == ARGV[2] then
    redis.call('SET', nextk, ARGV[2], 'PX', 100)
  end
  return false
end
if waiting == ARGV[2] then redis.call('DEL', nextk) end
redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3])
return redis.call('HGETALL', ARGV[4])";

/// Renews a lease the token holds, never taking one: ARGV = key, token, ms. 1 when held.
const RENEW: &str = r"
if redis.call('GET', ARGV[1]) == ARGV[2] then redis.call('PEXPIRE', ARGV[1], ARGV[3]) return 1 end
return 0";

/// Gives a lease back if the token still holds it: ARGV = key, token.
const RELEASE: &str = r"
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0";

pub(crate) struct RedisLog {
    client: Client,
    prefix: String,
    idle: Mutex<Vec<Connection>>,
    append: Script,
    remove: Script,
    lease: Script,
    release: Script,
    order: Script,
    renew: Script,
}

/// One hint's outcome in an append: its place, or refused as over the queue's cap.
pub(crate) enum Appended {
    At(u64),
    Full,
}

fn backend(e: redis::RedisError) -> HintError {
    HintError::Backend(format!("redis: {e}"))
}

impl RedisLog {
    /// Connects to `url` and checks that Redis answers. Errors never contain the URL (it may
    /// hold a password).
    pub(crate) fn open(url: &str, prefix: &str) -> Result<Self, HintError> {
        let client = Client::open(url).map_err(|_| {
            HintError::Backend(
                "not a Redis URL this build can use (redis://host:port/db; no TLS)".into(),
            )
        })?;
        let log = Self {
            client,
            prefix: prefix.to_owned(),
            idle: Mutex::new(Vec::new()),
            append: Script::new(APPEND),
            remove: Script::new(REMOVE),
            lease: Script::new(LEASE),
            release: Script::new(RELEASE),
            order: Script::new(ORDER),
            renew: Script::new(RENEW),
        };
        log.with(|con| redis::cmd("PING").query::<String>(con))?;
        Ok(log)
    }

    /// Runs `f` on a kept connection or a new one; a failed connection is dropped with every
    /// kept one (Redis went away), so the log works again as soon as Redis is back.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, HintError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut con = match pooled {
            Some(con) => con,
            None => {
                let con = self
                    .client
                    .get_connection_with_timeout(TIMEOUT)
                    .map_err(backend)?;
                con.set_read_timeout(Some(TIMEOUT)).map_err(backend)?;
                con.set_write_timeout(Some(TIMEOUT)).map_err(backend)?;
                con
            }
        };
        match f(&mut con) {
            Ok(out) => {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < IDLE {
                        idle.push(con);
                    }
                }
                Ok(out)
            }
            Err(e) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.clear();
                }
                Err(backend(e))
            }
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, queue: &str) -> String {
        format!("{}:{kind}:{queue}", self.prefix)
    }

    /// Appends `(queue, hint, size, cap)` in order, in one script: each hint's outcome and
    /// every touched queue's counts after it.
    pub(crate) fn append(
        &self,
        batch: &[(&str, &Hint, u64, u64)],
    ) -> Result<(Vec<Appended>, HashMap<String, NodeBacklog>), HintError> {
        let mut invocation = self.append.prepare_invoke();
        invocation.arg(&self.prefix);
        for (queue, hint, size, cap) in batch {
            invocation
                .arg(*queue)
                .arg(*size)
                .arg(*cap)
                .arg(hint.encode());
        }
        let answer: Vec<i64> = self.with(|con| invocation.invoke(con))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut counts = HashMap::new();
        for ((queue, ..), row) in batch.iter().zip(answer.chunks(4)) {
            let [seq, hints, bytes, resync] = row else {
                return Err(HintError::Backend("redis: a short append answer".into()));
            };
            outcomes.push(if *seq < 0 {
                Appended::Full
            } else {
                Appended::At(*seq as u64)
            });
            counts.insert(
                (*queue).to_owned(),
                NodeBacklog {
                    hints: (*hints).max(0) as u64,
                    bytes: (*bytes).max(0) as u64,
                    needs_resync: *resync == 1,
                },
            );
        }
        Ok((outcomes, counts))
    }

    /// Every queue's counts, as Redis holds them now.
    pub(crate) fn backlogs(&self) -> Result<HashMap<String, NodeBacklog>, HintError> {
        let fields: HashMap<String, i64> = self.with(|con| {
            redis::cmd("HGETALL")
                .arg(format!("{}:backlog", self.prefix))
                .query(con)
        })?;
        Ok(parse_backlogs(fields))
    }

    /// Takes `scope`'s write order for `token` (for `ms`, renewed by [`Self::lease`] on the
    /// same key): every queue's counts when taken, `None` while another process holds it.
    pub(crate) fn take_order(
        &self,
        scope: &str,
        token: &str,
        ms: u64,
    ) -> Result<Option<HashMap<String, NodeBacklog>>, HintError> {
        let mut invocation = self.order.prepare_invoke();
        invocation
            .arg(self.order_key(scope))
            .arg(token)
            .arg(ms)
            .arg(format!("{}:backlog", self.prefix));
        let fields: Option<HashMap<String, i64>> = self.with(|con| invocation.invoke(con))?;
        Ok(fields.map(parse_backlogs))
    }

    /// The key of `scope`'s write order (held like a lease).
    pub(crate) fn order_key(&self, scope: &str) -> String {
        format!("{}:order:{scope}", self.prefix)
    }
}

/// The backlog hash's fields (`h:`, `b:`, `r:` per queue) as counts per queue.
fn parse_backlogs(fields: HashMap<String, i64>) -> HashMap<String, NodeBacklog> {
    {
        let mut out: HashMap<String, NodeBacklog> = HashMap::new();
        for (field, value) in fields {
            let Some((kind, queue)) = field.split_once(':') else {
                continue;
            };
            let b = out.entry(queue.to_owned()).or_default();
            let value = value.max(0) as u64;
            match kind {
                "h" => b.hints = value,
                "b" => b.bytes = value,
                "r" => b.needs_resync = value == 1,
                _ => {}
            }
        }
        out
    }
}

impl RedisLog {
    /// The oldest hint of `queue`.
    pub(crate) fn first(&self, queue: &str) -> Result<Option<(u64, Hint)>, HintError> {
        let (q, h) = (self.key("q", queue), self.key("h", queue));
        let seq: Option<u64> = self.with(|con| {
            let first: Vec<u64> = redis::cmd("ZRANGE").arg(&q).arg(0).arg(0).query(con)?;
            Ok(first.first().copied())
        })?;
        let Some(seq) = seq else { return Ok(None) };
        let stored: Option<Vec<u8>> =
            self.with(|con| redis::cmd("HGET").arg(&h).arg(seq).query(con))?;
        match stored {
            // Removed between the two reads: the next one is the oldest now.
            None => self.first(queue),
            Some(bytes) => Hint::decode(&bytes)
                .map(|hint| Some((seq, hint)))
                .ok_or_else(|| HintError::Backend(format!("corrupt hint {seq} of `{queue}`"))),
        }
    }

    /// The oldest sequence number of each queue that has one.
    pub(crate) fn heads(&self, queues: &[&str]) -> Result<HashMap<String, u64>, HintError> {
        if queues.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for queue in queues {
            pipe.cmd("ZRANGE").arg(self.key("q", queue)).arg(0).arg(0);
        }
        let firsts: Vec<Vec<u64>> = self.with(|con| pipe.query(con))?;
        Ok(queues
            .iter()
            .zip(firsts)
            .filter_map(|(q, f)| f.first().map(|s| ((*q).to_owned(), *s)))
            .collect())
    }

    /// Removes a hint; with a lease token, only while that token holds the queue's lease
    /// (renewing it for `lease_ms`). Whether it was there and the queue's hints and bytes
    /// after, or `Ok(None)` when fenced off.
    pub(crate) fn remove(
        &self,
        queue: &str,
        seq: u64,
        lease: Option<(&str, u64)>,
    ) -> Result<Option<(bool, u64, u64)>, HintError> {
        let (token, ms) = lease.unwrap_or(("", 0));
        let mut invocation = self.remove.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(queue)
            .arg(seq)
            .arg(token)
            .arg(ms);
        let answer: (i64, i64, i64) = self.with(|con| invocation.invoke(con))?;
        Ok(match answer {
            (-1, ..) => None,
            (n, hints, bytes) => Some((n == 1, hints.max(0) as u64, bytes.max(0) as u64)),
        })
    }

    pub(crate) fn set_resync(&self, queue: &str, needs_resync: bool) -> Result<(), HintError> {
        let backlog = format!("{}:backlog", self.prefix);
        let field = format!("r:{queue}");
        self.with(|con| {
            if needs_resync {
                redis::cmd("HSET")
                    .arg(&backlog)
                    .arg(&field)
                    .arg(1)
                    .query(con)
            } else {
                redis::cmd("HDEL").arg(&backlog).arg(&field).query(con)
            }
        })
    }

    /// The key of `queue`'s replay lease.
    pub(crate) fn lease_key(&self, queue: &str) -> String {
        self.key("lease", queue)
    }

    /// Takes (or renews) the lease at `key` for `token`: whether it holds it now.
    pub(crate) fn lease(&self, key: &str, token: &str, ms: u64) -> Result<bool, HintError> {
        let mut invocation = self.lease.prepare_invoke();
        invocation.arg(key).arg(token).arg(ms);
        let held: i64 = self.with(|con| invocation.invoke(con))?;
        Ok(held == 1)
    }

    /// Renews the lease at `key` if `token` holds it (never takes it): whether it does.
    pub(crate) fn renew(&self, key: &str, token: &str, ms: u64) -> Result<bool, HintError> {
        let mut invocation = self.renew.prepare_invoke();
        invocation.arg(key).arg(token).arg(ms);
        let held: i64 = self.with(|con| invocation.invoke(con))?;
        Ok(held == 1)
    }

    /// Gives the lease at `key` back if `token` still holds it.
    pub(crate) fn release(&self, key: &str, token: &str) -> Result<(), HintError> {
        let mut invocation = self.release.prepare_invoke();
        invocation.arg(key).arg(token);
        self.with(|con| invocation.invoke::<i64>(con)).map(|_| ())
    }
}
