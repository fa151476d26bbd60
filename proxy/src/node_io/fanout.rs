//! Requests any node, or every node, can answer: `every` (in parallel), `any` (the first
//! answer, hedged on another node when one is slow or fails), `one` (round-robin, the next
//! node when one fails) and `in_order` (the nodes in configuration order).

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use miroir_filters::error::{Code, MiroirError};

use crate::cluster::{Cluster, Runtime};
use crate::upstream::{NodeRequest, NodeResponse, NodeResult};

fn no_answer() -> MiroirError {
    MiroirError::new(Code::NoNodeAvailable, "No Meilisearch node answered.")
}

/// Sends `req` to every node of `rt` in parallel; the results in node order.
pub async fn every(
    cluster: &Cluster,
    rt: &Runtime,
    req: NodeRequest<'_>,
    timeout: Duration,
) -> Vec<NodeResult> {
    let sends = rt
        .nodes
        .iter()
        .map(|node| cluster.client.send(node, &req, timeout));
    futures::future::join_all(sends).await
}

/// A read any node can answer: the first answer that is not a server error. The next healthy
/// node is asked too when one fails, or is slower than the hedge delay (a hanging node must
/// not hold the read until the node timeout).
pub async fn any(
    cluster: &Cluster,
    rt: &Runtime,
    path: &str,
    auth: Option<&str>,
) -> Result<NodeResponse, MiroirError> {
    let hedge_after = rt
        .config
        .scatter
        .hedge_after_floor
        .max(Duration::from_millis(50));
    let req = NodeRequest::get(path, auth);
    let send = |i: usize| {
        let req = &req;
        async move {
            let result = cluster
                .client
                .send(&rt.nodes[i], req, rt.config.scatter.node_timeout)
                .await;
            cluster.observe(
                rt,
                &rt.nodes[i].id,
                matches!(&result, Ok(r) if r.judged()),
                false,
            );
            result
        }
    };
    let mut tried = Vec::new();
    let mut pending = FuturesUnordered::new();
    loop {
        let next = cluster.pick_node(rt, &tried);
        if let Some(i) = next {
            tried.push(i);
            pending.push(send(i));
        } else if pending.is_empty() {
            break;
        }
        let more = next.is_some() && tried.len() < rt.nodes.len();
        tokio::select! {
            answer = pending.next() => match answer {
                Some(Ok(resp)) if resp.judged() => return Ok(resp),
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep(hedge_after), if more => {}
        }
    }
    Err(no_answer())
}

/// `req` to one node (round-robin over healthy ones), then to the next while they fail: the
/// first answer that is not a server error.
pub async fn one(
    cluster: &Cluster,
    rt: &Runtime,
    req: &NodeRequest<'_>,
) -> Result<NodeResponse, MiroirError> {
    let mut tried = Vec::new();
    while let Some(i) = cluster.pick_node(rt, &tried) {
        tried.push(i);
        if let Ok(resp) = cluster
            .client
            .send(&rt.nodes[i], req, rt.config.scatter.node_timeout)
            .await
        {
            if resp.status < 500 {
                return Ok(resp);
            }
        }
    }
    Err(no_answer())
}

/// `req` to the nodes in configuration order until one gives an answer `accept` takes: the
/// node's position and its answer. For reads that must come from the same node each time.
/// Nodes that serve reads come first: one still catching up on what it missed (a key
/// revoked while it was down) answers only when no other does.
pub async fn in_order(
    cluster: &Cluster,
    rt: &Runtime,
    req: &NodeRequest<'_>,
    accept: impl Fn(&NodeResponse) -> bool,
) -> Option<(usize, NodeResponse)> {
    let (serving, behind): (Vec<usize>, Vec<usize>) =
        (0..rt.nodes.len()).partition(|&i| cluster.is_healthy(&rt.nodes[i].id));
    for i in serving.into_iter().chain(behind) {
        let node = &rt.nodes[i];
        if let Ok(resp) = cluster
            .client
            .send(node, req, rt.config.scatter.node_timeout)
            .await
        {
            if accept(&resp) {
                return Some((i, resp));
            }
        }
    }
    None
}
