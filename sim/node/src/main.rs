//! `meili-sim`: runs one simulated Meilisearch node (a test double) as a process.
//!
//! `meili-sim --port 0 --master-key KEY [--task-delay-ms N] [--seed N] [--name NAME]`
//! prints `listening on http://127.0.0.1:PORT` as its first stdout line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use meili_sim::{SimConfig, SimNode};

const USAGE: &str =
    "usage: meili-sim [--port N] [--master-key KEY] [--task-delay-ms N] [--seed N] [--name NAME]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<SimConfig, String> {
    let mut cfg = SimConfig::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => cfg.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--master-key" => cfg.master_key = Some(value()?),
            "--task-delay-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--task-delay-ms: {e}"))?;
                cfg.task_delay = Duration::from_millis(ms);
            }
            "--seed" => cfg.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--name" => cfg.name = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let node = match SimNode::start(cfg).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("meili-sim: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", node.url());
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    node.stop().await;
    ExitCode::SUCCESS
}
