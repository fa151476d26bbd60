//! The Pingora server: the proxy listener (plain and optional TLS) with the `ProxyHttp`
//! phases (`service`) and the route dispatch (`dispatch`), the metrics listener, and the
//! background services (health checks, hint replay, index repairs, settings drift, config
//! reload).

mod body;
mod ctx;
mod dispatch;
mod request_id;
mod respond;
pub mod service;
pub mod sessions;

use std::path::PathBuf;

use miroir_conf::Config;
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
    logging::init(
        log_format(&config),
        logging::level_from_str(config.log.level.as_str()),
    );
    let threads = worker_threads(&config);
    let data_dir = config.data_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&data_dir) {
        log::error!(target: "miroir::server", "cannot create data_dir {}: {e}", data_dir.display());
        std::process::exit(1);
    }

    let server_conf = ServerConf {
        threads,
        daemon: options.daemon,
        pid_file: data_dir.join("miroir.pid").to_string_lossy().into_owned(),
        upgrade_sock: data_dir
            .join("miroir_upgrade.sock")
            .to_string_lossy()
            .into_owned(),
        upstream_keepalive_pool_size: config.upstream.pool_size,
        grace_period_seconds: Some(5),
        graceful_shutdown_timeout_seconds: Some(10),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        daemon: options.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let listen = config.server.listen.to_string();
    let tls = config.server.tls.clone();
    let metrics_listen = config.metrics.as_ref().map(|m| m.listen.to_string());
    let shared = match Shared::open(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!(target: "miroir::server", "{e}");
            std::process::exit(1);
        }
    };

    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        MiroirProxy {
            shared: shared.clone(),
        },
        "miroir",
    );
    proxy.threads = Some(threads);
    proxy.add_tcp(&listen);
    if let Some(tls) = tls {
        let cert = tls.cert_path.to_string_lossy();
        let key = tls.key_path.to_string_lossy();
        match TlsSettings::intermediate(&cert, &key) {
            Ok(settings) => {
                let addr = tls.listen.to_string();
                proxy.add_tls_with_settings(&addr, None, settings);
                log::info!(target: "miroir::server", "TLS listener on {addr}");
            }
            Err(e) => {
                log::error!(target: "miroir::server", "cannot load the TLS certificate or key: {e}");
                std::process::exit(1);
            }
        }
    }
    server.add_service(proxy);

    if let Some(addr) = metrics_listen {
        let mut prom = pingora_prometheus::prometheus_http_service();
        prom.add_tcp(&addr);
        server.add_service(prom);
        log::info!(target: "miroir::server", "metrics on http://{addr}/metrics");
    }

    let cluster = &shared.cluster;
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
        "topology changes",
        ChangeService::new(cluster.clone()),
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
    log::info!(target: "miroir::server", "Miroir listening on http://{listen} ({threads} worker threads)");
    server.run_forever()
}

pub fn tls_settings_check(config: &Config) -> Result<(), String> {
    if let Some(tls) = &config.server.tls {
        TlsSettings::intermediate(
            &tls.cert_path.to_string_lossy(),
            &tls.key_path.to_string_lossy(),
        )
        .map(|_| ())
        .map_err(|e| format!("server.tls: cannot load the certificate or key: {e}"))?;
    }
    Ok(())
}
