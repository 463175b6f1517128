//! Reading the small files a privileged process trusts (the UI's public
//! key, the TLS certificate and key): regular files only, of a bounded size,
//! opened without blocking.
//!
//! Why: the supervisor may run as root and reads these at start and at each
//! SIGHUP. A plain read of a FIFO planted at the path hangs it (no reload,
//! no signal handled); `/dev/zero` exhausts its memory. Opening with
//! `O_NONBLOCK` returns at once whatever the file is, `fstat` on the opened
//! descriptor (not the path, which may change in between) refuses anything
//! but a regular file, and the read stops at the cap.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

/// Largest file read: PEM keys and certificate chains are a few KiB.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Refused (`O_NOFOLLOW`): for a file nobody should link.
    Refuse,
    /// Followed: certificates are often links (`/etc/letsencrypt/live/`).
    Follow,
}

/// Reads `path` as text: a regular file of at most [`MAX_SIZE`] bytes.
pub fn read(path: &Path, links: Links) -> std::io::Result<String> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    if links == Links::Refuse {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd: OwnedFd = open(path, flags, Mode::empty()).map_err(|e| match e {
        nix::errno::Errno::ELOOP => std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a symbolic link: name the file itself",
        ),
        other => std::io::Error::from(other),
    })?;
    let st = fstat(&fd).map_err(std::io::Error::from)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is not a regular file",
        ));
    }
    if st.st_size as u64 > MAX_SIZE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is larger than {} KiB", MAX_SIZE / 1024),
        ));
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_SIZE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SIZE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is larger than {} KiB", MAX_SIZE / 1024),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_links_and_large_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(&file, "PEM").unwrap();
        assert_eq!(read(&file, Links::Refuse).unwrap(), "PEM");
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let e = read(&link, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(read(&link, Links::Follow).unwrap(), "PEM");
        // A FIFO nobody writes to: refused without blocking.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::S_IRWXU).unwrap();
        let e = read(&fifo, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read(Path::new("/dev/zero"), Links::Follow).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_SIZE as usize + 1]).unwrap();
        let e = read(&big, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
