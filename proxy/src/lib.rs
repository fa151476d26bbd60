//! Miroir: a sharding and high-availability proxy for Meilisearch Community Edition, on
//! Pingora. Pure request logic (routing arithmetic, the route table, splitting and merging)
//! lives in `miroir-filters`, configuration in `miroir-conf`, the task registry in
//! `miroir-tasks`, the hint store in `miroir-handoff`.
//!
//! Dependencies point down this list; nothing imports a module above it:
//!
//! | module | job |
//! |---|---|
//! | `server` | Pingora: listeners, the `ProxyHttp` phases, route dispatch, writing answers |
//! | `ops` | the admin API and configuration reload |
//! | `fleet` | topology changes: plan, apply, shard moves, joining and rebuilt nodes |
//! | `ctl` | `miroir ctl`: the operator's client of the admin API, and `import` |
//! | `write`, `read`, `lifecycle`, `tasks` | the request paths |
//! | `shared` | what every path reaches: the cluster, the task registry, key rights, repair queues |
//! | `repair` | hinted handoff and replay, index repairs, settings drift |
//! | `webhooks` | the webhooks registered through `/webhooks`, called once per Miroir task |
//! | `auth` | credentials, and what a key allows on the routes Miroir answers |
//! | `node_io` | calls to nodes: any, every, one after another, one replica per shard |
//! | `cluster` | the config snapshot, placement, node states, latencies, health checks |
//! | `request` | a client request (`Incoming`) and its answer (`Reply`) |
//! | `upstream` | the pooled connection to one node |
//! | `telemetry` | metrics and logs |

pub mod auth;
pub mod cli;
pub mod cluster;
pub mod ctl;
pub mod fleet;
pub mod lifecycle;
pub mod node_io;
pub mod ops;
pub mod read;
pub mod repair;
pub mod request;
pub mod reshard;
pub mod server;
pub mod shared;
pub mod tasks;
pub mod telemetry;
pub mod upstream;
pub mod webhooks;
pub mod write;
