//! The configuration as a user meets it: examples that load, defaults, environment secrets,
//! and errors that name the key at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miroir_conf::{
    load, parse, parse_with, restart_required, Config, ConfigError, LogFormat, LogLevel, Scheme,
    TaskStore, UnavailableShardPolicy,
};
use miroir_filters::routing::{GroupId, ShardId};

const SOURCE: &str = "test.toml";

fn no_env(_: &str) -> Option<String> {
    None
}

fn ok(text: &str) -> Config {
    match parse(text, SOURCE, &no_env) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text, SOURCE, &no_env) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

/// Asserts that some problem is about `key` and its reason contains `reason`.
fn assert_problem(error: &ConfigError, key: &str, reason: &str) {
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.key == key && p.reason.contains(reason)),
        "no problem `{key}: ...{reason}...` in:\n{error}"
    );
}

const THREE_NODES: &str = r#"
shards = 16

[[nodes]]
id = "a"
address = "http://10.0.0.1:7700"

[[nodes]]
id = "b"
address = "http://10.0.0.2:7700"

[[nodes]]
id = "c"
address = "http://10.0.0.3:7700"
"#;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_shipped_example_loads() {
    let mut loaded = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.display().to_string();
            if let Err(e) = parse(&text, &name, &no_env) {
                panic!("{e}");
            }
            loaded += 1;
        }
    }
    assert!(loaded >= 3, "only {loaded} examples found");
}

#[test]
fn load_reads_a_file_from_disk() {
    let config = load(&examples_dir().join("rf2-two-groups.toml")).unwrap();
    assert_eq!(config.replica_groups, 2);
    assert_eq!(config.replication_factor, 2);
    assert_eq!(config.nodes.len(), 6);
}

#[test]
fn load_of_a_missing_file_names_the_file() {
    let error = load(Path::new("/nonexistent/miroir.toml")).unwrap_err();
    assert_eq!(error.source, "/nonexistent/miroir.toml");
    assert!(error
        .to_string()
        .starts_with("/nonexistent/miroir.toml: file: cannot read"));
}

#[test]
fn minimal_config_gets_every_default() {
    let config = ok(THREE_NODES);
    assert_eq!(config.shards, 16);
    assert_eq!(config.replication_factor, 1);
    assert_eq!(config.replica_groups, 1);
    assert_eq!(config.master_key, None);
    assert_eq!(config.node_master_key, None);
    assert_eq!(config.data_dir, PathBuf::from("./miroir-data"));
    assert_eq!(
        config.server.listen,
        "127.0.0.1:7700".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.threads, None);
    assert_eq!(config.server.max_body_bytes, 100 * 1024 * 1024);
    assert_eq!(config.server.request_timeout, Duration::from_secs(30));
    assert_eq!(config.server.tls, None);
    assert_eq!(config.upstream.connect_timeout, Duration::from_secs(1));
    assert_eq!(config.upstream.read_timeout, Duration::from_secs(30));
    assert_eq!(config.upstream.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.upstream.pool_size, 128);
    assert_eq!(
        config.task_store,
        TaskStore::Embedded {
            path: PathBuf::from("./miroir-data/tasks")
        }
    );
    assert_eq!(config.health.interval, Duration::from_millis(1000));
    assert_eq!(config.health.timeout, Duration::from_millis(500));
    assert_eq!(config.health.unhealthy_threshold, 3);
    assert_eq!(config.health.healthy_threshold, 2);
    assert_eq!(config.scatter.node_timeout, Duration::from_secs(5));
    assert!(config.scatter.retry_on_timeout);
    assert_eq!(
        config.scatter.unavailable_shard_policy,
        UnavailableShardPolicy::Partial
    );
    assert_eq!(config.scatter.hedge_after_floor, Duration::from_millis(20));
    assert_eq!(config.scatter.max_hedges_per_query, 2);
    assert_eq!(config.admin.api_key, None);
    assert!(config.settings_sync.enabled);
    assert_eq!(config.settings_sync.interval, Duration::from_secs(30));
    assert_eq!(config.handoff.max_bytes_per_node, 1 << 30);
    assert_eq!(config.handoff.replay_interval, Duration::from_millis(250));
    assert_eq!(
        config.metrics.as_ref().map(|m| m.listen),
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, LogLevel::Info);
}

