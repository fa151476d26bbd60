//! Settings drift: every index's settings must be identical on every node. A background
//! service compares them (each interval, and for one index right after a settings update
//! through Miroir finished on the nodes) and patches the odd node out with the values of a
//! strict majority; with no majority it logs and reports the drift and repairs nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use miroir_filters::hidden;

use super::majority::{no_majority, strict_majority};
use crate::cluster::job_lease::JobLease;
use crate::cluster::{Cluster, Runtime};
use crate::node_io::{task_state, TaskState};
use crate::request::Incoming;
use crate::telemetry::metrics;
use crate::upstream::{NodePeer, NodeRequest, NodeResult};

/// Settings whose reads hide secrets (embedder and chat API keys): copying what a node shows
/// would overwrite the real key, so their drift is reported, never repaired.
const NOT_COPYABLE: [&str; 2] = ["embedders", "chat"];
/// Task types that change which indexes exist or what their settings are: while one is
/// queued on a node, that index's settings are in flux and comparing them proves nothing.
const CHANGING_TYPES: &str = "indexCreation,indexUpdate,indexDeletion,indexSwap,settingsUpdate";
/// A settings update whose node tasks have not all finished by then is left to the sweep.
const CHECK_WAITS_AT_MOST: Duration = Duration::from_secs(60);
const INDEX_PAGE: usize = 1000;

struct Check {
    index: String,
    parts: Vec<(String, u64)>,
    since: Instant,
}

/// Indexes to check once their settings update finished on the nodes.
#[derive(Default)]
pub struct Checks {
    pending: std::sync::Mutex<Vec<Check>>,
    notify: Notify,
}

impl Checks {
    fn take(&self) -> Vec<Check> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn put_back(&self, mut checks: Vec<Check>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        checks.append(&mut pending);
        *pending = checks;
    }

    fn is_empty(&self) -> bool {
        self.pending.lock().map_or(true, |p| p.is_empty())
    }
}

/// After a settings broadcast: compare the index across nodes once every node task finished.
pub fn after_update(checks: &Checks, rt: &Runtime, inc: &Incoming, results: &[NodeResult]) {
    if !inc.route.starts_with("settings.") || !rt.config.settings_sync.enabled {
        return;
    }
    let Some(index) = &inc.index_uid else { return };
    let parts: Vec<(String, u64)> = rt
        .nodes
        .iter()
        .zip(results)
        .filter_map(|(n, r)| match r {
            Ok(resp) if resp.status == 202 => resp
                .json()
                .and_then(|v| v["taskUid"].as_u64())
                .map(|uid| (n.id.to_string(), uid)),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return;
    }
    checks
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Check {
            index: index.clone(),
            parts,
            since: Instant::now(),
        });
    checks.notify.notify_one();
}

/// What to do about one index, from each answering node's settings.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Every node agrees (or only one answered).
    Consistent,
    /// Patch each listed node with the settings it lacks (and `_miroir_shard` filterable).
    Repair(Vec<(String, Map<String, Value>)>),
    /// The nodes differ and no strict majority agrees, or only on settings Miroir cannot copy.
    Unresolved(String),
}

/// Settings as compared: `_miroir_shard` counts as filterable everywhere, so a node lacking
/// it is repaired without the others being outvoted over it.
fn normalized(settings: &Value) -> Value {
    let mut v = settings.clone();
    if let Some(list) = v.get_mut("filterableAttributes") {
        *list = hidden::with_shard_filterable(list);
    }
    v
}

/// Decides from `(node, settings)` pairs; pure.
pub fn plan(answers: &[(String, Value)]) -> Plan {
    if answers.len() < 2 {
        return Plan::Consistent;
    }
    let normal: Vec<Value> = answers.iter().map(|(_, v)| normalized(v)).collect();
    let target = match strict_majority(&normal) {
        Ok(target) => target,
        Err(sizes) => return Plan::Unresolved(no_majority(&sizes)),
    };
    let empty = Map::new();
    let target = target.as_object().unwrap_or(&empty);
    let mut patches = Vec::new();
    for (node, raw) in answers {
        let raw = raw.as_object().unwrap_or(&empty);
        let keys: BTreeSet<&String> = raw.keys().chain(target.keys()).collect();
        let mut patch = Map::new();
        for key in keys {
            let want = target.get(key).cloned().unwrap_or(Value::Null);
            if raw.get(key).unwrap_or(&Value::Null) == &want {
                continue;
            }
            if NOT_COPYABLE.contains(&key.as_str()) {
                return Plan::Unresolved(format!(
                    "node {node} differs on `{key}`, which Miroir cannot copy (its secrets are hidden)"
                ));
            }
            patch.insert(key.clone(), want);
        }
        if !patch.is_empty() {
            patches.push((node.clone(), patch));
        }
    }
    if patches.is_empty() {
        Plan::Consistent
    } else {
        Plan::Repair(patches)
    }
}

