//! The admin API under `/_miroir/`, gated by its own key (bearer, `X-Admin-Key`, or HTTP
//! Basic credentials for the admin page); a Meilisearch key never opens it.

use miroir_filters::error::{Code, MiroirError};
use miroir_filters::routing::{GroupId, ShardId};
use pingora_proxy::Session;
use serde_json::{json, Value};

use base64::Engine;

use super::ui;
use crate::auth;
use crate::cluster::{topology, Cluster, Runtime};
use crate::fleet;
use crate::request::Reply;
use crate::shared::Shared;

/// The admin key a request presents: `X-Admin-Key`, a bearer token, or the password of HTTP
/// Basic credentials (what a browser sends for the admin page).
fn presented_key(session: &Session) -> Option<String> {
    if let Some(key) = session
        .get_header("X-Admin-Key")
        .and_then(|v| v.to_str().ok())
    {
        return Some(key.to_owned());
    }
    let header = session
        .get_header(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if let Some(token) = auth::bearer(header) {
        return Some(token.to_owned());
    }
    let value = std::str::from_utf8(header?).ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    pair.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Checks the request's admin key.
pub fn authorize(session: &Session, rt: &Runtime) -> Result<(), MiroirError> {
    let Some(expected) = rt.config.admin.api_key.as_ref() else {
        return Err(MiroirError::new(
            Code::AdminDisabled,
            "The admin API is disabled: set `admin.api_key` (or MIROIR_ADMIN_API_KEY) to enable it.",
        ));
    };
    let presented = presented_key(session);
    if !presented.is_some_and(|p| auth::constant_time_eq(&p, expected.expose())) {
        return Err(MiroirError::new(
            Code::InvalidAdminKey,
            "The admin key is missing or invalid.",
        ));
    }
    Ok(())
}

/// The answer to an admin request.
pub async fn handle(
    session: &Session,
    shared: &Shared,
    rt: &Runtime,
    path: &str,
) -> Result<Reply, MiroirError> {
    let cluster = &shared.cluster;
    let method = session.req_header().method.as_str();
    let path = path.trim_end_matches('/');
    let page = method == "GET" && path == "/_miroir/ui";
    if let Err(refused) = authorize(session, rt) {
        if page && refused.code == Code::InvalidAdminKey {
            // A browser asks for the key (any user name, the admin key as password).
            return Ok(Reply::error(&refused).with_status(401).with_header(
                "WWW-Authenticate",
                "Basic realm=\"Miroir admin\"".to_owned(),
            ));
        }
        return Err(refused);
    }
    let json = |v: Value| Ok(Reply::raw(200, v.to_string().into_bytes()));
    let accepted = |v: Value| Reply::raw(202, v.to_string().into_bytes());
    match (method, path) {
        ("GET", "/_miroir/topology") => json(topology(cluster, rt)),
        ("GET", "/_miroir/ui") => Ok(ui::page(shared, rt, &topology(cluster, rt)).await),
        ("POST", "/_miroir/topology/plan") => json(fleet::plan(cluster, rt).await?),
        ("POST", "/_miroir/topology/apply") => fleet::apply(cluster, rt).await.map(accepted),
        ("POST", p) if p.starts_with("/_miroir/nodes/") && p.ends_with("/resync") => {
            let node = &p["/_miroir/nodes/".len()..p.len() - "/resync".len()];
            fleet::resync(cluster, rt, node).await.map(accepted)
        }
        ("POST", p) if p.starts_with("/_miroir/nodes/") && p.ends_with("/drain") => {
            let node = &p["/_miroir/nodes/".len()..p.len() - "/drain".len()];
            fleet::drain(cluster, rt, node).await.map(accepted)
        }
        _ => Err(MiroirError::new(
            Code::NotImplemented,
            format!("`{method} {path}` is not an admin route of this version of Miroir."),
        )),
    }
}

/// Nodes, groups, health and the shard -> node assignment.
pub fn topology(cluster: &Cluster, rt: &Runtime) -> Value {
    let p = rt.reads();
    let nodes: Vec<Value> = rt
        .nodes
        .iter()
        .map(|n| {
            let health = cluster.health(&n.id);
            let state = cluster.node_state(&n.id);
            let backlog = cluster.hints.backlog(n.id.as_str());
            let shards: Vec<u32> = p
                .index_of(n.id.as_str())
                .map(|i| p.shards_of(i).iter().map(|s| s.0).collect())
                .unwrap_or_default();
            json!({
                "id": n.id.as_ref(),
                "address": n.addr.to_string(),
                "replicaGroup": n.group,
                "status": state.as_str(),
                "servesReads": state.serves_reads(),
                "lastChangeMs": health.as_ref().map(|h| h.last_change_ms()),
                "consecutiveFailures": health.as_ref().map(|h| h.consecutive_failures()),
                "pendingHints": backlog.hints,
                "pendingHintBytes": backlog.bytes,
                "needsResync": backlog.needs_resync,
                "shards": shards,
            })
        })
        .collect();
    let groups: Vec<Value> = (0..p.groups())
        .map(|g| {
            let assignment: serde_json::Map<String, Value> = (0..p.shards())
                .map(|s| {
                    let replicas: Vec<&str> = p
                        .replicas(GroupId(g), ShardId(s))
                        .iter()
                        .map(|&i| p.node(i).as_str())
                        .collect();
                    (s.to_string(), json!(replicas))
                })
                .collect();
            json!({ "id": g, "shards": assignment })
        })
        .collect();
    let in_use = cluster.shard_counts.widest();
    let unavailable: Vec<u32> = cluster
        .unavailable_shards(rt, in_use)
        .iter()
        .map(|s| s.0)
        .collect();
    let (unlisted, listed) = cluster.shard_counts.snapshot();
    let index_shards: serde_json::Map<String, Value> =
        listed.into_iter().map(|(uid, s)| (uid, json!(s))).collect();
    let applied = cluster.topology();
    let staged = topology::staged(&rt.config, &applied).map(|l| json!(l));
    let progress = fleet::status(cluster);
    json!({
        "layoutVersion": applied.layout.version,
        "staged": staged,
        "change": progress["change"],
        "shards": p.shards(),
        "newIndexShards": rt.new_index_shards(),
        "indexShards": index_shards,
        "unlistedIndexShards": unlisted,
        "replicationFactor": rt.reads().replication_factor(),
        "replicaGroups": p.groups(),
        "configGeneration": rt.generation,
        "fullyCovered": unavailable.is_empty(),
        "unavailableShards": unavailable,
        "nodes": nodes,
        "groups": groups,
        "antiEntropy": crate::repair::anti_entropy::status::get().snapshot(),
    })
}
