//! `miroir-demo`: Miroir on 127.0.0.1:7700 in front of three embedded simulated Meilisearch
//! nodes (the project's test double), so Miroir can be tried without installing Meilisearch.
//! A binary of its own, so the production `miroir` binary does not contain the simulator.

use std::time::Duration;

use meili_sim::{SimConfig, SimNode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEMO_MASTER_KEY: &str = "masterKey";

const USAGE: &str = "\
miroir-demo: Miroir in front of simulated Meilisearch nodes (test doubles, in memory)

USAGE:
    miroir-demo [--port <PORT>] [--nodes <N>]   Miroir on 127.0.0.1:PORT (7700) in front of N (3) nodes
";

struct DemoOptions {
    port: u16,
    nodes: usize,
}

fn parse(args: &[String]) -> Result<Option<DemoOptions>, String> {
    let (mut port, mut nodes) = (7700u16, 3usize);
    let mut it = args.iter().map(String::as_str);
    while let Some(flag) = it.next() {
        if matches!(flag, "-h" | "--help") {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag {
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("invalid port `{value}`"))?
            }
            "--nodes" => {
                nodes = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("invalid node count `{value}`"))?
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(Some(DemoOptions { port, nodes }))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Some(options)) => run(options),
        Ok(None) => print!("{USAGE}"),
        Err(e) => {
            eprintln!("miroir-demo: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Starts the simulated nodes on a dedicated thread and runtime (Pingora runs its own) and
/// returns their URLs. The nodes live until the process exits.
fn start_nodes(count: usize) -> std::io::Result<Vec<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-nodes".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let mut nodes = Vec::new();
                for i in 0..count {
                    let cfg = SimConfig {
                        master_key: Some(DEMO_MASTER_KEY.to_owned()),
                        port: 0,
                        task_delay: Duration::ZERO,
                        seed: i as u64 + 1,
                        name: format!("sim-{i}"),
                    };
                    match SimNode::start(cfg).await {
                        Ok(node) => nodes.push(node),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(nodes.iter().map(|n| n.url()).collect()));
                // Keep the nodes (and this runtime) alive for the life of the process.
                std::future::pending::<()>().await;
            });
        })?;
    rx.recv()
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// The demo's configuration, as a user would write it.
fn demo_toml(port: u16, node_urls: &[String], data_dir: &str) -> String {
    let mut toml = format!(
        "shards = 16\nreplication_factor = 1\nmaster_key = \"{DEMO_MASTER_KEY}\"\ndata_dir = \"{data_dir}\"\n\n\
         [server]\nbind = \"127.0.0.1\"\nport = {port}\n\n[metrics]\nenabled = false\n\n"
    );
    for (i, url) in node_urls.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = \"sim-{i}\"\naddress = \"{url}\"\n\n"
        ));
    }
    toml
}

fn run(options: DemoOptions) -> ! {
    let urls = match start_nodes(options.nodes) {
        Ok(urls) => urls,
        Err(e) => {
            eprintln!("miroir-demo: could not start the simulated nodes: {e}");
            std::process::exit(1);
        }
    };
    let data_dir = std::env::temp_dir().join(format!("miroir-demo-{}", std::process::id()));
    let toml = demo_toml(options.port, &urls, &data_dir.to_string_lossy());
    let config = match miroir_conf::parse(&toml, "demo", &|_| None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("miroir-demo: internal configuration error:\n{e}");
            std::process::exit(1);
        }
    };
    let base = format!("http://127.0.0.1:{}", options.port);
    println!(
        "Miroir demo: listening on {base} in front of {} simulated Meilisearch nodes (test doubles, in memory):",
        urls.len()
    );
    for (i, url) in urls.iter().enumerate() {
        println!("  sim-{i}  {url}");
    }
    println!(
        "\nMaster key: {DEMO_MASTER_KEY}\nTry:\n  curl {base}/health\n  \
         curl -H 'Authorization: Bearer {DEMO_MASTER_KEY}' -H 'Content-Type: application/json' \\\n    \
         -d '[{{\"id\":1,\"title\":\"Carol\"}},{{\"id\":2,\"title\":\"Wonder Woman\"}}]' {base}/indexes/movies/documents\n  \
         curl -H 'Authorization: Bearer {DEMO_MASTER_KEY}' {base}/tasks/0\n  \
         curl -H 'Authorization: Bearer {DEMO_MASTER_KEY}' '{base}/indexes/movies/search?q=wonder'\n\n\
         Meilisearch SDKs work too (key {DEMO_MASTER_KEY}); the README lists which routes Miroir serves today.\n\nThe configuration it runs on:\n{toml}"
    );
    miroir::server::run(config, None, miroir::server::RunOptions::default())
}
