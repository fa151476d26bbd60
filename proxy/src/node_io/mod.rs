//! Calls to nodes on behalf of a request or a background job, over `upstream`: any node,
//! every node, one node after another (`fanout`), one replica per shard with hedging and
//! EWMA choice (`scatter`), one node's own tasks (`node_tasks`), and what a node's answer
//! means for a write (`verdict`). Choice of node and the outcome of each call go through
//! `cluster`; nothing here knows a route.

pub mod fanout;
pub mod node_tasks;
pub mod once;
pub mod scatter;
pub mod verdict;

pub use fanout::{any, every, in_order, one};
pub use node_tasks::{task_state, wait_processed, TaskState};
pub use scatter::{ask_node, gather, gather_shards, Gathered, ShardAnswer, ShardRequest};
pub use verdict::{accepted_task_uid, failure_json, missed};
