//! `miroir ctl reshard ...`: the reshard admin API (`/_miroir/reshards`) from the command line.

use std::time::Duration;

use serde_json::{json, Value};

use super::Endpoint;

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Start changing INDEX's shard count; `wait`: follow it until the flip.
    Start {
        index: String,
        shards: u32,
        wait: bool,
    },
    Status,
    Rollback(String),
    Finish(String),
}

const USE: &str = "reshard INDEX --shards N [--wait] | reshard status | reshard rollback INDEX | reshard finish INDEX";

pub fn parse<'a>(args: &mut impl Iterator<Item = &'a str>) -> Result<Command, String> {
    let first = args
        .next()
        .ok_or_else(|| format!("reshard: missing INDEX or command ({USE})"))?;
    let mut index = |what: &str| {
        args.next()
            .map(str::to_owned)
            .ok_or_else(|| format!("reshard {what}: missing INDEX ({USE})"))
    };
    Ok(match first {
        "status" => Command::Status,
        "rollback" => Command::Rollback(index("rollback")?),
        "finish" => Command::Finish(index("finish")?),
        uid => {
            let (mut shards, mut wait) = (None, false);
            while let Some(arg) = args.next() {
                match arg {
                    "--shards" => {
                        shards = Some(
                            args.next()
                                .and_then(|n| n.parse().ok())
                                .ok_or("--shards needs a number")?,
                        )
                    }
                    "--wait" => wait = true,
                    other => return Err(format!("reshard: unknown argument `{other}` ({USE})")),
                }
            }
            Command::Start {
                index: uid.to_owned(),
                shards: shards.ok_or_else(|| format!("reshard: missing --shards N ({USE})"))?,
                wait,
            }
        }
    })
}

pub async fn run(admin: &Endpoint, command: Command) -> Result<(), String> {
    match command {
        Command::Start {
            index,
            shards,
            wait,
        } => {
            let body = json!({ "index": index, "shards": shards });
            let r = admin.call("POST", "/_miroir/reshards", Some(&body)).await?;
            println!("{}", line(&r));
            if wait {
                follow(admin, &index).await?;
            }
        }
        Command::Status => {
            let all = admin.call("GET", "/_miroir/reshards", None).await?;
            for r in all["results"].as_array().into_iter().flatten() {
                println!("{}", line(r));
            }
            for o in all["history"].as_array().into_iter().flatten() {
                println!(
                    "{}  {} {} -> {} shards: {}{}",
                    o["at"].as_str().unwrap_or(""),
                    o["index"].as_str().unwrap_or(""),
                    o["from"],
                    o["to"],
                    o["outcome"].as_str().unwrap_or(""),
                    o["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Rollback(index) => {
            let path = format!("/_miroir/reshards/{index}/rollback");
            admin.call("POST", &path, None).await?;
            println!("rolling back `{index}`; follow it with `miroir ctl reshard status`");
        }
        Command::Finish(index) => {
            let path = format!("/_miroir/reshards/{index}/finish");
            admin.call("POST", &path, None).await?;
            println!("dropping the old layout of `{index}`");
        }
    }
    Ok(())
}

/// Prints the reshard's progress until it flipped or ended.
async fn follow(admin: &Endpoint, index: &str) -> Result<(), String> {
    let mut last = String::new();
    loop {
        let all = admin.call("GET", "/_miroir/reshards", None).await?;
        let current = all["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["index"] == index).cloned());
        let Some(r) = current else {
            println!("`{index}` is no longer being resharded (`miroir ctl reshard status`)");
            return Ok(());
        };
        let now = line(&r);
        if now != last {
            println!("{now}");
            last = now;
        }
        if r["phase"] == "flipped" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `index  from -> to  phase  copied/expected ...`.
fn line(r: &Value) -> String {
    let p = &r["progress"];
    let mut s = format!(
        "{}  {} -> {} shards  {}  copied {}/{}  replayed {}  verified {}  repaired {}",
        r["index"].as_str().unwrap_or(""),
        r["from"],
        r["to"],
        r["phase"].as_str().unwrap_or(""),
        p["copiedDocuments"],
        p["expectedDocuments"],
        p["replayedWrites"],
        p["verifiedDocuments"],
        p["repairedDocuments"],
    );
    if let Some(e) = p["lastError"].as_str() {
        s.push_str(&format!("  (retrying: {e})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reshard_commands() {
        let p = |s: &str| parse(&mut s.split(' '));
        assert_eq!(
            p("products --shards 32 --wait"),
            Ok(Command::Start {
                index: "products".into(),
                shards: 32,
                wait: true
            })
        );
        assert_eq!(p("status"), Ok(Command::Status));
        assert_eq!(
            p("rollback products"),
            Ok(Command::Rollback("products".into()))
        );
        assert!(p("products").is_err());
        assert!(p("products --shards x").is_err());
    }
}