#[test]
fn nodes_get_a_typed_address_and_group_zero_by_default() {
    let config = ok(THREE_NODES);
    let node = &config.nodes[0];
    assert_eq!(node.id.as_str(), "a");
    assert_eq!(node.group, GroupId(0));
    assert_eq!(node.address.scheme, Scheme::Http);
    assert_eq!(node.address.host, "10.0.0.1");
    assert_eq!(node.address.socket, "10.0.0.1:7700".parse().unwrap());
}

#[test]
fn node_authority_brackets_ipv6_hosts() {
    let config = ok(&THREE_NODES.replace("10.0.0.2:7700", "[fd00::2]:7700"));
    assert_eq!(config.nodes[0].address.authority(), "10.0.0.1:7700");
    assert_eq!(config.nodes[1].address.authority(), "[fd00::2]:7700");
    assert_eq!(
        config.nodes[1].address.socket,
        "[fd00::2]:7700".parse().unwrap()
    );
}

#[test]
fn nodes_are_listed_in_placement_order() {
    let text = THREE_NODES
        .replace("id = \"a\"", "id = \"z\"")
        .replace("id = \"b\"", "id = \"m\"");
    let config = ok(&text);
    let placement = config.placement();
    assert_eq!(placement.nodes().len(), config.nodes.len());
    for (i, node) in config.nodes.iter().enumerate() {
        assert_eq!(&placement.nodes()[i], &node.id);
    }
    let idx = placement.replicas(GroupId(0), ShardId(0))[0];
    assert_eq!(config.node(idx).id, *placement.node(idx));
}

#[test]
fn placement_matches_the_configured_topology() {
    let config = load(&examples_dir().join("rf2-two-groups.toml")).unwrap();
    let placement = config.placement();
    assert_eq!(placement.shards(), 64);
    assert_eq!(placement.groups(), 2);
    assert_eq!(placement.write_targets(ShardId(7)).count(), 4);
}

#[test]
fn host_names_are_resolved_at_load_time() {
    let text = THREE_NODES.replace("10.0.0.1", "meili-a.internal");
    let resolve = |host: &str, port: u16| match host {
        "meili-a.internal" => Ok(SocketAddr::from(([192, 168, 1, 9], port))),
        other => miroir_conf::system_resolve(other, port),
    };
    let config = parse_with(&text, SOURCE, &no_env, &resolve).unwrap();
    assert_eq!(config.nodes[0].address.host, "meili-a.internal");
    assert_eq!(
        config.nodes[0].address.socket,
        "192.168.1.9:7700".parse().unwrap()
    );
}

#[test]
fn unresolvable_host_is_an_error_naming_the_node_address() {
    let text = THREE_NODES.replace("10.0.0.3", "no-such-host.invalid");
    let resolve = |host: &str, port: u16| match host {
        "no-such-host.invalid" => Err(format!("cannot resolve host {host:?}")),
        other => miroir_conf::system_resolve(other, port),
    };
    let error = parse_with(&text, SOURCE, &no_env, &resolve).unwrap_err();
    assert_problem(&error, "nodes[2].address", "cannot resolve");
}

#[test]
fn unparsable_address_names_the_node() {
    let error = err(&THREE_NODES.replace("http://10.0.0.2:7700", "10.0.0.2:7700"));
    assert_problem(&error, "nodes[1].address", "http://");
}

#[test]
fn env_secrets_override_the_file() {
    let text =
        format!("master_key = \"from-file\"\n{THREE_NODES}\n[admin]\napi_key = \"admin-file\"\n");
    let env = |name: &str| match name {
        "MIROIR_MASTER_KEY" => Some("from-env".to_owned()),
        "MIROIR_ADMIN_API_KEY" => Some("admin-env".to_owned()),
        _ => None,
    };
    let config = parse(&text, SOURCE, &env).unwrap();
    assert_eq!(config.master_key.as_ref().unwrap().expose(), "from-env");
    assert_eq!(config.admin.api_key.as_ref().unwrap().expose(), "admin-env");
}

