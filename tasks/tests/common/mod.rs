//! The task-store tests run against every backend: the embedded store in a temporary
//! directory, and the Redis store on a `redis-server` the test starts (skipped, and said so,
//! when there is none).

#![allow(dead_code)]

use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};

use miroir_tasks::{EmbeddedStore, RedisStore, StoreError, TaskRecord, TaskStore};
use miroir_testkit::redis::{Persistence, RedisServer};
use miroir_testkit::tempdir::TempDir;

pub enum Store {
    Embedded(EmbeddedStore, TempDir),
    Redis(Box<RedisStore>),
}

impl Store {
    pub fn import(&self, records: impl IntoIterator<Item = TaskRecord>) -> Result<(), StoreError> {
        match self {
            Store::Embedded(s, _) => s.import(records),
            Store::Redis(s) => s.import(records),
        }
    }

    pub fn audit(&self) -> Result<(), String> {
        match self {
            Store::Embedded(s, _) => s.audit(),
            Store::Redis(s) => s.audit(),
        }
    }
}

impl Deref for Store {
    type Target = dyn TaskStore;

    fn deref(&self) -> &Self::Target {
        match self {
            Store::Embedded(s, _) => s,
            Store::Redis(s) => s.as_ref(),
        }
    }
}

/// The backends of one test: a Redis server when there is one, kept for the test's length.
pub struct Backends {
    pub redis: Option<RedisServer>,
}

impl Backends {
    pub fn new() -> Self {
        let redis = RedisServer::start(Persistence::None);
        if redis.is_none() {
            eprintln!(
                "Redis backend skipped: no redis-server on PATH (scripts/setup.sh installs it)"
            );
        }
        Self { redis }
    }

    /// A fresh, empty store of each backend.
    pub fn stores(&self, name: &str) -> Vec<(&'static str, Store)> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = TempDir::new(&format!("miroir-tasks-{name}")).expect("temp dir");
        let embedded = EmbeddedStore::open(&dir.path().join("tasks.redb")).expect("open");
        let mut out = vec![("embedded", Store::Embedded(embedded, dir))];
        if let Some(redis) = &self.redis {
            let prefix = format!("test:{name}:{n}");
            let store = RedisStore::open_with_prefix(&redis.url(), &prefix).expect("open redis");
            out.push(("redis", Store::Redis(Box::new(store))));
        }
        out
    }
}
