//! Calling the webhooks: each group of tasks that finished together is sent to every
//! webhook as Meilisearch sends a batch, a POST of gzip-compressed NDJSON (one task view per
//! line), once, in the order the tasks finished. A call that fails is logged and counted, not
//! retried, as Meilisearch does.
//!
//! Like Meilisearch, Miroir does not call internal addresses (loopback, private, link-local,
//! unique-local…) unless `webhooks.allowed_ip_networks` lists them: a name is resolved here,
//! every address it resolves to is checked, and the call goes to the checked addresses only.
//! Redirects are not followed, so a webhook cannot bounce a call inward.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ipnet::IpNet;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde_json::Value;
use uuid::Uuid;

use super::registry::Webhook;
use super::Webhooks;
use crate::cluster::Cluster;
use crate::telemetry::metrics;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Delivery {
    cluster: Arc<Cluster>,
    webhooks: Arc<Webhooks>,
}

impl Delivery {
    pub fn new(cluster: Arc<Cluster>, webhooks: Arc<Webhooks>) -> Self {
        Self { cluster, webhooks }
    }
}

#[async_trait]
impl BackgroundService for Delivery {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut finished) = self.webhooks.take_inbox() else {
            return;
        };
        let client = match client(self.cluster.clone()) {
            Ok(client) => client,
            Err(e) => {
                log::error!(target: "miroir::webhooks", "webhooks will not be called: {e}");
                return;
            }
        };
        loop {
            let views = tokio::select! {
                views = finished.recv() => match views {
                    Some(views) => views,
                    None => return,
                },
                _ = shutdown.changed() => return,
            };
            let hooks = self.webhooks.registry.current();
            if hooks.is_empty() {
                continue;
            }
            let body = match ndjson_gzip(&views) {
                Ok(body) => body,
                Err(e) => {
                    log::error!(target: "miroir::webhooks", "could not encode finished tasks: {e}");
                    continue;
                }
            };
            let allowed = &self.cluster.runtime().config.webhooks.allowed_ip_networks;
            let calls = hooks
                .iter()
                .map(|(uuid, hook)| call(&client, allowed, uuid, hook, body.clone()));
            futures::future::join_all(calls).await;
        }
    }
}

/// One call to one webhook; its outcome is logged and counted.
async fn call(
    client: &reqwest::Client,
    allowed: &[IpNet],
    uuid: &Uuid,
    hook: &Webhook,
    body: Bytes,
) {
    let calls = &metrics::get().webhook_calls;
    let url = match reqwest::Url::parse(&hook.url) {
        Ok(url) => url,
        Err(e) => {
            calls.with_label_values(&["failed"]).inc();
            log::warn!(target: "miroir::webhooks", "webhook {uuid}: invalid URL: {e}");
            return;
        }
    };
    // A name is checked by the client's resolver; an address in the URL here.
    let literal = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok());
    if literal.is_some_and(|ip| !reachable(ip, allowed)) {
        calls.with_label_values(&["refused"]).inc();
        log::warn!(target: "miroir::webhooks", "webhook {uuid}: refused to call an internal address (see webhooks.allowed_ip_networks)");
        return;
    }
    let mut request = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .header(http::header::CONTENT_ENCODING, "gzip");
    for (name, value) in &hook.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.body(body).send().await {
        Ok(resp) if resp.status().is_success() => {
            calls.with_label_values(&["delivered"]).inc();
        }
        Ok(resp) => {
            calls.with_label_values(&["failed"]).inc();
            log::warn!(target: "miroir::webhooks", "webhook {uuid}: answered {}", resp.status());
        }
        Err(e) if is_refused(&e) => {
            calls.with_label_values(&["refused"]).inc();
            log::warn!(target: "miroir::webhooks", "webhook {uuid}: refused to call an internal address (see webhooks.allowed_ip_networks)");
        }
        Err(e) => {
            calls.with_label_values(&["failed"]).inc();
            // Without the URL: it may carry a secret.
            log::warn!(target: "miroir::webhooks", "webhook {uuid}: {}", e.without_url());
        }
    }
}

fn ndjson_gzip(views: &[Value]) -> std::io::Result<Bytes> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for view in views {
        serde_json::to_writer(&mut gz, view)?;
        gz.write_all(b"\n")?;
    }
    Ok(gz.finish()?.into())
}

fn client(cluster: Arc<Cluster>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver { cluster }))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .user_agent(concat!("Miroir/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The error a resolver returns when every address of a name is internal.
#[derive(Debug)]
struct InternalAddress;

impl std::fmt::Display for InternalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("every address of this host is internal")
    }
}

impl std::error::Error for InternalAddress {}

fn is_refused(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<InternalAddress>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Resolves names as the system does, keeping only the addresses the policy allows.
struct CheckedResolver {
    cluster: Arc<Cluster>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let rt = cluster.runtime();
            let allowed = &rt.config.webhooks.allowed_ip_networks;
            let kept: Vec<SocketAddr> = found.filter(|a| reachable(a.ip(), allowed)).collect();
            if kept.is_empty() {
                return Err(Box::new(InternalAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether Miroir may call `ip`: a public address, or an internal one in an allowed network.
fn reachable(ip: IpAddr, allowed: &[IpNet]) -> bool {
    !is_internal(ip) || allowed.iter().any(|net| net.contains(&ip))
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
                // Reserved, 240.0.0.0/4.
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local, fc00::/7, and link-local, fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_their_network_is_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!reachable(ip(internal), &[]), "{internal}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "100.128.0.1"] {
            assert!(reachable(ip(public), &[]), "{public}");
        }
        let allowed = ["127.0.0.0/8".parse().unwrap()];
        assert!(reachable(ip("127.0.0.1"), &allowed));
        assert!(!reachable(ip("10.0.0.1"), &allowed));
    }

    #[test]
    fn a_batch_is_gzip_compressed_ndjson_one_task_per_line() {
        use std::io::Read;
        let views = [serde_json::json!({"uid": 1}), serde_json::json!({"uid": 2})];
        let body = ndjson_gzip(&views).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"uid\":1}\n{\"uid\":2}\n");
    }
}
