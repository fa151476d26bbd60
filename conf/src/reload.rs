//! Which changes a hot reload cannot apply.

use crate::config::Config;

/// Keys whose change between `old` and `new` needs a restart: listeners, worker threads and
/// on-disk state are set up once at start. `shards` is listed too, although a restart alone
/// does not apply it either: changing S moves documents and needs a reshard.
pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let checks: [(&'static str, bool); 10] = [
        (
            "server.bind",
            old.server.listen.ip() != new.server.listen.ip(),
        ),
        (
            "server.port",
            old.server.listen.port() != new.server.listen.port(),
        ),
        ("server.tls", old.server.tls != new.server.tls),
        ("server.threads", old.server.threads != new.server.threads),
        (
            "server.work_stealing",
            old.server.work_stealing != new.server.work_stealing,
        ),
        ("metrics", old.metrics != new.metrics),
        ("data_dir", old.data_dir != new.data_dir),
        ("task_store", old.task_store != new.task_store),
        ("log.format", old.log.format != new.log.format),
        ("shards", old.shards != new.shards),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}
