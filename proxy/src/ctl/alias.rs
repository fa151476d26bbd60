//! `miroir ctl alias ...`: the alias admin API (`/_miroir/aliases`) from the command line. A
//! comma-separated list of indexes makes an alias of several indexes.

use serde_json::{json, Value};

use super::Endpoint;

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    List,
    Get(String),
    Create(String, Vec<String>),
    Repoint(String, Vec<String>),
    Delete(String),
}

pub fn parse<'a>(args: &mut impl Iterator<Item = &'a str>) -> Result<Command, String> {
    const USE: &str =
        "alias list | get NAME | create NAME INDEX[,INDEX...] | repoint NAME INDEX[,INDEX...] | delete NAME";
    let mut next = |what: &str| {
        args.next()
            .map(str::to_owned)
            .ok_or_else(|| format!("alias: missing {what} ({USE})"))
    };
    let indexes = |list: String| list.split(',').map(str::to_owned).collect::<Vec<_>>();
    Ok(match next("command")?.as_str() {
        "list" => Command::List,
        "get" => Command::Get(next("NAME")?),
        "delete" => Command::Delete(next("NAME")?),
        "create" => Command::Create(next("NAME")?, indexes(next("INDEX")?)),
        "repoint" => Command::Repoint(next("NAME")?, indexes(next("INDEX")?)),
        other => return Err(format!("alias: unknown command `{other}` ({USE})")),
    })
}

pub async fn run(admin: &Endpoint, command: Command) -> Result<(), String> {
    match command {
        Command::List => {
            let list = admin.call("GET", "/_miroir/aliases", None).await?;
            for a in list["results"].as_array().into_iter().flatten() {
                println!("{}", line(a));
            }
        }
        Command::Get(name) => {
            let a = admin.call("GET", &path(&name), None).await?;
            println!("{}", line(&a));
            for r in a["history"].as_array().into_iter().flatten() {
                println!(
                    "  {}  {} -> {}  by {}",
                    r["at"].as_str().unwrap_or(""),
                    list(&r["from"]),
                    list(&r["to"]),
                    r["by"].as_str().unwrap_or("")
                );
            }
        }
        Command::Create(name, indexes) => {
            let mut body = targets(&indexes, indexes.len() > 1);
            body["name"] = json!(name);
            let a = admin.call("POST", "/_miroir/aliases", Some(&body)).await?;
            println!("created {}", line(&a));
        }
        Command::Repoint(name, indexes) => {
            // The alias keeps its kind: one index, or a list.
            let current = admin.call("GET", &path(&name), None).await?;
            let body = targets(&indexes, current.get("targets").is_some());
            let a = admin.call("PUT", &path(&name), Some(&body)).await?;
            println!("repointed {}", line(&a));
        }
        Command::Delete(name) => {
            admin.call("DELETE", &path(&name), None).await?;
            println!("deleted alias {name}");
        }
    }
    Ok(())
}

fn path(name: &str) -> String {
    format!("/_miroir/aliases/{name}")
}

fn targets(indexes: &[String], many: bool) -> Value {
    if many {
        json!({ "targets": indexes })
    } else {
        json!({ "target": indexes.first() })
    }
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `name -> index` (or `index,index`).
fn line(a: &Value) -> String {
    let to = match a.get("targets") {
        Some(t) => list(t),
        None => a["target"].as_str().unwrap_or("").to_owned(),
    };
    format!("{} -> {to}", a["name"].as_str().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alias_commands() {
        let p = |s: &str| parse(&mut s.split(' '));
        assert_eq!(p("list"), Ok(Command::List));
        assert_eq!(
            p("create products products_v1"),
            Ok(Command::Create(
                "products".into(),
                vec!["products_v1".into()]
            ))
        );
        assert_eq!(
            p("repoint all a,b"),
            Ok(Command::Repoint("all".into(), vec!["a".into(), "b".into()]))
        );
        assert!(p("create products").is_err());
        assert!(p("frob").is_err());
    }
}
