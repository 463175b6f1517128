//! What every worker process shares once started: its context (the settings
//! in force, its role, the supervisor's view) and the control thread that
//! applies reloads and stop requests sent on the control socket.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, error, info, warn};

use crate::ipc::frame::{read_frame, write_frame};
use crate::ipc::messages::{ToSupervisor, ToWorker, WorkerSettings};
use crate::ipc::{IpcError, Role};

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

impl WorkerCtx {
    /// The context of a worker that just received its start message.
    pub(super) fn new(
        role: Role,
        generation: u64,
        settings: WorkerSettings,
        control: UnixStream,
        events: Receiver<Event>,
    ) -> WorkerCtx {
        WorkerCtx {
            role,
            settings: Arc::new(RwLock::new(Arc::new(settings))),
            generation: Arc::new(AtomicU64::new(generation)),
            control: Arc::new(Mutex::new(control)),
            supervision: Arc::new(RwLock::new(Default::default())),
            events,
        }
    }
}

/// Applies what the supervisor sends until it goes away.
pub(super) fn control_loop(
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

/// Blocks until the supervisor asks this worker to stop.
pub fn wait_for_stop(ctx: &WorkerCtx) {
    loop {
        match ctx.events.recv() {
            Ok(Event::Stop) | Err(_) => return,
            Ok(Event::Reloaded) => {}
        }
    }
}

/// The state database of a worker that keeps one open, or the error logged
/// (the worker then exits 1 and is restarted with backoff).
pub fn open_store(ctx: &WorkerCtx) -> Option<rusqlite::Connection> {
    crate::store::open(&ctx.settings().config.temboard.home)
        .inspect_err(|e| tracing::error!("{e}"))
        .ok()
}
