//! `--daemon`: detach from the terminal, and the pid file.
//!
//! The launching process waits until the detached supervisor says the API
//! answers (or that startup failed), so `temboard-agent -d -p F && curl ...`
//! works and a failed start exits non-zero.

use super::error::SetupError;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::{fork, setsid, ForkResult, Pid};

/// Write end kept by the daemon to report readiness to the launcher.
pub struct Launcher {
    pipe: Option<std::fs::File>,
}

impl Launcher {
    /// Tells the launcher that the API answers.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"R");
        }
    }
}

/// Refuses to start over a live agent's pid file; removes a stale one.
pub fn check_pidfile(path: &Path) -> Result<(), SetupError> {
    let io = |action: &'static str, source: std::io::Error| SetupError::Io {
        action,
        target: path.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read pid file", e)),
    };
    if let Ok(pid) = text.trim().parse::<i32>() {
        if pid > 0 && kill(Pid::from_raw(pid), None).is_ok() {
            return Err(SetupError::PidFileInUse {
                path: path.display().to_string(),
                pid,
            });
        }
    }
    tracing::warn!("removing stale pid file {}", path.display());
    std::fs::remove_file(path).map_err(|e| io("remove stale pid file", e))
}

/// Writes our pid (0644 so monitoring tools can read it).
pub fn write_pidfile(path: &Path) -> Result<PathBuf, SetupError> {
    let tmp = path.with_extension("pid.tmp");
    let io = |p: &Path, source: std::io::Error| SetupError::Io {
        action: "write pid file",
        target: p.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| io(&tmp, e))?;
    writeln!(f, "{}", std::process::id()).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    Ok(path.to_path_buf())
}

/// Detaches: double fork and setsid. Returns in the daemon only; the launcher
/// exits 0 once the daemon reports readiness, 1 if it dies first.
pub fn daemonize() -> Result<Launcher, SetupError> {
    let step = |step: &'static str| {
        move |e: nix::Error| SetupError::Detach {
            step,
            source: e.into(),
        }
    };
    let (r, w) = nix::unistd::pipe().map_err(step("pipe"))?;
    // SAFETY: the supervisor is single-threaded at this point (no runtime, no
    // helper threads), so fork is safe.
    match unsafe { fork() }.map_err(step("fork"))? {
        ForkResult::Parent { .. } => {
            drop(w);
            let mut f = std::fs::File::from(r);
            let mut buf = [0u8; 1];
            let code = match f.read(&mut buf) {
                Ok(1) if buf[0] == b'R' => 0,
                _ => {
                    eprintln!("temboard-agent: the daemon did not start; see its log");
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Child => {}
    }
    drop(r);
    setsid().map_err(step("setsid"))?;
    // SAFETY: still single-threaded.
    match unsafe { fork() }.map_err(step("fork"))? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    std::env::set_current_dir("/").map_err(|source| SetupError::Detach {
        step: "chdir /",
        source,
    })?;
    redirect_std_to_null()?;
    Ok(Launcher {
        pipe: Some(std::fs::File::from(w)),
    })
}

/// A foreground run has no launcher to notify.
pub fn foreground() -> Launcher {
    Launcher { pipe: None }
}

fn redirect_std_to_null() -> Result<(), SetupError> {
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|source| SetupError::Detach {
            step: "/dev/null",
            source,
        })?
        .into();
    for fd in 0..3 {
        // SAFETY: dup2 of a valid fd onto the standard descriptors.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(SetupError::Detach {
                step: "dup2",
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}
