//! `--daemon`: the process detaches before anything else starts (no thread exists yet), and
//! the parent exits only once the child has written its pid file. Done here rather than by
//! Pingora so that an upgrading process writes its pid file at once, before it waits for the
//! old process to leave: systemd follows a forking service to the pid in its pid file when
//! the old main process exits, and the file must already name the new one by then.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;

/// Forks; returns in the child (detached, pid file written). The parent exits: 0 once the
/// child is ready, 1 if it could not write the pid file.
pub fn detach(pid_file: &Path) -> Result<(), String> {
    let mut fds = [0i32; 2];
    // SAFETY: plain syscalls on a process with a single thread; the fds are owned below.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the fds come from pipe() above and are owned by exactly one File each.
    let (mut ready_rx, mut ready_tx) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: no other thread exists yet (called before logging threads, runtimes or stores).
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(ready_rx);
            // SAFETY: detaches from the terminal's session; cannot fail in a fresh child.
            unsafe { libc::setsid() };
            let written = std::fs::write(pid_file, format!("{}\n", std::process::id()));
            let byte = if written.is_ok() { b"1" } else { b"0" };
            let _ = ready_tx.write_all(byte);
            written.map_err(|e| format!("cannot write {}: {e}", pid_file.display()))
        }
        _ => {
            drop(ready_tx);
            let mut byte = [0u8; 1];
            let ok = ready_rx.read_exact(&mut byte).is_ok() && byte[0] == b'1';
            std::process::exit(if ok { 0 } else { 1 })
        }
    }
}
