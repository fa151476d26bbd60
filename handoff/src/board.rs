//! Coordination among Miroirs sharing one Redis, beside their logs:
//!
//! - versioned records (the applied topology): read whole, replaced only by a writer that
//!   read the current generation (compare and set), so two Miroirs never overwrite each
//!   other's change;
//! - members: each Miroir beats every few hundred milliseconds with the record generations it
//!   has installed, and counts as gone once its beats stop for [`MEMBER_MS`];
//! - the gate: one Miroir at a time closes it (for [`GATE_MS`], renewed while held) to hold
//!   every Miroir's writes; each other member acknowledges it once its own writes are held.
//!
//! Keys live under the store's prefix (`<prefix>:board:*`). Time is Redis's own clock
//! (`TIME`), so members' clocks need not agree. The embedded store has no other Miroir, hence
//! no board.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use crate::redis_log::RedisLog;
use crate::store::HintError;

/// A member whose beats stopped this long ago is gone: nothing waits for it.
pub const MEMBER_MS: u64 = 3_000;
/// A closed gate opens by itself this long after its holder's last renewal (the holder
/// died).
pub const GATE_MS: u64 = 5_000;

/// Replaces a record if its generation is the one the writer read: ARGV = key, expected
/// generation, value. Answers {1, new generation} or {0, current generation}.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local g = tonumber(redis.call('HGET', ARGV[1], 'gen') or '0')
if g ~= tonumber(ARGV[2]) then return {0, g} end
redis.call('HSET', ARGV[1], 'gen', g + 1, 'value', ARGV[3])
return {1, g + 1}",
    )
});

/// A member's beat: ARGV = members key, member, ms, gate key, then per record its key and
/// the generation installed ("name=generation" pairs, comma-separated, as ARGV[5]). Answers
/// {the gate's holder or '', then each record's generation}.
static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', ARGV[1], ARGV[2], (now + tonumber(ARGV[3])) .. ':' .. ARGV[5])
local gens = {}
for i = 6, #ARGV do
  gens[#gens + 1] = tonumber(redis.call('HGET', ARGV[i], 'gen') or '0')
end
return {redis.call('GET', ARGV[4]) or '', gens}",
    )
});

/// The live members and the generations each installed, dropping the gone: ARGV = members
/// key. Answers {member, "name=generation,...", ...}.
static MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', ARGV[1])
local out = {}
for i = 1, #all, 2 do
  local v = all[i + 1]
  local sep = string.find(v, ':', 1, true)
  if tonumber(string.sub(v, 1, sep - 1)) < now then
    redis.call('HDEL', ARGV[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = string.sub(v, sep + 1)
  end
end
return out",
    )
});

/// What one beat found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beat {
    /// Each record's current generation (0: none yet), in the order asked.
    pub generations: Vec<u64>,
    /// Who holds the gate closed, if anyone.
    pub gate: Option<String>,
}

/// A live member: its name and, per record, the generation it installed.
pub type Member = (String, HashMap<String, u64>);

/// This Miroir's view of the board; see the module's documentation.
pub struct Board<'a> {
    pub(crate) log: &'a RedisLog,
    pub(crate) member: &'a str,
}

impl Board<'_> {
    /// This process's name among the members (unique per start).
    pub fn member(&self) -> &str {
        self.member
    }

    fn key(&self, what: &str) -> String {
        format!("{}:board:{what}", self.log.prefix())
    }

    /// The record `name` and its generation, if one was ever written.
    pub fn record(&self, name: &str) -> Result<Option<(u64, String)>, HintError> {
        let key = self.key(&format!("rec:{name}"));
        let (generation, value): (Option<u64>, Option<String>) = self.log.with(|con| {
            redis::cmd("HMGET")
                .arg(&key)
                .arg("gen")
                .arg("value")
                .query(con)
        })?;
        Ok(generation.zip(value))
    }

    /// Writes `value` as record `name` if its generation is still `expected` (0: none yet):
    /// `Ok(new generation)`, or `Err(current generation)` when another Miroir wrote first.
    pub fn put_record(
        &self,
        name: &str,
        expected: u64,
        value: &str,
    ) -> Result<Result<u64, u64>, HintError> {
        let mut invocation = PUT.prepare_invoke();
        invocation
            .arg(self.key(&format!("rec:{name}")))
            .arg(expected)
            .arg(value);
        let (done, generation): (i64, u64) = self.log.with(|con| invocation.invoke(con))?;
        Ok(if done == 1 {
            Ok(generation)
        } else {
            Err(generation)
        })
    }

    /// The record `name` with its generation; when there is none yet, `value` published as
    /// its first generation (another Miroir publishing first wins, and its record is
    /// answered): `(generation, value)`.
    pub fn record_or_publish(&self, name: &str, value: &str) -> Result<(u64, String), HintError> {
        loop {
            if let Some(found) = self.record(name)? {
                return Ok(found);
            }
            if let Ok(generation) = self.put_record(name, 0, value)? {
                return Ok((generation, value.to_owned()));
            }
        }
    }

    /// Says this member is alive with `installed` generations (record name, generation);
    /// answers the current generation of each record in `records` and the gate's holder.
    pub fn beat(&self, installed: &[(&str, u64)], records: &[&str]) -> Result<Beat, HintError> {
        let installed: Vec<String> = installed.iter().map(|(n, g)| format!("{n}={g}")).collect();
        let mut invocation = BEAT.prepare_invoke();
        invocation
            .arg(self.key("members"))
            .arg(self.member)
            .arg(MEMBER_MS)
            .arg(self.key("gate"))
            .arg(installed.join(","));
        for name in records {
            invocation.arg(self.key(&format!("rec:{name}")));
        }
        let (gate, generations): (String, Vec<u64>) =
            self.log.with(|con| invocation.invoke(con))?;
        Ok(Beat {
            generations,
            gate: (!gate.is_empty()).then_some(gate),
        })
    }

    /// The live members (this one included once it beat), with the generations each
    /// installed.
    pub fn members(&self) -> Result<Vec<Member>, HintError> {
        let mut invocation = MEMBERS.prepare_invoke();
        invocation.arg(self.key("members"));
        let flat: Vec<String> = self.log.with(|con| invocation.invoke(con))?;
        Ok(flat
            .chunks_exact(2)
            .map(|pair| {
                let installed = pair[1]
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0)))
                    .collect();
                (pair[0].clone(), installed)
            })
            .collect())
    }

    /// Closes the gate as `holder` (or renews it if `holder` has it): whether `holder` has it.
    pub fn close_gate(&self, holder: &str) -> Result<bool, HintError> {
        self.log.lease(&self.key("gate"), holder, GATE_MS)
    }

    /// Opens the gate if `holder` still has it closed.
    pub fn open_gate(&self, holder: &str) -> Result<(), HintError> {
        self.log.release(&self.key("gate"), holder)
    }

    /// Says this member's writes are held for the gate `holder` closed.
    pub fn ack_gate(&self, holder: &str) -> Result<(), HintError> {
        let key = self.key("acks");
        self.log.with(|con| {
            redis::cmd("HSET")
                .arg(&key)
                .arg(self.member)
                .arg(holder)
                .query::<i64>(con)
        })?;
        Ok(())
    }

    /// Per member, the last gate it acknowledged.
    pub fn acks(&self) -> Result<HashMap<String, String>, HintError> {
        let key = self.key("acks");
        self.log
            .with(|con| redis::cmd("HGETALL").arg(&key).query(con))
    }
}
