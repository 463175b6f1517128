//! Starting one worker: fork + exec of the agent's own binary with the fixed fd
//! contract of [`crate::ipc::fds`], a clean environment, stdin on /dev/null, its
//! own process group (so a terminal's Ctrl-C reaches only the supervisor), the
//! worker identity, and PR_SET_PDEATHSIG so no worker outlives the supervisor.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::ipc::fds::{CONTROL_FD, LISTENER_FD, ROLE_ENV, SUPERVISOR_PID_ENV};
use crate::ipc::Role;
use crate::privileges::Identity;

use super::listeners::move_high;

/// Variables a worker may see; everything else (notably any `TEMBOARD_*`
/// value such as a password) is dropped.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "RUST_BACKTRACE",
    "JOURNAL_STREAM",
];

/// A started worker process.
pub struct Spawned {
    /// Its pid.
    pub pid: nix::unistd::Pid,
    /// Our end of its control socket.
    pub control: UnixStream,
}

/// Places `src` at `dst` without close-on-exec. Only async-signal-safe calls.
fn place(src: RawFd, dst: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 on fds that are open in this (child) process; src != dst
    // because every source was moved to >= 10 beforehand.
    if unsafe { libc::dup2(src, dst) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Forks and execs a worker of `role`.
pub fn spawn(
    role: Role,
    exe: &OwnedFd,
    listener: Option<&OwnedFd>,
    identity: &Identity,
) -> std::io::Result<Spawned> {
    let (ours, theirs) = UnixStream::pair()?;
    let theirs = move_high(OwnedFd::from(theirs))?;
    let ctl_src = theirs.as_raw_fd();
    let listener_src = listener.map(|l| l.as_raw_fd());
    // Exec through /proc/self/fd so a binary under a directory the worker user
    // cannot traverse still starts after the identity switch.
    let mut cmd = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    cmd.arg0(role.title())
        .env_clear()
        .env(ROLE_ENV, role.as_str())
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .current_dir("/")
        .process_group(0);
    for name in PASSTHROUGH_ENV {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    if identity.switch {
        cmd.uid(identity.uid).gid(identity.gid);
    }
    let no_new_privs = role != Role::Pgctl;
    // SAFETY: the closure runs between fork and exec in the child; it only
    // makes async-signal-safe system calls (dup2, prctl) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            place(ctl_src, CONTROL_FD)?;
            if let Some(l) = listener_src {
                place(l, LISTENER_FD)?;
            }
            // Set after the uid switch (which clears it) and kept across exec.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The pg_ctl worker may have to run sudo-like commands configured
            // by the DBA; every other worker can never gain privileges.
            if no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // We reap with waitpid(-1) ourselves; the Child handle is not needed.
    drop(child);
    ours.set_nonblocking(true)?;
    Ok(Spawned { pid, control: ours })
}