#[test]
fn node_master_key_defaults_to_master_key() {
    let config = ok(&format!("master_key = \"shared\"\n{THREE_NODES}"));
    assert_eq!(config.node_master_key.unwrap().expose(), "shared");
}

#[test]
fn node_master_key_env_wins_over_master_key() {
    let env = |name: &str| (name == "MIROIR_NODE_MASTER_KEY").then(|| "nodes".to_owned());
    let config = parse(
        &format!("master_key = \"client\"\n{THREE_NODES}"),
        SOURCE,
        &env,
    )
    .unwrap();
    assert_eq!(config.master_key.unwrap().expose(), "client");
    assert_eq!(config.node_master_key.unwrap().expose(), "nodes");
}

#[test]
fn empty_env_secret_is_refused_under_the_variable_name() {
    let env = |name: &str| (name == "MIROIR_MASTER_KEY").then(String::new);
    let error = parse(THREE_NODES, SOURCE, &env).unwrap_err();
    assert_problem(&error, "MIROIR_MASTER_KEY", "must not be empty");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let text = format!(
        "master_key = \"sekrit-client\"\nnode_master_key = \"sekrit-node\"\n{THREE_NODES}\n\
         [admin]\napi_key = \"sekrit-admin\"\n[task_store]\nbackend = \"redis\"\n\
         url = \"redis://:sekrit-redis@10.0.0.9:6379\"\n"
    );
    let config = ok(&text);
    let debug = format!("{config:?}");
    assert!(!debug.contains("sekrit"), "{debug}");
    assert!(debug.contains("***"));
    assert_eq!(config.master_key.as_ref().unwrap().to_string(), "***");
}

#[test]
fn secrets_never_appear_in_error_text() {
    // A secret of the wrong type: the parser's message would quote the value.
    let error = err(&format!("master_key = 9876543210\n{THREE_NODES}"));
    assert_problem(&error, "master_key", "invalid type");
    assert!(!error.to_string().contains("9876543210"), "{error}");
    assert!(!format!("{error:?}").contains("9876543210"));

    // A malformed redis URL that embeds a password.
    let error = err(&format!(
        "{THREE_NODES}\n[task_store]\nbackend = \"redis\"\nurl = \"http://:sekrit@10.0.0.9\"\n"
    ));
    assert_problem(&error, "task_store.url", "redis://");
    assert!(!error.to_string().contains("sekrit"), "{error}");
}

#[test]
fn error_display_is_one_line_per_problem_with_source_and_key() {
    let error = err("shards = 0\nreplication_factor = 0\n");
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), error.problems.len());
    assert!(
        lines.contains(&"test.toml: shards: must be greater than 0"),
        "{text}"
    );
    assert!(lines.contains(&"test.toml: replication_factor: must be greater than 0"));
    assert!(lines.contains(&"test.toml: nodes: at least one node is required"));
}

#[test]
fn all_problems_are_reported_not_just_the_first() {
    let text = THREE_NODES
        .replace("id = \"b\"", "id = \"a\"")
        .replace("10.0.0.3", "not an address")
        + "\n[server]\nport = 0\n[health]\ntimeout_ms = 5000\n";
    let error = err(&text);
    assert_problem(&error, "nodes[1].id", "nodes[0]");
    assert_problem(&error, "nodes[2].address", "");
    assert_problem(&error, "server.port", "must not be 0");
    assert_problem(&error, "health.timeout_ms", "health.interval_ms");
    assert_eq!(error.problems.len(), 4, "{error}");
}

#[test]
fn duplicate_node_ids_name_both_nodes() {
    let error = err(&THREE_NODES.replace("id = \"c\"", "id = \"a\""));
    assert_problem(&error, "nodes[2].id", "\"a\" is already the id of nodes[0]");
}

#[test]
fn invalid_node_id_is_refused() {
    let error = err(&THREE_NODES.replace("id = \"c\"", "id = \"c d\""));
    assert_problem(&error, "nodes[2].id", "may only contain");
}

