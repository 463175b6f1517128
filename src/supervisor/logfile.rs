//! The log file, as a root supervisor may prepare it for workers that run as
//! another user, without ever being turned against its host.
//!
//! The rule: the file is opened with the worker user's file-system identity
//! (so a link or a file that user could not write is refused by the kernel).
//! Only when that user cannot *create* it — the usual `/var/log/...`
//! directory owned by root — does the supervisor create a brand-new file
//! (`O_EXCL`, no link followed anywhere in the path) and hand it over with
//! `fchown` on the opened descriptor. An existing file is never chowned: a
//! configuration pointing at `/etc/shadow` gets a refusal, not a new owner.

use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::stat::Mode;

use super::error::SetupError;
use crate::privileges::{ActingAs, Identity};

/// Makes sure the worker user can append to `path`; says why not otherwise.
pub fn prepare(path: &Path, identity: &Identity) -> Result<(), SetupError> {
    let shown = path.display().to_string();
    let user = identity.name.clone();
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let first = {
        let _as = ActingAs::worker(identity).map_err(SetupError::Identity)?;
        nix::fcntl::open(path, flags, Mode::from_bits_truncate(0o600))
    };
    match first {
        Ok(_) => return Ok(()),
        Err(Errno::EACCES) if identity.switch => {}
        Err(Errno::ELOOP) => return Err(SetupError::LogFileLink(shown)),
        Err(source) => {
            return Err(SetupError::LogFileOpen {
                path: shown,
                user,
                source,
            })
        }
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(SetupError::NotAFilePath(shown));
    };
    let how = nix::fcntl::OpenHow::new()
        .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let dir = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, parent, how).map_err(|source| {
        SetupError::LogDirectory {
            path: shown.clone(),
            user: user.clone(),
            source,
        }
    })?;
    let st = nix::sys::stat::fstat(&dir).map_err(|source| SetupError::Sys {
        action: "stat",
        target: parent.display().to_string(),
        source,
    })?;
    let writable_by_worker = st.st_uid == identity.uid
        || (st.st_gid == identity.gid && st.st_mode & 0o020 != 0)
        || st.st_mode & 0o002 != 0;
    if writable_by_worker {
        // It could have planted what we would open; it can create the file
        // itself, so the first attempt failing means something is off.
        return Err(SetupError::LogFileDenied { path: shown, user });
    }
    let fd = nix::fcntl::openat(
        &dir,
        name,
        flags | OFlag::O_EXCL,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| match e {
        Errno::EEXIST => SetupError::LogFileForeign {
            path: shown.clone(),
            user: user.clone(),
        },
        source => SetupError::Sys {
            action: "create",
            target: shown.clone(),
            source,
        },
    })?;
    nix::unistd::fchown(
        fd.as_fd(),
        Some(nix::unistd::Uid::from_raw(identity.uid)),
        Some(nix::unistd::Gid::from_raw(identity.gid)),
    )
    .map_err(|source| SetupError::LogFileHandOver {
        path: shown,
        user,
        source,
    })
}
