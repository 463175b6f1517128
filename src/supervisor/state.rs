//! The supervisor's state ([`Supervisor`], its [`Worker`]s and [`Signals`])
//! and options, shared by the loop (`mod.rs`), start-up and reload.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{daemon, notify, restart};
use crate::config::{Config, LoadRequest};
use crate::ipc::frame::Decoder;
use crate::ipc::messages::{Runtime, TlsMaterial};
use crate::ipc::Role;
use crate::privileges::Identity;

/// How long workers get to stop on SIGTERM before SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(4);

/// What the command line asks of the supervisor.
#[derive(Debug, Clone)]
pub struct Options {
    /// How to load the configuration (kept to reload it).
    pub request: LoadRequest,
    /// `-d`.
    pub daemon: bool,
    /// `-p`.
    pub pidfile: Option<PathBuf>,
}

/// One worker as the supervisor tracks it.
pub(super) struct Worker {
    pub(super) role: Role,
    pub(super) pid: Option<Pid>,
    pub(super) control: Option<UnixStream>,
    pub(super) decoder: Decoder,
    pub(super) started: Instant,
    pub(super) next_start: Option<Instant>,
    pub(super) backoff: restart::Backoff,
    pub(super) restarts: u64,
    pub(super) last_exit: Option<String>,
    /// Delay chosen at the last unplanned death.
    pub(super) last_delay: Option<Duration>,
    pub(super) planned_restart: bool,
    pub(super) ready: bool,
}

/// The signal pipe and the flags its handlers set.
pub(super) struct Signals {
    pub(super) wake: UnixStream,
    pub(super) term: Arc<AtomicBool>,
    pub(super) hup: Arc<AtomicBool>,
    pub(super) chld: Arc<AtomicBool>,
}

/// The supervisor's state: configuration in force, workers, sockets.
pub(super) struct Supervisor {
    pub(super) opts: Options,
    pub(super) config: Config,
    pub(super) generation: u64,
    pub(super) runtime: Runtime,
    pub(super) identity: Identity,
    pub(super) tls: TlsMaterial,
    /// The UI's public key, as read and checked at start or last reload.
    pub(super) signing_key_pem: Option<String>,
    pub(super) exe: OwnedFd,
    pub(super) tcp: OwnedFd,
    pub(super) unix: BTreeMap<Role, OwnedFd>,
    pub(super) workers: Vec<Worker>,
    pub(super) signals: Signals,
    pub(super) stop_deadline: Option<Instant>,
    pub(super) servers_stopping: bool,
    pub(super) sources: BTreeMap<String, crate::config::Source>,
    pub(super) last_reload_error: Option<String>,
    pub(super) notifier: notify::Notifier,
    pub(super) launcher: daemon::Launcher,
    pub(super) pidfile: Option<PathBuf>,
    pub(super) _lock: nix::fcntl::Flock<std::fs::File>,
    /// `<home>/run`, opened once: sockets are removed relative to it.
    pub(super) run_fd: OwnedFd,
}

/// Now, local time, as the status documents show it.
pub(super) fn now_local() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}