#[test]
fn replica_group_out_of_range_names_the_node() {
    let error = err(&THREE_NODES.replace(
        "address = \"http://10.0.0.3:7700\"",
        "address = \"http://10.0.0.3:7700\"\nreplica_group = 1",
    ));
    assert_problem(&error, "nodes[2].replica_group", "out of range");
}

#[test]
fn a_replica_group_without_nodes_is_refused() {
    let error = err(&format!("replica_groups = 2\n{THREE_NODES}"));
    assert_problem(&error, "replica_groups", "replica group 1 has no nodes");
}

#[test]
fn replication_factor_larger_than_a_group_is_refused() {
    let error = err(&format!("replication_factor = 4\n{THREE_NODES}"));
    assert_problem(
        &error,
        "replication_factor",
        "4 exceeds the 3 node(s) of replica group 0",
    );
}

#[test]
fn zero_topology_numbers_are_refused() {
    let text = THREE_NODES.replace(
        "shards = 16",
        "shards = 0\nreplication_factor = 0\nreplica_groups = 0",
    );
    let error = err(&text);
    assert_problem(&error, "shards", "greater than 0");
    assert_problem(&error, "replication_factor", "greater than 0");
    assert_problem(&error, "replica_groups", "greater than 0");
}

#[test]
fn missing_shards_is_reported_as_required() {
    let error = err(&THREE_NODES.replace("shards = 16", ""));
    assert_problem(&error, "shards", "required");
}

#[test]
fn missing_node_address_is_named() {
    let error = err(&THREE_NODES.replace("address = \"http://10.0.0.2:7700\"", ""));
    assert_problem(&error, "nodes[1].address", "required");
}

#[test]
fn file_secrets_are_used_without_env() {
    let config = ok(&format!("master_key = \"from-file\"\n{THREE_NODES}"));
    assert_eq!(config.master_key.unwrap().expose(), "from-file");
}

#[test]
fn unknown_top_level_key_is_named() {
    let error = err(&format!("shard = 3\n{THREE_NODES}"));
    assert_problem(&error, "shard", "unknown key (line 1)");
}

#[test]
fn unknown_nested_key_is_named_with_its_path() {
    let error = err(&format!("{THREE_NODES}\n[scatter]\nnode_timeout = 5\n"));
    assert_problem(&error, "scatter.node_timeout", "unknown key");
}

#[test]
fn unknown_key_in_a_node_names_the_node() {
    let error = err(&THREE_NODES.replace("id = \"b\"", "id = \"b\"\nadress = \"x\""));
    assert_problem(&error, "nodes[1].adress", "unknown key");
}

#[test]
fn unknown_enum_value_names_the_key() {
    let error = err(&format!(
        "{THREE_NODES}\n[scatter]\nunavailable_shard_policy = \"maybe\"\n"
    ));
    assert_problem(
        &error,
        "scatter.unavailable_shard_policy",
        "unknown variant",
    );
    let error = err(&format!("{THREE_NODES}\n[log]\nformat = \"xml\"\n"));
    assert_problem(&error, "log.format", "unknown variant");
    let error = err(&format!(
        "{THREE_NODES}\n[task_store]\nbackend = \"sqlite\"\n"
    ));
    assert_problem(&error, "task_store.backend", "unknown variant");
}

#[test]
fn wrong_type_names_the_key() {
    let error = err(&format!("{THREE_NODES}\n[server]\nport = \"7700\"\n"));
    assert_problem(&error, "server.port", "invalid type");
}

#[test]
fn toml_syntax_error_names_the_line() {
    let error = err("shards = = 3\n");
    assert_eq!(error.problems.len(), 1);
    assert_eq!(error.problems[0].key, "line 1", "{error}");
}

#[test]
fn redis_backend_requires_a_url() {
    let error = err(&format!(
        "{THREE_NODES}\n[task_store]\nbackend = \"redis\"\n"
    ));
    assert_problem(&error, "task_store.url", "required");
}

