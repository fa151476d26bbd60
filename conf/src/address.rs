//! Node URLs and listen addresses: parsing, and name resolution at load time only.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::config::Scheme;

/// Resolves a host and port to one socket address, or says why it cannot.
pub type Resolve<'a> = &'a dyn Fn(&str, u16) -> Result<SocketAddr, String>;

/// The system resolver. IP literals never touch DNS.
pub fn system_resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("host {host:?} resolves to no address"))
}

/// A node as a topology change names it (id, URL, group), resolved like a node of the file.
pub fn resolve_node(
    id: &str,
    url: &str,
    group: u32,
    resolve: Resolve<'_>,
) -> Result<crate::config::Node, String> {
    let id = miroir_filters::routing::NodeId::new(id).map_err(|e| e.to_string())?;
    let parsed = parse_node_url(url)?;
    let socket = resolve(parsed.host, parsed.port)?;
    Ok(crate::config::Node {
        id,
        address: crate::config::NodeAddress {
            scheme: parsed.scheme,
            host: parsed.host.to_owned(),
            port: parsed.port,
            socket,
        },
        group: miroir_filters::routing::GroupId(group),
    })
}

/// A node URL split into its parts: `http[s]://host[:port][/]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NodeUrl<'a> {
    pub scheme: Scheme,
    pub host: &'a str,
    pub port: u16,
}

pub(crate) fn parse_node_url(url: &str) -> Result<NodeUrl<'_>, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(format!("{url:?} must not have a path or query"));
    }
    if authority.contains('@') {
        return Err(format!(
            "{url:?} must not carry credentials; nodes authenticate with node_master_key"
        ));
    }
    let default_port = match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let (host, port) = split_host_port(authority).map_err(|reason| format!("{url:?}: {reason}"))?;
    let port = match port {
        None => default_port,
        Some(port) => parse_port(port).map_err(|reason| format!("{url:?}: {reason}"))?,
    };
    Ok(NodeUrl { scheme, host, port })
}

/// Splits `host:port`, `host`, `[v6]:port` or `[v6]`; the host comes back without brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("unclosed '[' in IPv6 address")?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("unexpected text after ']'")?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) => Err("port must not be 0".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("invalid port {port:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_url_keeps_scheme_host_and_port() {
        let url = parse_node_url("https://meili-0.internal:7700/").unwrap();
        assert_eq!(
            url,
            NodeUrl {
                scheme: Scheme::Https,
                host: "meili-0.internal",
                port: 7700
            }
        );
    }

    #[test]
    fn node_url_without_port_uses_the_scheme_default() {
        assert_eq!(parse_node_url("http://10.0.0.1").unwrap().port, 80);
        assert_eq!(parse_node_url("https://10.0.0.1").unwrap().port, 443);
    }

    #[test]
    fn node_url_accepts_bracketed_ipv6() {
        let url = parse_node_url("http://[::1]:7700").unwrap();
        assert_eq!((url.host, url.port), ("::1", 7700));
    }

    #[test]
    fn node_url_rejects_what_is_not_a_bare_origin() {
        for bad in [
            "10.0.0.1:7700",
            "ftp://10.0.0.1",
            "http://10.0.0.1:7700/indexes",
            "http://user:pw@10.0.0.1:7700",
            "http://10.0.0.1:0",
            "http://10.0.0.1:99999",
            "http://:7700",
            "http://[::1",
        ] {
            assert!(parse_node_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn ip_literals_resolve_without_dns() {
        assert_eq!(
            system_resolve("10.1.2.3", 7700).unwrap(),
            "10.1.2.3:7700".parse().unwrap()
        );
    }
}
