//! The admin page, `GET /_miroir/ui`: one HTML page rendered by Miroir from what it knows
//! (the topology answer, each node's document count, the task registry, the configuration
//! with its secrets masked), embedded in the binary and behind the admin key. It refreshes
//! itself every few seconds; it needs no script and loads nothing else.

use std::fmt::Write;
use std::time::Duration;

use miroir_tasks::TaskQuery;
use serde_json::Value;

use crate::cluster::Runtime;
use crate::request::Reply;
use crate::shared::Shared;
use crate::upstream::NodeRequest;

/// Seconds between the page's refreshes.
const REFRESH_S: u32 = 2;
/// Tasks listed.
const RECENT_TASKS: usize = 15;
/// How long a node's `/stats` may take before the page shows it as unknown.
const STATS_TIMEOUT: Duration = Duration::from_millis(800);

const STYLE: &str = include_str!("ui.css");

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as display text (strings without quotes).
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Each node's documents (every index), asked with Miroir's own key; `None` when it did not
/// answer in time.
async fn documents_per_node(shared: &Shared, rt: &Runtime) -> Vec<Option<u64>> {
    let asks = rt.nodes.iter().map(|node| async move {
        let req = NodeRequest::get("/stats", rt.node_key());
        let resp = shared
            .cluster
            .client
            .send(node, &req, STATS_TIMEOUT)
            .await
            .ok()
            .filter(|r| r.status == 200)?;
        let stats = resp.json()?;
        let indexes = stats["indexes"].as_object()?;
        Some(
            indexes
                .values()
                .filter_map(|i| i["numberOfDocuments"].as_u64())
                .sum(),
        )
    });
    futures::future::join_all(asks).await
}

/// The page.
pub async fn page(shared: &Shared, rt: &Runtime, topology: &Value) -> Reply {
    let documents = documents_per_node(shared, rt).await;
    let query = TaskQuery {
        limit: RECENT_TASKS,
        ..TaskQuery::default()
    };
    let tasks = crate::tasks::registry::blocking(&shared.tasks, move |s| {
        s.list(&query, &Default::default())
    })
    .await;

    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <title>Miroir</title><style>{STYLE}</style></head><body>\
         <header><h1>Miroir</h1><span id=\"summary\">layout version {} &middot; {} shards \
         &middot; replication factor {} &middot; {} replica group(s) &middot; \
         <span id=\"coverage\" class=\"{}\">{}</span></span></header>",
        text(&topology["layoutVersion"]),
        text(&topology["shards"]),
        text(&topology["replicationFactor"]),
        text(&topology["replicaGroups"]),
        if topology["fullyCovered"] == true {
            "ok"
        } else {
            "bad"
        },
        if topology["fullyCovered"] == true {
            "every shard served".to_owned()
        } else {
            format!(
                "unavailable shards: {}",
                text(&topology["unavailableShards"])
            )
        },
    );
    nodes_section(&mut html, topology, &documents);
    change_section(&mut html, topology);
    tasks_section(&mut html, tasks);
    // The configuration's Debug form masks every secret (`***`).
    let _ = write!(
        html,
        "<section id=\"config\"><h2>Configuration (generation {})</h2><pre>{}</pre></section>\
         </body></html>",
        text(&topology["configGeneration"]),
        esc(&format!("{:#?}", rt.config))
    );
    Reply::raw(200, html.into_bytes())
        .with_header("Content-Type", "text/html; charset=utf-8".to_owned())
        .with_header("Cache-Control", "no-store".to_owned())
}