#[test]
fn redis_backend_keeps_its_url_secret() {
    let config = ok(&format!(
        "{THREE_NODES}\n[task_store]\nbackend = \"redis\"\nurl = \"redis://10.0.0.9:6379/2\"\n"
    ));
    match &config.task_store {
        TaskStore::Redis { url } => assert_eq!(url.expose(), "redis://10.0.0.9:6379/2"),
        other => panic!("expected redis, got {other:?}"),
    }
}

#[test]
fn embedded_backend_path_defaults_under_data_dir() {
    let config = ok(&format!("data_dir = \"/var/lib/miroir\"\n{THREE_NODES}"));
    assert_eq!(
        config.task_store,
        TaskStore::Embedded {
            path: PathBuf::from("/var/lib/miroir/tasks")
        }
    );
}

#[test]
fn tls_with_missing_files_names_each_file_key() {
    let error = err(&format!(
        "{THREE_NODES}\n[server.tls]\ncert_path = \"/nonexistent/cert.pem\"\nkey_path = \"/nonexistent/key.pem\"\n"
    ));
    assert_problem(&error, "server.tls.cert_path", "no such file");
    assert_problem(&error, "server.tls.key_path", "no such file");
}

#[test]
fn tls_with_existing_files_builds_a_listener() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let file = file.display();
    let config = ok(&format!(
        "{THREE_NODES}\n[server.tls]\ncert_path = \"{file}\"\nkey_path = \"{file}\"\n"
    ));
    let tls = config.server.tls.unwrap();
    assert_eq!(tls.listen, "127.0.0.1:7443".parse().unwrap());
}

#[test]
fn listeners_on_one_port_are_refused() {
    let error = err(&format!("{THREE_NODES}\n[metrics]\nport = 7700\n"));
    assert_problem(&error, "metrics.port", "must differ");
}

#[test]
fn port_zero_is_refused_for_every_listener() {
    let error = err(&format!("{THREE_NODES}\n[metrics]\nport = 0\n"));
    assert_problem(&error, "metrics.port", "must not be 0");
    let error = err(&format!("{THREE_NODES}\n[server]\nport = 0\n"));
    assert_problem(&error, "server.port", "must not be 0");
}

#[test]
fn disabled_metrics_have_no_listener() {
    let config = ok(&format!(
        "{THREE_NODES}\n[metrics]\nenabled = false\nport = 0\n"
    ));
    assert_eq!(config.metrics, None);
}

#[test]
fn zero_timeouts_are_refused() {
    let error = err(&format!(
        "{THREE_NODES}\n[upstream]\nconnect_timeout_ms = 0\npool_size = 0\n[scatter]\nnode_timeout_ms = 0\n"
    ));
    assert_problem(&error, "upstream.connect_timeout_ms", "greater than 0");
    assert_problem(&error, "upstream.pool_size", "greater than 0");
    assert_problem(&error, "scatter.node_timeout_ms", "greater than 0");
}

#[test]
fn restart_is_not_required_for_an_identical_config() {
    assert!(restart_required(&ok(THREE_NODES), &ok(THREE_NODES)).is_empty());
}

#[test]
fn restart_is_not_required_for_hot_keys() {
    let new = ok(&format!(
        "replication_factor = 2\n{THREE_NODES}\n[scatter]\nnode_timeout_ms = 100\n[log]\nlevel = \"debug\"\n"
    ));
    assert!(restart_required(&ok(THREE_NODES), &new).is_empty());
}