/// What the nodes are still changing: indexes with queued changes, or everything (a swap, or
/// a queue too long to read).
#[derive(Default)]
pub(crate) struct InFlux {
    everything: bool,
    indexes: HashSet<String>,
}

impl InFlux {
    pub(crate) fn contains(&self, index: &str) -> bool {
        self.everything || self.indexes.contains(index)
    }
}

pub(crate) async fn in_flux(cluster: &Cluster, rt: &Runtime, index: Option<&str>) -> InFlux {
    let mut path = format!("/tasks?statuses=enqueued,processing&types={CHANGING_TYPES}&limit=1000");
    if let Some(index) = index {
        path.push_str(&format!("&indexUids={index}"));
    }
    let reads = rt.nodes.iter().map(|n| {
        let path = path.as_str();
        async move {
            let req = NodeRequest::get(path, rt.node_key());
            cluster
                .client
                .send(n, &req, rt.config.scatter.node_timeout)
                .await
        }
    });
    let mut flux = InFlux::default();
    for resp in futures::future::join_all(reads).await.into_iter().flatten() {
        let Some(page) = resp.json().filter(|_| resp.status == 200) else {
            continue;
        };
        let results = page["results"].as_array().cloned().unwrap_or_default();
        if page["total"].as_u64().unwrap_or(0) > results.len() as u64 {
            flux.everything = true;
        }
        for task in results {
            match task["indexUid"].as_str() {
                Some(uid) => {
                    flux.indexes.insert(uid.to_owned());
                }
                None => flux.everything = true,
            }
        }
    }
    flux
}

async fn send_json(
    cluster: &Cluster,
    rt: &Runtime,
    target: &NodePeer,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let chunks = body.map(|b| [Bytes::from(b.to_string())]);
    let req = NodeRequest {
        method,
        path,
        auth: rt.node_key(),
        content_type: body.map(|_| "application/json"),
        body: chunks.as_ref().map_or(&[], |c| c.as_slice()),
        request_id: None,
        budget: None,
        relay: None,
    };
    let resp = cluster
        .client
        .send(target, &req, rt.config.scatter.node_timeout)
        .await
        .ok()?;
    Some((resp.status, resp.json().unwrap_or(Value::Null)))
}

/// The index's settings as each healthy node answers them, for [`plan`]. A node that is down
/// or still replaying writes it missed (settings among them) is judged once it caught up, not
/// against its own pending replays.
pub(crate) async fn read_settings(
    cluster: &Cluster,
    rt: &Runtime,
    index: &str,
) -> Vec<(String, Value)> {
    let path = format!("/indexes/{index}/settings");
    let reads = rt
        .nodes
        .iter()
        .filter(|n| cluster.is_healthy(&n.id))
        .map(|n| {
            let path = path.as_str();
            async move { (n, send_json(cluster, rt, n, "GET", path, None).await) }
        });
    let mut answers = Vec::new();
    for (n, read) in futures::future::join_all(reads).await {
        if let Some((200, settings)) = read {
            answers.push((n.id.to_string(), settings));
        }
    }
    answers
}

/// The drift detector, a Pingora background service.
pub struct SettingsSync {
    cluster: Arc<Cluster>,
    checks: Arc<Checks>,
    /// Indexes with drift left unrepaired at their last check.
    unresolved: std::sync::Mutex<HashSet<String>>,
}

impl SettingsSync {
    pub fn new(cluster: Arc<Cluster>, checks: Arc<Checks>) -> Self {
        Self {
            cluster,
            checks,
            unresolved: Default::default(),
        }
    }

