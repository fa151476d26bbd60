//! `relay`: the fan-out floor. A proxy that does nothing but send each request, byte for
//! byte, to every upstream and answer with the first upstream's body. Nothing is parsed
//! beyond the framing, nothing merged, one thread (as one Miroir worker): what any proxy
//! that fans a search out pays on the machine, the wakeups and copies included. Measured
//! beside Miroir (`bench/real_nodes.sh latency`), the difference is Miroir's own work.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{Conn, Request};
use crate::Args;

/// `relay --listen PORT --upstreams HOST:PORT,...`: serves until killed.
pub fn relay(args: Args) -> Result<(), String> {
    let port: u16 = args.num("listen", 0)?;
    let upstreams: Vec<String> = args
        .get("upstreams")
        .ok_or("--upstreams is required")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("port {port}: {e}"))?;
        loop {
            let (client, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let upstreams = upstreams.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(client, &upstreams).await {
                    if e.kind() != io::ErrorKind::UnexpectedEof {
                        eprintln!("relay: {e}");
                    }
                }
            });
        }
    })
}

/// One client connection, with its own keep-alive connection to every upstream.
async fn serve(mut client: TcpStream, upstreams: &[String]) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut conns = Vec::with_capacity(upstreams.len());
    for addr in upstreams {
        conns.push(Conn::connect(addr).await?);
    }
    let mut bodies = vec![Vec::new(); conns.len()];
    let mut pending = Vec::new();
    let mut out = Vec::new();
    loop {
        let request = Request {
            bytes: read_request(&mut client, &mut pending).await?,
        };
        let sends = conns
            .iter_mut()
            .zip(bodies.iter_mut())
            .map(|(conn, body)| conn.send(&request, body));
        let statuses = futures::future::try_join_all(sends).await?;
        let (status, body) = (statuses[0], &bodies[0]);
        out.clear();
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status} \r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
        client.write_all(&out).await?;
    }
}

/// The next request's bytes (head and `Content-Length` body); what follows stays in `pending`.
async fn read_request(client: &mut TcpStream, pending: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(head_end) = memchr::memmem::find(pending, b"\r\n\r\n") {
            let total = head_end + 4 + content_length(&pending[..head_end])?;
            if pending.len() >= total {
                let rest = pending.split_off(total);
                return Ok(std::mem::replace(pending, rest));
            }
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &[u8]) -> io::Result<usize> {
    let head = std::str::from_utf8(head)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a request head not UTF-8"))?;
    Ok(head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_split_by_their_length_and_keep_what_follows() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let two = b"POST /a HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}GET /b HTTP/1.1\r\n\r\n";
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // In two pieces, the first ending inside the first head.
            s.write_all(&two[..10]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            s.write_all(&two[10..]).await.unwrap();
            s
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let mut pending = Vec::new();
        let first = read_request(&mut server, &mut pending).await.unwrap();
        assert_eq!(first, b"POST /a HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}");
        let second = read_request(&mut server, &mut pending).await.unwrap();
        assert_eq!(second, b"GET /b HTTP/1.1\r\n\r\n");
        assert!(pending.is_empty());
        drop(writer.await.unwrap());
        let eof = read_request(&mut server, &mut pending).await.unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
    }
}
