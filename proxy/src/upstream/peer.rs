//! One node as Miroir connects to it: an `HttpPeer` prepared once per configuration version,
//! with the `Host` header the node expects.

use std::net::SocketAddr;
use std::time::Duration;

use miroir_conf::{Node, Scheme, Upstream};
use miroir_filters::routing::NodeId;
use pingora_core::upstreams::peer::{HttpPeer, Peer};

pub struct NodePeer {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub group: u32,
    pub host_header: String,
    pub peer: HttpPeer,
    pub idle_timeout: Duration,
    /// Which idle connections may carry this peer's requests (address, TLS and name).
    pub pool_key: u64,
}

impl NodePeer {
    pub fn new(node: &Node, upstream: &Upstream) -> Self {
        let addr = node.address.socket;
        let tls = node.address.scheme == Scheme::Https;
        let mut peer = HttpPeer::new(addr, tls, node.address.host.clone());
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        peer.options.read_timeout = Some(upstream.read_timeout);
        peer.options.idle_timeout = Some(upstream.idle_timeout);
        Self {
            pool_key: peer.reuse_hash(),
            id: node.id.clone(),
            addr,
            group: node.group.0,
            host_header: node.address.authority(),
            peer,
            idle_timeout: upstream.idle_timeout,
        }
    }
}
