//! `miroir ctl`: the operator's client of the admin API (`/_miroir/`), and the importer of
//! an existing Meilisearch node (`import`). It finds Miroir and its keys from `--url`,
//! `--admin-key`, `--master-key`, from the environment (`MIROIR_URL`, `MIROIR_ADMIN_API_KEY`,
//! `MIROIR_MASTER_KEY`), or from the configuration file (`--config`).

mod alias;
mod import;
mod reshard;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::upstream::{NodeClient, NodePeer, NodeRequest};

/// What `miroir ctl` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Status,
    Plan,
    Apply,
    Drain(String),
    Resync(String),
    Watch,
    /// List, show, create, repoint or delete index aliases.
    Alias(alias::Command),
    /// Change an index's shard count online, follow, roll back or finish it.
    Reshard(reshard::Command),
    /// Copy a Meilisearch node's indexes, documents and keys into the fleet.
    Import {
        from: ImportFrom,
        state: Option<PathBuf>,
    },
}

/// What an import reads.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportFrom {
    /// A live node and its key.
    Node { url: String, key: Option<String> },
    /// A dump file a node wrote.
    Dump(PathBuf),
}

/// Where Miroir is and how to authenticate.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct Target {
    pub url: Option<String>,
    pub admin_key: Option<String>,
    pub master_key: Option<String>,
    pub config: Option<std::path::PathBuf>,
}

pub const USAGE: &str = "\
miroir ctl [--config FILE | --url URL] [--admin-key KEY] [--master-key KEY] <command>

    status        nodes, their states and shards, the change in progress, hints pending
    plan          what applying the configuration's topology would move
    apply         start that change (one at a time; writes and searches go on)
    drain NODE    move every shard off NODE, then remove it from the file
    resync NODE   rebuild NODE shard by shard from the other copies
    watch         follow the change in progress, a progress bar per shard move
    alias list | get NAME | create NAME INDEX[,INDEX...] | repoint NAME INDEX[,INDEX...] | delete NAME
                  index aliases (several indexes: searches merged, writes refused)
    reshard INDEX --shards N [--wait] | reshard status | reshard rollback INDEX | reshard finish INDEX
                  change an index's shard count online; the old layout is kept up to date
                  for a rollback for topology.reshard_keep_secs, then dropped (or at finish)
    import --from URL [--key KEY] [--state FILE]
                  copy a Meilisearch node's indexes, settings, documents and keys into the
                  fleet; resumable (progress kept in FILE), counts verified at the end
    import --dump FILE [--state FILE]
                  the same from a dump a Meilisearch 1.x node wrote (POST /dumps)

The URL defaults to MIROIR_URL, else the configuration's listener, else http://127.0.0.1:7700;
the admin key to MIROIR_ADMIN_API_KEY, else the configuration's admin.api_key; the master key
(for import) to MIROIR_MASTER_KEY, else the configuration's master_key.
";

pub fn parse(args: &[&str]) -> Result<(Target, Action), String> {
    let mut target = Target::default();
    let mut it = args.iter().copied();
    let mut action = None;
    while let Some(arg) = it.next() {
        match arg {
            "--url" => target.url = Some(it.next().ok_or("--url needs a value")?.to_owned()),
            "--admin-key" => {
                target.admin_key = Some(it.next().ok_or("--admin-key needs a value")?.to_owned())
            }
            "--master-key" => {
                target.master_key = Some(it.next().ok_or("--master-key needs a value")?.to_owned())
            }
            "-c" | "--config" => {
                target.config = Some(it.next().ok_or("--config needs a file")?.into())
            }
            "resync" => {
                action = Some(Action::Resync(
                    it.next().ok_or("resync needs a node id")?.to_owned(),
                ))
            }
            "import" => {
                let (mut from, mut key, mut state, mut dump) = (None, None, None, None);
                while let Some(arg) = it.next() {
                    match arg {
                        "--from" => from = Some(it.next().ok_or("--from needs a URL")?.to_owned()),
                        "--dump" => dump = Some(it.next().ok_or("--dump needs a file")?.into()),
                        "--key" => key = Some(it.next().ok_or("--key needs a value")?.to_owned()),
                        "--state" => state = Some(it.next().ok_or("--state needs a file")?.into()),
                        other => return Err(format!("import: unknown argument `{other}`")),
                    }
                }
                let from = match (from, dump) {
                    (Some(url), None) => ImportFrom::Node { url, key },
                    (None, Some(path)) if key.is_none() => ImportFrom::Dump(path),
                    (None, Some(_)) => return Err("import --dump takes no --key".into()),
                    _ => return Err("import needs --from URL or --dump FILE".into()),
                };
                action = Some(Action::Import { from, state });
            }
            "alias" => action = Some(Action::Alias(alias::parse(&mut it)?)),
            "reshard" => action = Some(Action::Reshard(reshard::parse(&mut it)?)),
            "status" => action = Some(Action::Status),
            "plan" => action = Some(Action::Plan),
            "apply" => action = Some(Action::Apply),
            "watch" => action = Some(Action::Watch),
            "drain" => {
                action = Some(Action::Drain(
                    it.next().ok_or("drain needs a node id")?.to_owned(),
                ))
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((target, action.ok_or("missing command")?))
}

/// Runs `action` and returns the process exit code.
pub fn run(target: Target, action: Action) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("miroir ctl: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        match Client::new(target) {
            Ok(client) => match execute(&client, action).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("miroir ctl: {e}");
                    1
                }
            },
            Err(e) => {
                eprintln!("miroir ctl: {e}");
                2
            }
        }
    })
}

