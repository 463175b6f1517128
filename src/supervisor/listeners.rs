//! Listening sockets owned by the supervisor and inherited by each incarnation of
//! a worker, so a worker restart never refuses a connection: clients wait in the
//! backlog until the new worker accepts.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6,
};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::error::SetupError;
use crate::privileges::{ActingAs, Identity};

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
pub fn bind_tcp(address: IpAddr, port: u16) -> Result<OwnedFd, SetupError> {
    let shown = SocketAddr::new(address, port);
    let fail = |action: &'static str, source: nix::Error| SetupError::Sys {
        action,
        target: shown.to_string(),
        source,
    };
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
    move_high(fd).map_err(|source| SetupError::Io {
        action: "move the descriptor of",
        target: format!("the listener on {shown}"),
        source,
    })
}

/// Creates `<home>/run/` (0700, owned by the worker user) and returns it open.
///
/// Why this shape: the worker user owns the home, so it can plant a link at
/// `run`. Everything here happens with that user's file-system identity
/// ([`ActingAs`]), `run` is opened with `O_NOFOLLOW | O_DIRECTORY` and
/// checked through the opened descriptor, and later steps (lock, sockets)
/// work relative to that descriptor: the supervisor never acts on a path the
/// worker user could redirect.
pub fn prepare_run_dir(run_dir: &Path, identity: &Identity) -> Result<OwnedFd, SetupError> {
    let shown = run_dir.display().to_string();
    let sys = |action: &'static str, source: nix::Error| SetupError::Sys {
        action,
        target: shown.clone(),
        source,
    };
    let _as = ActingAs::worker(identity).map_err(SetupError::Identity)?;
    match nix::unistd::mkdir(run_dir, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(sys("create", e)),
    }
    let fd = nix::fcntl::open(
        run_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // With O_DIRECTORY a link gives ENOTDIR; tell which it is.
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR
            if std::fs::symlink_metadata(run_dir).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            SetupError::RunDirLink(shown.clone())
        }
        nix::errno::Errno::ENOTDIR => SetupError::RunDirNotDirectory(shown.clone()),
        e => sys("open", e),
    })?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| sys("stat", e))?;
    let expected = if identity.switch {
        identity.uid
    } else {
        nix::unistd::geteuid().as_raw()
    };
    if st.st_uid != expected {
        return Err(SetupError::RunDirOwner {
            path: shown,
            owner: st.st_uid,
            user: identity.name.clone(),
            expected,
        });
    }
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(|e| sys("chmod", e))?;
    move_high(fd).map_err(|source| SetupError::Io {
        action: "move the descriptor of",
        target: shown.clone(),
        source,
    })
}

/// A path naming `name` inside the directory open at `dir`, whatever has
/// since been renamed or linked in its place.
fn inside(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// Creates and takes the lock file `supervisor.lock` inside the run directory.
pub fn take_lock(
    run: &OwnedFd,
    run_dir: &Path,
    identity: &Identity,
) -> Result<nix::fcntl::Flock<std::fs::File>, SetupError> {
    let path = run_dir.join("supervisor.lock");
    let fd = {
        let _as = ActingAs::worker(identity).map_err(SetupError::Identity)?;
        nix::fcntl::openat(
            run,
            "supervisor.lock",
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|source| SetupError::Sys {
            action: "open",
            target: path.display().to_string(),
            source,
        })?
    };
    nix::fcntl::Flock::lock(
        std::fs::File::from(fd),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, source)| SetupError::Locked {
        home: run_dir
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        source,
    })
}

/// Binds `<run_dir>/<name>.sock` (0600, owned by the worker user), inside
/// the run directory opened by [`prepare_run_dir`].
pub fn bind_unix(
    run: &OwnedFd,
    run_dir: &Path,
    name: &str,
    identity: &Identity,
) -> Result<(OwnedFd, PathBuf), SetupError> {
    let file = format!("{name}.sock");
    let path = run_dir.join(&file);
    let _as = ActingAs::worker(identity).map_err(SetupError::Identity)?;
    match nix::unistd::unlinkat(run, file.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(SetupError::Sys {
                action: "remove stale",
                target: path.display().to_string(),
                source,
            })
        }
    }
    // The socket file takes its mode from the umask at bind time.
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(inside(run, &file));
    nix::sys::stat::umask(old);
    let io = |action: &'static str, source: std::io::Error| SetupError::Io {
        action,
        target: path.display().to_string(),
        source,
    };
    let l = bound.map_err(|e| io("bind", e))?;
    let fd = move_high(OwnedFd::from(l)).map_err(|e| io("move the descriptor of", e))?;
    Ok((fd, path))
}

/// Removes the sockets at exit, relative to the run directory.
pub fn remove_socket(run: &OwnedFd, name: &str, identity: &Identity) {
    if let Ok(_as) = ActingAs::worker(identity) {
        let _ = nix::unistd::unlinkat(
            run,
            format!("{name}.sock").as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}
