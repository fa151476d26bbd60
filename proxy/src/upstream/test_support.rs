//! Connections for the unit tests of this module's I/O.

use pingora_core::protocols::Stream;
use tokio::net::{TcpListener, TcpStream};

/// A connection as Miroir holds one to a node, and the node's end of it.
pub async fn pair(listener: &TcpListener) -> (Stream, TcpStream) {
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let client = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
    let client: pingora_core::protocols::l4::stream::Stream = client.into();
    (Box::new(client), server)
}

/// `n` such pairs.
pub async fn pairs(listener: &TcpListener, n: usize) -> Vec<(Stream, TcpStream)> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(pair(listener).await);
    }
    all
}