/// One HTTP service ctl talks to (Miroir, or the node an import reads), with its key.
pub struct Endpoint {
    peer: NodePeer,
    key: Option<String>,
    http: NodeClient,
}

impl Endpoint {
    fn new(url: &str, key: Option<String>) -> Result<Self, String> {
        let node = miroir_conf::resolve_node("endpoint", url, 0, &miroir_conf::system_resolve)
            .map_err(|e| format!("{url}: {e}"))?;
        let upstream = miroir_conf::Upstream {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            pool_size: 4,
        };
        Ok(Self {
            peer: NodePeer::new(&node, &upstream),
            key,
            http: NodeClient::new(4),
        })
    }

    /// A JSON request; a 2xx answer's JSON, else the error's message.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let chunks: Vec<Bytes> = body
            .map(|b| Bytes::from(b.to_string()))
            .into_iter()
            .collect();
        let req = NodeRequest::json(method, path, self.key.as_deref(), &chunks);
        let resp = self
            .http
            .send(&self.peer, &req, Duration::from_secs(300))
            .await
            .map_err(|e| format!("{} did not answer: {e}", self.peer.host_header))?;
        let value: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        match resp.status {
            200..=299 => Ok(value),
            status => Err(format!(
                "{status} {}: {}",
                value["code"].as_str().unwrap_or(""),
                value["message"].as_str().unwrap_or("(no message)")
            )),
        }
    }
}

/// Miroir, for the admin API and for imports.
struct Client {
    admin: Endpoint,
    url: String,
    master_key: Option<String>,
}

impl Client {
    fn new(target: Target) -> Result<Self, String> {
        let config = match &target.config {
            Some(path) => Some(miroir_conf::load(path).map_err(|e| e.to_string())?),
            None => None,
        };
        let url = target
            .url
            .or_else(|| std::env::var("MIROIR_URL").ok())
            .or_else(|| {
                config.as_ref().map(|c| {
                    let listen = c.server.listen;
                    let host = match listen.ip().is_unspecified() {
                        true => "127.0.0.1".to_owned(),
                        false => listen.ip().to_string(),
                    };
                    format!("http://{host}:{}", listen.port())
                })
            })
            .unwrap_or_else(|| "http://127.0.0.1:7700".to_owned());
        let admin_key = target
            .admin_key
            .or_else(|| std::env::var(miroir_conf::ENV_ADMIN_API_KEY).ok())
            .or_else(|| {
                config
                    .as_ref()
                    .and_then(|c| c.admin.api_key.as_ref().map(|k| k.expose().to_owned()))
            });
        let master_key = target
            .master_key
            .or_else(|| std::env::var(miroir_conf::ENV_MASTER_KEY).ok())
            .or_else(|| {
                config
                    .as_ref()
                    .and_then(|c| c.master_key.as_ref().map(|k| k.expose().to_owned()))
            });
        Ok(Self {
            admin: Endpoint::new(&url, admin_key)?,
            url,
            master_key,
        })
    }

    async fn call(&self, method: &str, path: &str) -> Result<Value, String> {
        self.admin.call(method, path, None).await
    }
}

async fn execute(client: &Client, action: Action) -> Result<(), String> {
    match action {
        Action::Status => print_status(&client.call("GET", "/_miroir/topology").await?),
        Action::Plan => print_plan(&client.call("POST", "/_miroir/topology/plan").await?),
        Action::Apply => {
            client.call("POST", "/_miroir/topology/apply").await?;
            println!("change started; follow it with `miroir ctl watch`");
        }
        Action::Drain(node) => {
            client
                .call("POST", &format!("/_miroir/nodes/{node}/drain"))
                .await?;
            println!(
                "draining {node}; follow it with `miroir ctl watch`, then remove it from the file"
            );
        }
        Action::Resync(node) => {
            client
                .call("POST", &format!("/_miroir/nodes/{node}/resync"))
                .await?;
            println!("rebuilding {node}; follow it with `miroir ctl watch`");
        }
        Action::Watch => watch(client).await?,
        Action::Alias(command) => alias::run(&client.admin, command).await?,
        Action::Reshard(command) => reshard::run(&client.admin, command).await?,
        Action::Import { from, state } => {
            let (source, name) = match from {
                ImportFrom::Node { url, key } => (
                    import::Source::Node(Box::new(Endpoint::new(&url, key)?)),
                    url,
                ),
                ImportFrom::Dump(path) => {
                    let name = path.display().to_string();
                    let dump = tokio::task::spawn_blocking(move || import::Dump::open(&path))
                        .await
                        .map_err(|e| e.to_string())??;
                    (import::Source::Dump(dump), name)
                }
            };
            let miroir = Endpoint::new(&client.url, client.master_key.clone())?;
            let state = state.unwrap_or_else(|| import::default_state_file(&name));
            import::run(&source, &miroir, &state).await?;
        }
    }
    Ok(())
}

