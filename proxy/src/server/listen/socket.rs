//! The listening sockets. Each lives in Pingora's fd table under its address, as Pingora's
//! own listeners do: a graceful upgrade sends the table to the next process, which takes its
//! sockets from there instead of binding (so no connection is refused in between).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

use pingora_core::server::ListenFds;
use socket2::{Domain, Protocol, Socket, Type};

/// Connections waiting to be accepted (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 65_535;
/// A previous process may still hold the address for a moment (a restart, not an upgrade).
const BIND_TRIES: usize = 30;
const BIND_RETRY: Duration = Duration::from_secs(1);

/// The socket listening on `addr`: the one a previous process handed over, else a new one,
/// recorded for the next upgrade. Non-blocking, ready to be registered with a runtime.
pub async fn open(addr: &str, fds: Option<&ListenFds>) -> Result<TcpListener, String> {
    let inherited = fds.and_then(|table| table.lock().get(addr).copied());
    let socket = match inherited {
        // SAFETY: the descriptor arrived from the previous process over the upgrade socket.
        // Nothing else in this process owns it: Pingora's table only keeps its number to
        // hand it on, and no other listener of this process is configured on this address.
        Some(fd) => unsafe { Socket::from_raw_fd(fd) },
        None => bind(addr).await?,
    };
    // Listening again on a listening socket only updates its backlog (Linux).
    socket
        .listen(BACKLOG)
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let listener = TcpListener::from(socket);
    if inherited.is_none() {
        if let Some(table) = fds {
            table.lock().add(addr.to_owned(), listener.as_raw_fd());
        }
    }
    Ok(listener)
}

async fn bind(addr: &str) -> Result<Socket, String> {
    let at: SocketAddr = addr
        .parse()
        .map_err(|e| format!("invalid listen address {addr}: {e}"))?;
    let mut tries = 0;
    loop {
        match try_bind(at) {
            Ok(socket) => return Ok(socket),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries + 1 < BIND_TRIES => {
                tries += 1;
                log::warn!(target: "miroir::server", "{addr} is in use, trying again");
                tokio::time::sleep(BIND_RETRY).await;
            }
            Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
        }
    }
}

fn try_bind(at: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
    // A restart binds while the old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&at.into())?;
    Ok(socket)
}