    fn set_unresolved(&self, index: &str, unresolved: bool) {
        let mut set = self.unresolved.lock().unwrap_or_else(|e| e.into_inner());
        if unresolved {
            set.insert(index.to_owned());
        } else {
            set.remove(index);
        }
        metrics::get()
            .settings_drift_unresolved
            .set(set.len() as i64);
    }

    /// Compares one index's settings across the nodes that hold it and repairs the odd node.
    async fn check_index(&self, rt: &Runtime, index: &str) {
        let cluster = &self.cluster;
        let answers = read_settings(cluster, rt, index).await;
        match plan(&answers) {
            Plan::Consistent => self.set_unresolved(index, false),
            Plan::Unresolved(why) => {
                log::warn!(target: "miroir::settings_sync", "index `{index}`: settings drift left as is: {why}");
                self.set_unresolved(index, true);
            }
            Plan::Repair(patches) => {
                // A change queued since the reads makes them stale: the next check decides.
                if in_flux(cluster, rt, Some(index)).await.contains(index) {
                    return;
                }
                let path = format!("/indexes/{index}/settings");
                let mut all_ok = true;
                for (node_id, patch) in patches {
                    let Some(target) = rt.node(&node_id) else {
                        continue;
                    };
                    let keys: Vec<&str> = patch.keys().map(String::as_str).collect();
                    let keys = keys.join(", ");
                    let body = Value::Object(patch);
                    match send_json(cluster, rt, target, "PATCH", &path, Some(&body)).await {
                        Some((202, _)) => {
                            metrics::get().settings_drift_repaired.inc();
                            log::info!(target: "miroir::settings_sync", "index `{index}`: node {node_id} had different {keys}; patched it to the majority's");
                        }
                        answer => {
                            all_ok = false;
                            let status = answer.map_or(0, |(s, _)| s);
                            log::warn!(target: "miroir::settings_sync", "index `{index}`: could not repair {keys} on node {node_id} (HTTP {status})");
                        }
                    }
                }
                cluster.indexes.forget_context(index);
                self.set_unresolved(index, !all_ok);
            }
        }
    }

    /// Every index any node holds, with the nodes holding it.
    async fn all_indexes(&self, rt: &Runtime) -> Option<BTreeMap<String, usize>> {
        let cluster = &self.cluster;
        let lists = rt.nodes.iter().map(|n| async move {
            let mut uids = Vec::new();
            let mut offset = 0;
            loop {
                let path = format!("/indexes?limit={INDEX_PAGE}&offset={offset}");
                let (200, page) = send_json(cluster, rt, n, "GET", &path, None).await? else {
                    return None;
                };
                let results = page["results"].as_array().cloned().unwrap_or_default();
                uids.extend(
                    results
                        .iter()
                        .filter_map(|i| i["uid"].as_str().map(str::to_owned)),
                );
                offset += INDEX_PAGE;
                if results.len() < INDEX_PAGE {
                    return Some(uids);
                }
            }
        });
        let lists: Vec<Vec<String>> = futures::future::join_all(lists)
            .await
            .into_iter()
            .flatten()
            .collect();
        if lists.is_empty() {
            return None;
        }
        let answered = lists.len();
        let mut holders: BTreeMap<String, usize> = BTreeMap::new();
        for uid in lists.into_iter().flatten() {
            *holders.entry(uid).or_default() += 1;
        }
        let diverged: Vec<&str> = holders
            .iter()
            .filter(|(_, n)| **n < answered)
            .map(|(uid, _)| uid.as_str())
            .collect();
        metrics::get().indexes_diverged.set(diverged.len() as i64);
        if !diverged.is_empty() {
            log::warn!(target: "miroir::settings_sync", "indexes present on some nodes only: {}", diverged.join(", "));
        }
        Some(holders)
    }

