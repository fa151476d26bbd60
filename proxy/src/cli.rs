//! Command line: `miroir --config FILE`, `miroir check-config FILE`.

use std::path::PathBuf;

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
        upgrade: bool,
        daemon: bool,
    },
    CheckConfig {
        path: PathBuf,
    },
    /// `miroir ctl ...`: the operator's client of the admin API.
    Ctl {
        target: crate::ctl::Target,
        action: crate::ctl::Action,
    },
    Help,
    Version,
}

pub const USAGE: &str = "\
Miroir: a sharding and high-availability proxy for Meilisearch

USAGE:
    miroir --config <FILE> [--upgrade] [--daemon]   run the proxy
    miroir check-config <FILE>                       validate a configuration file
    miroir ctl [OPTIONS] <COMMAND>                   operate the fleet (`miroir ctl --help`)
    miroir --help | --version

SIGHUP (or saving the file) reloads the configuration without dropping connections.
To try Miroir without Meilisearch, run `miroir-demo` (scripts/demo.sh): Miroir in front of
simulated nodes.
";

pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().map(String::as_str);
    match it.next() {
        None => Err("missing arguments".into()),
        Some("-h" | "--help" | "help") => Ok(Command::Help),
        Some("-V" | "--version" | "version") => Ok(Command::Version),
        Some("demo") => Err(
            "the demo is a binary of its own: `miroir-demo` (or scripts/demo.sh), so the \
             production binary carries no simulated node"
                .into(),
        ),
        Some("ctl") => {
            let rest: Vec<&str> = it.collect();
            if rest.iter().any(|a| matches!(*a, "-h" | "--help" | "help")) || rest.is_empty() {
                return Err(crate::ctl::USAGE.to_owned());
            }
            let (target, action) = crate::ctl::parse(&rest)?;
            Ok(Command::Ctl { target, action })
        }
        Some("check-config") => match (it.next(), it.next()) {
            (Some(path), None) => Ok(Command::CheckConfig { path: path.into() }),
            _ => Err("check-config takes exactly one file".into()),
        },
        Some(_) => {
            let (mut config, mut upgrade, mut daemon) = (None, false, false);
            let mut it = args.iter().map(String::as_str);
            while let Some(arg) = it.next() {
                match arg {
                    "-c" | "--config" => {
                        config = Some(it.next().ok_or("--config needs a file")?.into())
                    }
                    "-u" | "--upgrade" => upgrade = true,
                    "-d" | "--daemon" => daemon = true,
                    other => return Err(format!("unknown argument `{other}`")),
                }
            }
            let config = config.ok_or("--config <FILE> is required")?;
            Ok(Command::Run {
                config,
                upgrade,
                daemon,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_each_command() {
        assert_eq!(
            parse(&args("--config m.toml -u")),
            Ok(Command::Run {
                config: "m.toml".into(),
                upgrade: true,
                daemon: false
            })
        );
        assert_eq!(
            parse(&args("check-config a.toml")),
            Ok(Command::CheckConfig {
                path: "a.toml".into()
            })
        );
        assert!(parse(&args("check-config")).is_err());
        assert!(parse(&args("--upgrade")).is_err());
        assert!(parse(&args("demo")).is_err());
        assert_eq!(
            parse(&args("ctl --url http://h:1 drain n2")),
            Ok(Command::Ctl {
                target: crate::ctl::Target {
                    url: Some("http://h:1".into()),
                    ..Default::default()
                },
                action: crate::ctl::Action::Drain("n2".into()),
            })
        );
        assert!(parse(&args("ctl")).is_err());
        assert!(parse(&args("ctl frobnicate")).is_err());
    }
}
