//! A client connection as Pingora's HTTP sessions see it: the accepted socket with a write
//! buffer in front, so an answer's head and a body that fits leave in one segment (Pingora
//! writes the head, then the body, then flushes). Everything else is the socket's.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

/// The write buffer: a 20-hit search answer and its head fit (Pingora's own default is one
/// MSS, so the head would go alone).
const WRITE_BUFFER: usize = 32 * 1024;

#[derive(Debug)]
pub struct ClientConn(BufWriter<L4Stream>);

impl ClientConn {
    pub fn new(socket: L4Stream) -> Self {
        Self(BufWriter::with_capacity(WRITE_BUFFER, socket))
    }

    fn socket(&self) -> &L4Stream {
        self.0.get_ref()
    }
}

impl AsyncRead for ClientConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for ClientConn {
    async fn shutdown(&mut self) {
        // What is still buffered goes first; a peer already gone has nothing to receive.
        let _ = self.0.flush().await;
        Shutdown::shutdown(self.0.get_mut()).await;
    }
}

impl UniqueID for ClientConn {
    fn id(&self) -> UniqueIDType {
        self.socket().id()
    }
}

impl Ssl for ClientConn {}

impl GetTimingDigest for ClientConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.socket().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.socket().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.socket().get_write_pending_time()
    }
}

impl GetProxyDigest for ClientConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.socket().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.0.get_mut().set_proxy_digest(digest);
    }
}

impl GetSocketDigest for ClientConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.0.get_mut().set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for ClientConn {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        // Reads are not buffered here, so the socket's next bytes are the client's.
        self.0.get_mut().try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (ClientConn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (ClientConn::new(L4Stream::from(server)), client)
    }

    #[tokio::test]
    async fn an_answers_parts_leave_together_at_the_flush() {
        let (mut conn, mut client) = pair().await;
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
            .await
            .expect("head");
        conn.write_all(b"body").await.expect("body");
        // A loopback send is in the peer's queue when it returns: nothing was sent yet.
        let mut buf = [0u8; 128];
        assert_eq!(
            client.try_read(&mut buf).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        conn.flush().await.expect("flush");
        let n = client.read(&mut buf).await.expect("read");
        assert_eq!(
            &buf[..n],
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody".as_slice()
        );
    }

    #[tokio::test]
    async fn a_shutdown_sends_what_is_buffered_first() {
        let (mut conn, mut client) = pair().await;
        conn.write_all(b"last words").await.expect("write");
        Shutdown::shutdown(&mut conn).await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read to the end");
        assert_eq!(got, b"last words");
    }
}
