use miroir::cli::{self, Command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("miroir: {e}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    match command {
        Command::Help => print!("{}", cli::USAGE),
        Command::Ctl { target, action } => std::process::exit(miroir::ctl::run(target, action)),
        Command::Version => println!("miroir {}", env!("CARGO_PKG_VERSION")),
        Command::CheckConfig { path } => match miroir::server::load_config(&path) {
            Ok(config) => {
                println!(
                    "{}: OK ({} nodes, {} shards, replication factor {}, {} replica groups)",
                    path.display(),
                    config.nodes.len(),
                    config.shards,
                    config.replication_factor,
                    config.replica_groups
                );
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        Command::Run {
            config: path,
            upgrade,
            daemon,
        } => {
            let config = match miroir::server::load_config(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            miroir::server::run(
                config,
                Some(path),
                miroir::server::RunOptions { upgrade, daemon },
            )
        }
    }
}
