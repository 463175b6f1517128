//! Worker processes: the start handshake with the supervisor on the control
//! socket (fd 3), then the role's host. The shared context and control thread
//! are in [`ctx`], the blocking IPC server of the probe and pg_ctl workers in
//! [`ipc_server`]. No worker names a plugin: each hosts what the registry
//! (`crate::plugins`) gives it.
//!
//! Runs in worker processes only, after exec, already under the worker identity.

pub mod ctx;
pub mod http;
pub mod ipc_server;
pub mod no_exec;
pub mod pgctl;
pub mod probe;
pub mod scheduler;
pub mod task;

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tracing::{debug, error, warn};

use crate::ipc::fds::{CONTROL_FD, LISTENER_FD};
use crate::ipc::frame::{read_frame, write_frame};
use crate::ipc::messages::{ToSupervisor, ToWorker};
use crate::ipc::{Role, PROTOCOL};

use ctx::control_loop;
pub use ctx::{wait_for_stop, Event, WorkerCtx};
pub use ipc_server::{serve_ipc, Streaming};

/// Entry point of a worker process; returns its exit status.
pub fn run(role: Role) -> i32 {
    // SAFETY: fd 3 is the control socket by the fd contract (ipc::fds); the
    // supervisor placed it there before exec and nothing else owns it.
    let control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    let sink = crate::logging::init_early(role.as_str());
    // exec through /proc/self/fd/N names the process "N": give `ps -e`,
    // pgrep and killall the agent's name back (the title stays in argv[0]).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            c"temboard-agent".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let expected_parent = std::env::var(crate::ipc::fds::SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    if expected_parent != Some(nix::unistd::getppid().as_raw()) {
        return 1; // the supervisor died before PR_SET_PDEATHSIG took effect
    }
    // Fds 3 and 4 arrived without close-on-exec (that is how they crossed
    // exec); set it now so no command run by a worker inherits them.
    for fd in [CONTROL_FD, LISTENER_FD] {
        // SAFETY: F_GETFD/F_SETFD only change the descriptor flag; an fd that
        // is not open makes fcntl fail harmlessly.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    // Workers share one uid: without this, any of them (or anything else
    // running as the PostgreSQL OS user) could read another's memory through
    // /proc/<pid>/mem or ptrace — the probe worker's holds the PostgreSQL
    // password. Set here, after our exec (which resets it), for every role.
    crate::privileges::forbid_dumping();
    // Only the pg_ctl worker runs programs; the others lose the ability for
    // good (see no_exec).
    if role != Role::Pgctl {
        if let Err(e) = no_exec::forbid_exec() {
            warn!("{e}: this worker could still start programs");
        }
    }
    let mut reader = match control.try_clone() {
        Ok(r) => r,
        Err(e) => {
            error!("control socket unusable: {e}");
            return 1;
        }
    };
    let hello = ToSupervisor::Hello {
        role,
        pid: std::process::id(),
        protocol: PROTOCOL,
    };
    if let Err(e) = write_frame(&mut &control, &hello) {
        error!("cannot greet the supervisor: {e}");
        return 1;
    }
    let _ = reader.set_read_timeout(Some(Duration::from_secs(30)));
    let (generation, settings) = match read_frame::<ToWorker, _>(&mut reader) {
        Ok(ToWorker::Start {
            generation,
            settings,
        }) => (generation, settings),
        Ok(other) => {
            error!("expected a start message, got {other:?}");
            return 1;
        }
        Err(e) => {
            error!("no start message from the supervisor: {e}");
            return 1;
        }
    };
    let _ = reader.set_read_timeout(None);
    sink.reconfigure(&settings.config.logging);
    let (tx, rx) = crossbeam_channel::unbounded();
    let ctx = WorkerCtx::new(role, generation, *settings, control, rx);
    let thread_ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || control_loop(thread_ctx, reader, tx, sink));
    if let Err(e) = spawned {
        error!("cannot start the control thread: {e}");
        return 1;
    }
    if matches!(
        role,
        Role::Http | Role::Scheduler | Role::Pgctl | Role::Task
    ) {
        // Create or migrate the state database before serving, so a broken
        // home is a clear, early error (and a restart with backoff).
        let home = ctx.settings().config.temboard.home.clone();
        if let Err(e) = crate::store::open(&home) {
            error!("{e}");
            return 1;
        }
    }
    debug!("worker started (generation {generation})");
    match role {
        Role::Http => http::run(ctx),
        Role::Scheduler => scheduler::run(ctx),
        Role::Probe => probe::run(ctx),
        Role::Pgctl => pgctl::run(ctx),
        Role::Task => task::run(ctx),
    }
}