fn nodes_section(html: &mut String, topology: &Value, documents: &[Option<u64>]) {
    html.push_str(
        "<section id=\"nodes\"><h2>Nodes</h2><table><thead><tr><th>node</th><th>address</th>\
         <th>group</th><th>state</th><th>reads</th><th>shards</th><th>documents</th>\
         <th>hints pending</th></tr></thead><tbody>",
    );
    let nodes = topology["nodes"].as_array().map_or(&[][..], Vec::as_slice);
    for (node, docs) in nodes.iter().zip(documents) {
        let state = text(&node["status"]);
        let shards: Vec<String> = node["shards"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s.to_string())
            .collect();
        let resync = if node["needsResync"] == true {
            " <em>needs resync</em>"
        } else {
            ""
        };
        let _ = write!(
            html,
            "<tr class=\"node\" data-node=\"{id}\" data-state=\"{state}\"><td class=\"id\">{id}</td>\
             <td>{addr}</td><td class=\"group\">{group}</td>\
             <td class=\"state state-{state}\">{state}{resync}</td><td>{reads}</td>\
             <td class=\"shards\" title=\"{list}\">{count}: {list}</td><td class=\"documents\">{docs}</td>\
             <td class=\"hints\">{hints} ({bytes} bytes)</td></tr>",
            id = esc(&text(&node["id"])),
            addr = esc(&text(&node["address"])),
            group = text(&node["replicaGroup"]),
            state = esc(&state),
            reads = if node["servesReads"] == true { "yes" } else { "no" },
            count = shards.len(),
            list = shards.join(" "),
            docs = docs.map_or_else(|| "?".to_owned(), |d| d.to_string()),
            hints = text(&node["pendingHints"]),
            bytes = text(&node["pendingHintBytes"]),
        );
    }
    html.push_str("</tbody></table></section>");
}

fn change_section(html: &mut String, topology: &Value) {
    html.push_str("<section id=\"change\"><h2>Topology change</h2>");
    let change = &topology["change"];
    if change.is_null() {
        let staged = if topology["staged"].is_null() {
            "none in progress"
        } else {
            "none in progress; the file's topology differs (staged): `miroir ctl plan`"
        };
        let _ = write!(html, "<p class=\"idle\">{staged}</p></section>");
        return;
    }
    let _ = write!(
        html,
        "<p>to version {} &middot; phase <b>{}</b> &middot; step {} &middot; {} of {} shard \
         moves done</p><table><thead><tr><th>group</th><th>shard</th><th>from</th><th>to</th>\
         <th>state</th><th>progress</th></tr></thead><tbody>",
        text(&change["toVersion"]),
        esc(&text(&change["phase"])),
        esc(&text(&change["step"])),
        text(&change["shardMovesDone"]),
        text(&change["shardMoves"]),
    );
    for m in change["moves"].as_array().into_iter().flatten() {
        let copied = m["progress"]["documentsCopied"].as_u64().unwrap_or(0);
        let expected = m["progress"]["documentsExpected"].as_u64().unwrap_or(0);
        let done = m["state"] == "cutOver";
        let (value, max) = if done {
            (1, 1)
        } else {
            (
                copied.min(expected.max(copied)),
                expected.max(copied).max(1),
            )
        };
        let _ = write!(
            html,
            "<tr class=\"move\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><progress value=\"{value}\" max=\"{max}\"></progress> {copied} / {expected} \
             documents, {}/s</td></tr>",
            text(&m["group"]),
            text(&m["shard"]),
            esc(&text(&m["from"])),
            esc(&text(&m["to"])),
            esc(&text(&m["state"])),
            text(&m["progress"]["documentsPerSecond"]),
        );
    }
    html.push_str("</tbody></table></section>");
}

fn tasks_section(
    html: &mut String,
    tasks: Result<miroir_tasks::Page, miroir_filters::error::MiroirError>,
) {
    html.push_str("<section id=\"tasks\"><h2>Recent tasks</h2>");
    let page = match tasks {
        Ok(page) => page,
        Err(e) => {
            let _ = write!(html, "<p class=\"bad\">{}</p></section>", esc(&e.message));
            return;
        }
    };
    let _ = write!(
        html,
        "<p>{} tasks in the registry</p><table><thead><tr><th>uid</th><th>type</th>\
         <th>index</th><th>status</th><th>enqueued at</th></tr></thead><tbody>",
        page.total
    );
    for t in &page.results {
        let status = t
            .terminal
            .as_ref()
            .map_or_else(|| "in progress".to_owned(), |v| text(&v["status"]));
        let _ = write!(
            html,
            "<tr class=\"task\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.uid.0,
            esc(&t.kind),
            esc(t.index_uid.as_deref().unwrap_or("-")),
            esc(&status),
            esc(&t.enqueued_at),
        );
    }
    html.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