    /// Checks every index not in flux.
    async fn sweep(&self, rt: &Runtime) {
        let flux = in_flux(&self.cluster, rt, None).await;
        let Some(indexes) = self.all_indexes(rt).await else {
            return;
        };
        self.unresolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i| indexes.contains_key(i));
        for index in indexes.keys() {
            if !flux.contains(index) {
                self.check_index(rt, index).await;
            }
        }
    }

    /// Checks the indexes whose settings update finished on every node.
    async fn run_checks(&self, rt: &Runtime) {
        let mut left = Vec::new();
        for check in self.checks.take() {
            let states = check.parts.iter().map(|(node_id, uid)| async move {
                match rt.node(node_id) {
                    Some(n) => !matches!(
                        task_state(&self.cluster, rt, n, *uid).await,
                        TaskState::Pending | TaskState::Unknown
                    ),
                    None => true,
                }
            });
            let done = futures::future::join_all(states)
                .await
                .into_iter()
                .all(|d| d);
            if !done {
                if check.since.elapsed() < CHECK_WAITS_AT_MOST {
                    left.push(check);
                }
                continue;
            }
            let flux = in_flux(&self.cluster, rt, Some(&check.index)).await;
            if flux.contains(&check.index) {
                // Another change is queued; the check after it (or the sweep) will look.
                continue;
            }
            self.check_index(rt, &check.index).await;
        }
        self.checks.put_back(left);
    }
}

#[async_trait]
impl BackgroundService for SettingsSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_sweep = Instant::now() + self.cluster.runtime().config.settings_sync.interval;
        loop {
            let rt = self.cluster.runtime();
            let cfg = rt.config.settings_sync.clone();
            if cfg.enabled {
                self.run_checks(&rt).await;
                if Instant::now() >= next_sweep {
                    // One Miroir at a time sweeps the fleet (several sharing a Redis).
                    if let Some(_lease) =
                        JobLease::take(&self.cluster.hints, "settings-sweep").await
                    {
                        self.sweep(&rt).await;
                    }
                    next_sweep = Instant::now() + cfg.interval;
                }
            } else {
                self.checks.take();
                next_sweep = Instant::now() + cfg.interval;
            }
            let until_sweep = next_sweep.saturating_duration_since(Instant::now());
            let pause = if self.checks.is_empty() {
                until_sweep
            } else {
                until_sweep.min(Duration::from_millis(50))
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.checks.notify.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(filterable: Value, ranking: Value) -> Value {
        json!({"filterableAttributes": filterable, "rankingRules": ranking, "embedders": {}})
    }

    #[test]
    fn the_odd_node_out_gets_only_what_differs_with_the_shard_field_kept() {
        let good = settings(json!(["genre", "_miroir_shard"]), json!(["words"]));
        let odd = settings(json!(["_miroir_shard"]), json!(["words"]));
        let answers = vec![
            ("n0".to_owned(), good.clone()),
            ("n1".to_owned(), odd),
            ("n2".to_owned(), good),
        ];
        let Plan::Repair(patches) = plan(&answers) else {
            panic!("expected a repair")
        };
        assert_eq!(patches.len(), 1);
        assert_eq!(patches[0].0, "n1");
        assert_eq!(
            Value::Object(patches[0].1.clone()),
            json!({"filterableAttributes": ["genre", "_miroir_shard"]})
        );
    }

    #[test]
    fn a_node_missing_only_the_shard_field_is_repaired_not_outvoted() {
        let with = settings(json!(["a", "_miroir_shard"]), json!(["words"]));
        let without = settings(json!(["a"]), json!(["words"]));
        let answers = vec![("n0".to_owned(), with), ("n1".to_owned(), without)];
        let Plan::Repair(patches) = plan(&answers) else {
            panic!("expected a repair")
        };
        assert_eq!(patches[0].0, "n1");
        assert_eq!(
            patches[0].1["filterableAttributes"],
            json!(["a", "_miroir_shard"])
        );
    }

    #[test]
    fn a_tie_or_hidden_secrets_are_reported_not_repaired() {
        let a = settings(json!(["_miroir_shard"]), json!(["words"]));
        let b = settings(json!(["_miroir_shard"]), json!(["typo"]));
        let tie = vec![("n0".to_owned(), a.clone()), ("n1".to_owned(), b.clone())];
        assert!(matches!(plan(&tie), Plan::Unresolved(_)));
        let mut secret = a.clone();
        secret["embedders"] = json!({"e": {"source": "openAi", "apiKey": "XXX..."}});
        let answers = vec![
            ("n0".to_owned(), a.clone()),
            ("n1".to_owned(), a.clone()),
            ("n2".to_owned(), secret),
        ];
        assert!(matches!(plan(&answers), Plan::Unresolved(m) if m.contains("embedders")));
        let same = vec![("n0".to_owned(), a.clone()), ("n1".to_owned(), a)];
        assert_eq!(plan(&same), Plan::Consistent);
    }
}
