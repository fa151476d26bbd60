//! A minimal HTTP/1.1 keep-alive client: just enough to send fixed requests fast and read
//! `Content-Length` or chunked answers, so the generator measures the server, not itself.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Conn {
    stream: BufReader<TcpStream>,
}

pub struct Request {
    /// The full request bytes, prepared once.
    pub bytes: Vec<u8>,
}

impl Request {
    pub fn new(
        method: &str,
        host: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Self {
        let mut s = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        if let Some(key) = key {
            s.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "POST" || method == "PUT" || method == "PATCH" {
            s.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        s.push_str("\r\n");
        s.push_str(body);
        Self {
            bytes: s.into_bytes(),
        }
    }
}

impl Conn {
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads the whole response; returns the status code.
    pub async fn send(&mut self, req: &Request, body: &mut Vec<u8>) -> io::Result<u16> {
        self.stream.get_mut().write_all(&req.bytes).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {line:?}"),
                )
            })?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        body.clear();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                let start = body.len();
                body.resize(start + size + 2, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                body.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.stream.read_exact(body).await?;
        }
        Ok(status)
    }
}
