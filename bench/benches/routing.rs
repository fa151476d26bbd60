//! Routing arithmetic and route classification: the per-request and per-document costs.

use std::time::Duration;

use miroir_bench::{ns_per_op, report};
use miroir_filters::routes::classify;
use miroir_filters::routing::{shard_for_key, NodeId, Placement, ShardId};

fn main() {
    let budget = Duration::from_millis(500);
    let keys: Vec<String> = (0..10_000).map(|i| format!("product-{i}")).collect();
    let ns = ns_per_op(10_000, budget, |i| shard_for_key(&keys[i % keys.len()], 64));
    report("shard_for_key (S=64, 13-byte keys)", ns);

    let groups = vec![(0..3)
        .map(|n| NodeId::new(&format!("meili-{n}")).unwrap())
        .collect::<Vec<_>>()];
    let ns = ns_per_op(10, budget, |_| {
        Placement::new(64, 1, groups.clone()).unwrap()
    });
    report("Placement::new (S=64, 3 nodes, RF=1)", ns);

    let placement = Placement::new(
        64,
        2,
        vec![(0..8)
            .map(|n| NodeId::new(&format!("meili-{n}")).unwrap())
            .collect()],
    )
    .unwrap();
    let ns = ns_per_op(1_000, budget, |i| {
        placement.write_targets(ShardId((i % 64) as u32)).count()
    });
    report("write_targets (S=64, 8 nodes, RF=2)", ns);

    let paths = [
        ("POST", "/indexes/movies/search"),
        ("GET", "/indexes/movies/documents/42"),
        ("PUT", "/indexes/movies/settings/filterable-attributes"),
        ("GET", "/tasks/123"),
        ("POST", "/multi-search"),
    ];
    let ns = ns_per_op(10_000, budget, |i| {
        let (m, p) = paths[i % paths.len()];
        classify(m, p).map(|r| r.spec.class)
    });
    report("routes::classify (mixed routes)", ns);
}