#[test]
fn restart_is_required_for_listeners_threads_and_state() {
    let new = ok(&format!(
        "data_dir = \"/elsewhere\"\n{THREE_NODES}\n[server]\nbind = \"0.0.0.0\"\nport = 7701\nthreads = 4\n\
         [metrics]\nport = 9191\n[log]\nformat = \"json\"\n"
    ));
    let keys = restart_required(&ok(THREE_NODES), &new);
    for key in [
        "server.bind",
        "server.port",
        "server.threads",
        "metrics",
        "data_dir",
        "task_store",
        "log.format",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(!keys.contains(&"server.tls"), "{keys:?}");
}

#[test]
fn restart_is_required_when_the_shard_count_changes() {
    let new = ok(&THREE_NODES.replace("shards = 16", "shards = 32"));
    assert_eq!(restart_required(&ok(THREE_NODES), &new), vec!["shards"]);
}

#[test]
fn settings_sync_interval_is_validated_and_the_detector_can_be_disabled() {
    let config =
        ok(&(THREE_NODES.to_owned() + "\n[settings_sync]\nenabled = false\ninterval_ms = 500\n"));
    assert!(!config.settings_sync.enabled);
    assert_eq!(config.settings_sync.interval, Duration::from_millis(500));
    let error = err(&(THREE_NODES.to_owned() + "\n[settings_sync]\ninterval_ms = 0\n"));
    assert_problem(&error, "settings_sync.interval_ms", "greater than 0");
    let error = err(&(THREE_NODES.to_owned() + "\n[settings_sync]\ninterval_ms = 50\n"));
    assert_problem(&error, "settings_sync.interval_ms", "at least 100");
    let error = err(&(THREE_NODES.to_owned() + "\n[settings_sync]\nintervall = \"30s\"\n"));
    assert!(error.to_string().contains("intervall"), "{error}");
}

#[test]
fn handoff_cap_and_interval_are_validated() {
    let config = ok(&(THREE_NODES.to_owned()
        + "\n[handoff]\nmax_bytes_per_node = 4096\nreplay_interval_ms = 100\n"));
    assert_eq!(config.handoff.max_bytes_per_node, 4096);
    assert_eq!(config.handoff.replay_interval, Duration::from_millis(100));
    let error = err(&(THREE_NODES.to_owned() + "\n[handoff]\nmax_bytes_per_node = 0\n"));
    assert_problem(&error, "handoff.max_bytes_per_node", "greater than 0");
    let error = err(&(THREE_NODES.to_owned() + "\n[handoff]\nreplay_interval_ms = 0\n"));
    assert_problem(&error, "handoff.replay_interval_ms", "greater than 0");
    let error = err(&(THREE_NODES.to_owned() + "\n[handoff]\ncap = 1\n"));
    assert!(error.to_string().contains("cap"), "{error}");
}

#[test]
fn anti_entropy_has_production_defaults_and_keeps_deletions_for_two_passes() {
    let config = ok(THREE_NODES);
    let ae = &config.anti_entropy;
    assert!(ae.enabled);
    assert_eq!(ae.interval, Duration::from_secs(600));
    assert_eq!(ae.max_documents_per_second, 2000);
    assert_eq!(ae.deletion_retention, Duration::from_secs(240 * 3600));
    let config = ok(&(THREE_NODES.to_owned()
        + "\n[anti_entropy]\nenabled = false\ninterval_ms = 500\nmax_documents_per_second = 10\ndeletion_retention_hours = 1\n"));
    assert!(!config.anti_entropy.enabled);
    assert_eq!(config.anti_entropy.interval, Duration::from_millis(500));
    let error = err(&(THREE_NODES.to_owned()
        + "\n[anti_entropy]\ninterval_ms = 7200000\ndeletion_retention_hours = 3\n"));
    assert_problem(
        &error,
        "anti_entropy.deletion_retention_hours",
        "two intervals",
    );
    let error = err(&(THREE_NODES.to_owned() + "\n[anti_entropy]\nmax_documents_per_second = 0\n"));
    assert_problem(
        &error,
        "anti_entropy.max_documents_per_second",
        "greater than 0",
    );
}

#[test]
fn node_master_key_without_master_key_is_refused() {
    // An open Miroir acting on secured nodes with their master key: anyone could read every
    // task and change every index through it.
    let error = err(&format!("node_master_key = \"nodes\"\n{THREE_NODES}"));
    assert_problem(&error, "node_master_key", "master_key");
    assert!(!error.to_string().contains("\"nodes\""), "{error}");
    let env = |name: &str| (name == "MIROIR_NODE_MASTER_KEY").then(|| "nodes".to_owned());
    assert!(parse(THREE_NODES, SOURCE, &env).is_err());
}
