//! The Pingora server: the proxy listener (plain and optional TLS) with the `ProxyHttp`
//! phases (`service`) and the route dispatch (`dispatch`), the metrics listener, and the
//! background services (health checks, hint replay, index repairs, settings drift, config
//! reload).

mod aliases;
mod body;
mod ctx;
mod daemon;
mod dispatch;
mod draining;
mod encoding;
pub mod handover;
mod listen;
mod relay;
mod request_id;
mod respond;
pub mod service;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miroir_conf::{Config, TaskStore as TaskStoreConfig};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::background::background_service;

use crate::fleet::ChangeService;

use crate::cluster::health_checks::HealthChecker;
use crate::ops::reload::Reloader;
use crate::repair::index_repairs::LifecycleRepairer;
use crate::repair::replay::Replayer;
use crate::repair::settings_drift::SettingsSync;
use crate::shared::Shared;
use crate::telemetry::{log_format, logging, metrics};
use service::MiroirProxy;

/// Process-level switches from the command line.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Take over the listening sockets of a running instance (Pingora graceful upgrade).
    pub upgrade: bool,
    pub daemon: bool,
}

fn worker_threads(config: &Config) -> usize {
    match config.server.threads {
        Some(n) => n.get(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Runs the proxy until the process is told to stop. Never returns.
pub fn run(config: Config, config_path: Option<PathBuf>, options: RunOptions) -> ! {
    let data_dir = config.data_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&data_dir) {
        eprintln!("cannot create data_dir {}: {e}", data_dir.display());
        std::process::exit(1);
    }
    // First, while the process has a single thread.
    if options.daemon {
        if let Err(e) = daemon::detach(&data_dir.join("miroir.pid")) {
            eprintln!("cannot run as a daemon: {e}");
            std::process::exit(1);
        }
    }
    logging::init(
        log_format(&config),
        logging::level_from_str(config.log.level.as_str()),
    );
    let threads = worker_threads(&config);
    let work_stealing = config.server.work_stealing;

    let server_conf = ServerConf {
        threads,
        // Detached above already: Pingora forking again would leave the pid file naming a
        // process that exits.
        daemon: false,
        pid_file: data_dir.join("miroir.pid").to_string_lossy().into_owned(),
        upgrade_sock: data_dir
            .join("miroir_upgrade.sock")
            .to_string_lossy()
            .into_owned(),
        upstream_keepalive_pool_size: config.upstream.pool_size,
        work_stealing: config.server.work_stealing,
        // Requests still running when the listeners close get their full deadline.
        grace_period_seconds: Some(config.server.request_timeout.as_secs() + 1),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        // Detached above already.
        daemon: false,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    // With --upgrade: the listening sockets of the running process, once it gets SIGQUIT.
    server.bootstrap();
    // Then its data directory, once it has finished its last request.
    let _owner = match handover::take(&data_dir, options.upgrade) {
        Ok(owner) => owner,
        Err(e) => {
            log::error!(target: "miroir::server", "{e}");
            std::process::exit(1);
        }
    };

    let listen_addr = config.server.listen.to_string();
    let tls = config.server.tls.clone();
    let metrics_listen = config.metrics.as_ref().map(|m| m.listen.to_string());
    let shared = match Shared::open(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!(target: "miroir::server", "{e}");
            std::process::exit(1);
        }
    };

    let app = pingora_proxy::http_proxy(
        &server.configuration,
        MiroirProxy {
            shared: shared.clone(),
        },
    );
    let mut endpoints = vec![listen::Endpoint {
        addr: listen_addr.clone(),
        tls: None,
    }];
    if let Some(tls) = tls {
        let cert = tls.cert_path.to_string_lossy();
        let key = tls.key_path.to_string_lossy();
        match TlsSettings::intermediate(&cert, &key) {
            Ok(settings) => {
                let addr = tls.listen.to_string();
                log::info!(target: "miroir::server", "TLS listener on {addr}");
                endpoints.push(listen::Endpoint {
                    addr,
                    tls: Some(settings),
                });
            }
            Err(e) => {
                log::error!(target: "miroir::server", "cannot load the TLS certificate or key: {e}");
                std::process::exit(1);
            }
        }
    }
    server.add_service(listen::Listening::new(
        "miroir",
        draining::Draining(Arc::new(app)),
        endpoints,
        threads,
        work_stealing,
    ));

    if let Some(addr) = metrics_listen {
        let mut prom = pingora_prometheus::prometheus_http_service();
        prom.add_tcp(&addr);
        server.add_service(prom);
        log::info!(target: "miroir::server", "metrics on http://{addr}/metrics");
    }

    let cluster = &shared.cluster;
    server.add_service(background_service(
        "exit once drained",
        handover::ExitWhenDrained,
    ));
    server.add_service(background_service(
        "health checks",
        HealthChecker {
            cluster: cluster.clone(),
        },
    ));
    server.add_service(background_service(
        "hint replay",
        Replayer {
            cluster: cluster.clone(),
        },
    ));
    server.add_service(background_service(
        "index lifecycle repairs",
        LifecycleRepairer {
            cluster: cluster.clone(),
            jobs: shared.index_repairs.clone(),
        },
    ));
    server.add_service(background_service(
        "shared topology",
        crate::cluster::shared_topology::Follower {
            cluster: cluster.clone(),
            records: vec![
                cluster.shard_counts.synced(),
                shared.aliases.synced(),
                shared.webhooks.registry.synced(),
            ],
        },
    ));
    server.add_service(background_service(
        "topology changes",
        ChangeService::new(cluster.clone()),
    ));
    server.add_service(background_service(
        "reshards",
        crate::reshard::ReshardService::new(shared.clone()),
    ));
    server.add_service(background_service(
        "settings drift detector",
        SettingsSync::new(cluster.clone(), shared.settings_checks.clone()),
    ));
    server.add_service(background_service(
        "anti-entropy",
        crate::repair::anti_entropy::AntiEntropy::new(cluster.clone(), shared.anti_entropy.clone()),
    ));
    server.add_service(background_service(
        "webhook calls",
        crate::webhooks::Delivery::new(cluster.clone(), shared.webhooks.clone()),
    ));
    server.add_service(background_service(
        "task registry upkeep",
        crate::tasks::TaskUpkeep {
            shared: shared.clone(),
        },
    ));
    if let Some(path) = config_path {
        server.add_service(background_service(
            "config reload",
            Reloader {
                cluster: cluster.clone(),
                path,
            },
        ));
    }

    // Touch the metrics so they are registered before the first scrape.
    let _ = metrics::get();
    log::info!(target: "miroir::server", "Miroir listening on http://{listen_addr} ({threads} worker threads)");
    server.run_forever()
}

/// Reads and validates a configuration file as this build runs it: the schema and values
/// (`miroir_conf`), then what this binary must be able to do with them (load the TLS
/// certificate, open the task store it names). `check-config`, startup and reloads all use
/// this one function, so a file that passes one passes them all.
pub fn load_config(path: &Path) -> Result<Config, String> {
    let config = miroir_conf::load(path).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    if let Some(tls) = &config.server.tls {
        if let Err(e) = TlsSettings::intermediate(
            &tls.cert_path.to_string_lossy(),
            &tls.key_path.to_string_lossy(),
        ) {
            problems.push(format!(
                "server.tls: cannot load the certificate or key: {e}"
            ));
        }
    }
    if let TaskStoreConfig::Redis { url } = &config.task_store {
        if let Err(e) = crate::shared::open_redis(url) {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        return Ok(config);
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {p}", path.display()))
        .collect();
    Err(lines.join("\n"))
}
