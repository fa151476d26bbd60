//! A TCP relay between Miroir and one node that can drop a connection after a whole request
//! went through: the failure a write's sender cannot read (was it applied?). It reads the
//! HTTP/1.1 requests it forwards (head and `Content-Length` body) to know where one ends;
//! answers are copied as they come.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What happens to the request that is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Forwarded whole; the node's answer is dropped with the connection (the node applied it).
    AfterAnswer,
    /// Taken whole from the sender and never forwarded (the node never saw it).
    Swallow,
}

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path_prefix: String,
    mode: CutMode,
}

#[derive(Default)]
struct State {
    rule: Mutex<Option<Rule>>,
    cuts: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl State {
    /// The armed rule, taken (it fires once) when `method path` matches it.
    fn take(&self, method: &str, path: &str) -> Option<CutMode> {
        let mut rule = self.rule.lock().unwrap_or_else(|p| p.into_inner());
        let hit = rule
            .as_ref()
            .is_some_and(|r| r.method == method && path.starts_with(&r.path_prefix));
        if !hit {
            return None;
        }
        self.cuts.fetch_add(1, Ordering::Relaxed);
        rule.take().map(|r| r.mode)
    }
}

/// A relay listening on 127.0.0.1; stopped (with its connections) on drop.
pub struct Relay {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Relay {
    /// Relays connections to `target` (`host:port`).
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let conn = tokio::spawn(relay(client, target, shared.clone()));
                shared
                    .tasks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn.abort_handle());
            }
        });
        state
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(accept.abort_handle());
        Ok(Relay { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `method` request whose path starts with `path_prefix` is cut (once).
    pub fn cut_next(&self, method: &str, path_prefix: &str, mode: CutMode) {
        *self.state.rule.lock().unwrap_or_else(|p| p.into_inner()) = Some(Rule {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            mode,
        });
    }

    /// Requests cut so far.
    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in self
            .state
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// One connection: requests forwarded one by one, answers copied, both sockets dropped when
/// a request is cut.
async fn relay(client: TcpStream, target: SocketAddr, state: Arc<State>) {
    let Ok(node) = TcpStream::connect(target).await else {
        return;
    };
    let _ = (client.set_nodelay(true), node.set_nodelay(true));
    let (from_client, to_client) = client.into_split();
    let (from_node, to_node) = node.into_split();
    // Set once the request to cut went to the node: its answer is not passed on.
    let cutting = Arc::new(AtomicBool::new(false));
    tokio::select! {
        _ = requests(from_client, to_node, &state, &cutting) => {}
        _ = answers(from_node, to_client, &cutting) => {}
    }
}

async fn requests(
    from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    state: &State,
    cutting: &AtomicBool,
) -> std::io::Result<()> {
    let mut from = BufReader::new(from);
    loop {
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let start = head.len();
            if from.read_until(b'\n', &mut head).await? == 0 {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&head[start..]).to_ascii_lowercase();
            if let Some(v) = line.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        from.read_exact(&mut body).await?;
        let first = String::from_utf8_lossy(&head);
        let mut words = first.split(' ');
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        match state.take(method, path) {
            Some(CutMode::Swallow) => return Ok(()),
            Some(CutMode::AfterAnswer) => cutting.store(true, Ordering::SeqCst),
            None => {}
        }
        to.write_all(&head).await?;
        to.write_all(&body).await?;
    }
}

async fn answers(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    cutting: &AtomicBool,
) -> std::io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 || cutting.load(Ordering::SeqCst) {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}