fn print_anti_entropy(a: &Value) {
    if a.is_null() {
        return;
    }
    let r = &a["repaired"];
    let last = match a["lastPassDurationMs"].as_u64() {
        Some(ms) => format!("last pass took {:.1} s", ms as f64 / 1000.0),
        None => "no pass finished yet".to_owned(),
    };
    println!(
        "anti-entropy: {} pass(es), {last}; {} documents read; repaired {} missing, {} extra, {} different; {} unresolved",
        a["passes"], a["documentsRead"], r["missing"], r["extra"], r["different"], a["unresolved"]
    );
    for set in ["keys", "indexes"] {
        let s = &a[set];
        println!(
            "anti-entropy of {set}: repaired {} missing, {} extra, {} different; {} unresolved",
            s["missing"], s["extra"], s["different"], s["unresolved"]
        );
    }
}

fn print_status(t: &Value) {
    println!(
        "topology version {} · {} shard slots · replication factor {} · {} replica group(s)",
        t["layoutVersion"], t["shards"], t["replicationFactor"], t["replicaGroups"]
    );
    let per_index: Vec<String> = t["indexShards"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(uid, s)| format!("{uid} {s}"))
        .collect();
    println!(
        "shards per index: new indexes {}, others {}{}{}",
        t["newIndexShards"],
        t["unlistedIndexShards"],
        if per_index.is_empty() { "" } else { "; " },
        per_index.join(", ")
    );
    println!(
        "{:<16} {:<6} {:<11} {:>7} {:>9}  address",
        "node", "group", "state", "shards", "hints"
    );
    for n in t["nodes"].as_array().into_iter().flatten() {
        println!(
            "{:<16} {:<6} {:<11} {:>7} {:>9}  {}",
            n["id"].as_str().unwrap_or("?"),
            n["replicaGroup"],
            n["status"].as_str().unwrap_or("?"),
            n["shards"].as_array().map_or(0, Vec::len),
            n["pendingHints"],
            n["address"].as_str().unwrap_or("?"),
        );
    }
    if !t["staged"].is_null() {
        println!("the configuration asks for another topology: `miroir ctl plan` shows it");
    }
    print_anti_entropy(&t["antiEntropy"]);
    match t["change"].as_object() {
        None => println!("no change in progress"),
        Some(c) => println!(
            "change to version {}: {} ({}/{} shard moves done) {}",
            c["toVersion"],
            c["phase"].as_str().unwrap_or("?"),
            c["shardMovesDone"],
            c["shardMoves"],
            c["step"].as_str().unwrap_or("")
        ),
    }
}

fn print_plan(p: &Value) {
    if p["shardMoves"] == 0 && p["staged"] == false {
        println!("nothing to apply: the configuration's topology is the applied one");
        return;
    }
    println!(
        "{} shard move(s), {} document(s) to copy",
        p["shardMoves"], p["documentsToCopy"]
    );
    for (title, key) in [("receive", "receive"), ("drop", "drop")] {
        for (node, v) in p[key].as_object().into_iter().flatten() {
            println!(
                "  {node:<16} {title} {} shard(s), {} document(s)",
                v["shards"], v["documents"]
            );
        }
    }
    for (title, key) in [
        ("joining", "joining"),
        ("rebuilt (new address)", "rebuilding"),
    ] {
        if let Some(ids) = p[key].as_array().filter(|j| !j.is_empty()) {
            let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
            println!("  {title}: {}", ids.join(", "));
        }
    }
    println!("run `miroir ctl apply` to start it");
}

/// A bar per shard move until the change is done.
async fn watch(client: &Client) -> Result<(), String> {
    let bars = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{prefix:<28} {bar:30} {pos:>9}/{len:<9} eta {eta:<5} {msg}")
            .map_err(|e| e.to_string())?;
    let mut shown: std::collections::BTreeMap<String, ProgressBar> = Default::default();
    loop {
        let t = client.call("GET", "/_miroir/topology").await?;
        let Some(change) = t["change"].as_object() else {
            for bar in shown.values() {
                bar.finish();
            }
            println!(
                "no change in progress (topology version {})",
                t["layoutVersion"]
            );
            return Ok(());
        };
        for m in change["moves"].as_array().into_iter().flatten() {
            let name = format!(
                "shard {} -> {}",
                m["shard"],
                m["to"].as_str().unwrap_or("?")
            );
            let bar = shown.entry(name.clone()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new(0));
                bar.set_style(style.clone());
                bar.set_prefix(name);
                bar
            });
            let p = &m["progress"];
            bar.set_length(p["documentsExpected"].as_u64().unwrap_or(0));
            bar.set_position(p["documentsCopied"].as_u64().unwrap_or(0));
            bar.set_message(format!(
                "{} {} docs/s",
                m["state"].as_str().unwrap_or("?"),
                p["documentsPerSecond"]
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
