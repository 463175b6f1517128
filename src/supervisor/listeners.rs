//! Listening sockets owned by the supervisor and inherited by each incarnation of
//! a worker, so a worker restart never refuses a connection: clients wait in the
//! backlog until the new worker accepts.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6,
};

use crate::privileges::Identity;

/// Lowest fd number for the supervisor's long-lived descriptors, so that
/// placing them at the fixed worker fds (3, 4) can never clobber one another.
const HIGH_FD: RawFd = 10;

/// Moves `fd` to a number >= 10, close-on-exec.
pub fn move_high(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor returned by fcntl above.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Binds the API's TCP listener with a deep backlog.
pub fn bind_tcp(address: IpAddr, port: u16) -> Result<OwnedFd, String> {
    let shown = SocketAddr::new(address, port);
    let fail = |what: &str, e: nix::Error| format!("cannot {what} {shown}: {e}");
    let family = if address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| fail("create socket for", e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| fail("set SO_REUSEADDR on", e))?;
    match shown {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    }
    .map_err(|e| fail("bind", e))?;
    listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| fail("listen on", e))?;
    move_high(fd).map_err(|e| format!("cannot move listener fd: {e}"))
}

/// Creates `<home>/run/` (0700, owned by the worker user).
pub fn prepare_run_dir(run_dir: &Path, identity: &Identity) -> Result<(), String> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot chmod {}: {e}", run_dir.display()))?;
    chown(run_dir, identity)
}

fn chown(path: &Path, identity: &Identity) -> Result<(), String> {
    if identity.switch {
        std::os::unix::fs::chown(path, Some(identity.uid), Some(identity.gid))
            .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Binds `<run_dir>/<name>.sock` (0600, owned by the worker user).
pub fn bind_unix(
    run_dir: &Path,
    name: &str,
    identity: &Identity,
) -> Result<(OwnedFd, PathBuf), String> {
    let path = run_dir.join(format!("{name}.sock"));
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove stale {}: {e}", path.display())),
    }
    let l =
        UnixListener::bind(&path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    chown(&path, identity)?;
    let fd = move_high(OwnedFd::from(l)).map_err(|e| format!("cannot move listener fd: {e}"))?;
    Ok((fd, path))
}
