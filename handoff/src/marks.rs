//! Versioned marks in a shared Redis: under a name, members each with the highest version
//! marked (a sorted set, the version as its score), kept for as long as the caller wants
//! them. Miroir's record of deletions uses them when several Miroirs share a Redis, so that
//! anti-entropy, whichever Miroir runs it, knows every Miroir's deletions.
//!
//! Keys live under the store's prefix (`<prefix>:marks:<name>`), with the names ever marked
//! in one set (`<prefix>:marks`) for pruning.

use std::sync::LazyLock;

use redis::Script;

use crate::redis_log::RedisLog;
use crate::store::HintError;

/// Marks members with a version unless they have a higher one: ARGV = names set, name, key,
/// version, members... .
static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', ARGV[1], ARGV[2])
local v = tonumber(ARGV[4])
for i = 5, #ARGV do
  local cur = redis.call('ZSCORE', ARGV[3], ARGV[i])
  if not cur or tonumber(cur) < v then redis.call('ZADD', ARGV[3], v, ARGV[i]) end
end
return 1",
    )
});

/// The versions of some members, -1 for none: ARGV = key, members... .
static VERSIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = tonumber(redis.call('ZSCORE', ARGV[1], ARGV[i]) or '-1')
end
return out",
    )
});

/// This Miroir's view of the marks; see the module's documentation.
pub struct Marks<'a> {
    pub(crate) log: &'a RedisLog,
}

impl Marks<'_> {
    fn names(&self) -> String {
        format!("{}:marks", self.log.prefix())
    }

    fn key(&self, name: &str) -> String {
        format!("{}:marks:{name}", self.log.prefix())
    }

    /// Marks `members` of `name` with `version` (each keeps the higher of the two).
    pub fn mark(&self, name: &str, members: &[&str], version: u64) -> Result<(), HintError> {
        let mut invocation = MARK.prepare_invoke();
        invocation
            .arg(self.names())
            .arg(name)
            .arg(self.key(name))
            .arg(version);
        for m in members {
            invocation.arg(*m);
        }
        self.log.with(|con| invocation.invoke::<i64>(con))?;
        Ok(())
    }

    /// The version of each of `members` in `name`, if marked.
    pub fn versions(&self, name: &str, members: &[&str]) -> Result<Vec<Option<u64>>, HintError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = VERSIONS.prepare_invoke();
        invocation.arg(self.key(name));
        for m in members {
            invocation.arg(*m);
        }
        let found: Vec<i64> = self.log.with(|con| invocation.invoke(con))?;
        Ok(found.into_iter().map(|v| u64::try_from(v).ok()).collect())
    }

    /// Every member of `name` with its version, lowest version first.
    pub fn all(&self, name: &str) -> Result<Vec<(String, u64)>, HintError> {
        let key = self.key(name);
        self.log.with(|con| {
            redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(con)
        })
    }

    /// Forgets the members of `name` marked at `version` or below.
    pub fn drop_up_to(&self, name: &str, version: u64) -> Result<(), HintError> {
        let key = self.key(name);
        self.log.with(|con| {
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(version)
                .query::<i64>(con)
        })?;
        Ok(())
    }

    /// Every name ever marked.
    pub fn names_marked(&self) -> Result<Vec<String>, HintError> {
        let names = self.names();
        self.log
            .with(|con| redis::cmd("SMEMBERS").arg(&names).query(con))
    }
}
