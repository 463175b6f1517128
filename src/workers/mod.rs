//! What every worker process shares: the start handshake with the supervisor on
//! the control socket (fd 3), the control thread that applies reloads and stop
//! requests, and the blocking IPC server used by the probe and pg_ctl workers.
//!
//! Runs in worker processes only, after exec, already under the worker identity.

pub mod http;
pub mod no_exec;
pub mod pgctl;
pub mod probe;
pub mod scheduler;

use std::os::fd::FromRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, error, info, warn};

use crate::ipc::fds::{CONTROL_FD, LISTENER_FD};
use crate::ipc::frame::{read_frame, write_frame};
use crate::ipc::messages::{
    Request, Response, ToSupervisor, ToWorker, WorkerError, WorkerSettings,
};
use crate::ipc::{IpcError, Role, PROTOCOL};

/// Events the control thread hands to the role's main loop.
#[derive(Debug, Clone)]
pub enum Event {
    /// New settings are in force (already stored in the context).
    Reloaded,
    /// Finish and exit 0.
    Stop,
}

/// Shared state of a worker process.
#[derive(Clone)]
pub struct WorkerCtx {
    /// This worker's role.
    pub role: Role,
    settings: Arc<RwLock<Arc<WorkerSettings>>>,
    generation: Arc<AtomicU64>,
    control: Arc<Mutex<UnixStream>>,
    supervision: Arc<RwLock<crate::ipc::messages::Supervision>>,
    /// Reload and stop notifications.
    pub events: Receiver<Event>,
}

impl WorkerCtx {
    /// The settings in force now.
    pub fn settings(&self) -> Arc<WorkerSettings> {
        match self.settings.read() {
            Ok(s) => Arc::clone(&s),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// The supervisor's latest view of the workers (http worker only).
    pub fn supervision(&self) -> crate::ipc::messages::Supervision {
        match self.supervision.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Tells the supervisor this worker serves.
    pub fn ready(&self) {
        let generation = self.generation.load(Ordering::SeqCst);
        self.tell(&ToSupervisor::Ready { generation });
    }

    fn tell(&self, msg: &ToSupervisor) {
        if let Ok(mut c) = self.control.lock() {
            if let Err(e) = write_frame(&mut *c, msg) {
                warn!("cannot talk to the supervisor: {e}");
            }
        }
    }
}

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
    let ctx = WorkerCtx {
        role,
        settings: Arc::new(RwLock::new(Arc::new(*settings))),
        generation: Arc::new(AtomicU64::new(generation)),
        control: Arc::new(Mutex::new(control)),
        supervision: Arc::new(RwLock::new(Default::default())),
        events: rx,
    };
    let thread_ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || control_loop(thread_ctx, reader, tx, sink));
    if let Err(e) = spawned {
        error!("cannot start the control thread: {e}");
        return 1;
    }
    if matches!(role, Role::Http | Role::Scheduler | Role::Pgctl) {
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
    }
}

fn control_loop(
    ctx: WorkerCtx,
    mut reader: UnixStream,
    tx: Sender<Event>,
    sink: crate::logging::Sink,
) {
    loop {
        match read_frame::<ToWorker, _>(&mut reader) {
            Ok(ToWorker::Reload {
                generation,
                settings,
            }) => {
                sink.reconfigure(&settings.config.logging);
                if let Ok(mut s) = ctx.settings.write() {
                    *s = Arc::new(*settings);
                }
                ctx.generation.store(generation, Ordering::SeqCst);
                info!("configuration reloaded (generation {generation})");
                let _ = tx.send(Event::Reloaded);
                ctx.tell(&ToSupervisor::Reloaded { generation });
            }
            Ok(ToWorker::Supervision(s)) => {
                if let Ok(mut cur) = ctx.supervision.write() {
                    *cur = s;
                }
            }
            Ok(ToWorker::Stop) => {
                debug!("stop requested");
                let _ = tx.send(Event::Stop);
            }
            Ok(ToWorker::Start { .. }) => warn!("unexpected second start message ignored"),
            Err(IpcError::Closed) | Err(IpcError::Truncated) => {
                // The supervisor is gone: nobody would restart or stop us.
                std::process::exit(0);
            }
            Err(e) => {
                error!("control channel broken ({e}); exiting");
                std::process::exit(1);
            }
        }
    }
}

/// Most concurrent client connections one IPC server handles.
const MAX_IPC_CONNECTIONS: usize = 64;

/// Serves `Request<C>` / `Response<R>` on the inherited UNIX listener, one
/// thread per client connection, until a stop request. `handle` must be
/// thread-safe; it is called concurrently.
pub fn serve_ipc<C, R, H>(ctx: &WorkerCtx, handle: H) -> i32
where
    C: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: Fn(C) -> Result<R, WorkerError> + Send + Sync + 'static,
{
    // SAFETY: fd 4 is this worker's UNIX listener by the fd contract.
    let listener = unsafe { UnixListener::from_raw_fd(LISTENER_FD) };
    let handle = Arc::new(handle);
    let active = Arc::new(AtomicUsize::new(0));
    let role = ctx.role;
    let accept = std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let mut stream = match conn {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if active.load(Ordering::SeqCst) >= MAX_IPC_CONNECTIONS {
                    warn!("too many {} clients; closing a connection", role.as_str());
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let h = Arc::clone(&handle);
                let a = Arc::clone(&active);
                let spawned = std::thread::Builder::new()
                    .name("client".into())
                    .spawn(move || {
                        loop {
                            let req: Request<C> = match read_frame(&mut stream) {
                                Ok(r) => r,
                                Err(IpcError::Closed) => break,
                                Err(e) => {
                                    debug!("client connection dropped: {e}");
                                    break;
                                }
                            };
                            let result = h(req.call);
                            if write_frame(&mut stream, &Response { id: req.id, result }).is_err() {
                                break;
                            }
                        }
                        a.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    error!("cannot start a client thread: {e}");
                }
            }
        });
    if let Err(e) = accept {
        error!("cannot start the accept thread: {e}");
        return 1;
    }
    ctx.ready();
    wait_for_stop(ctx);
    0
}

/// Blocks until the supervisor asks this worker to stop.
pub fn wait_for_stop(ctx: &WorkerCtx) {
    loop {
        match ctx.events.recv() {
            Ok(Event::Stop) | Err(_) => return,
            Ok(Event::Reloaded) => {}
        }
    }
}
