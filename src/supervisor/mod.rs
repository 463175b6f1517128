//! The supervisor: runs as the started process (root or the PostgreSQL owner).
//!
//! Owns the configuration, every listening socket and the worker processes. It is
//! single-threaded (no tokio, no helper threads) so forking is always safe; its
//! loop is driven by `poll` on a self-pipe woken by signal handlers and on the
//! workers' control sockets. It never handles a request itself.
//!
//! One file per concern, as Postfix's master: this one holds the start and the
//! loop; [`control`] the control channels, [`reap`] worker deaths, [`reload`]
//! SIGHUP, [`stop`] the orderly stop, [`startup`] signals, limits and logging.

mod control;
pub mod daemon;
mod error;
pub mod listeners;
pub mod logfile;
pub mod notify;
mod reap;
mod reload;
pub mod restart;
pub mod spawn;
mod startup;
mod state;
mod stop;

pub use error::SupervisorError;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::ipc::frame::{encode, Decoder};
use crate::ipc::messages::{Runtime, ToSupervisor, ToWorker, WorkerSettings};
use crate::ipc::{Role, PROTOCOL};
use crate::privileges::{self, Identity};
use reload::{read_signing_key, read_tls};
use startup::{apply_logging, prefer_stderr_when_attended, raise_open_files_limit, setup_signals};
pub use state::Options;
use state::{now_local, Supervisor, Worker, STOP_GRACE};

/// Runs the agent until SIGTERM/SIGINT. Returns the process exit status.
pub fn run(opts: Options) -> i32 {
    let sink = crate::logging::init_early("supervisor");
    let loaded = match config::load(&opts.request) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("temboard-agent: invalid configuration:\n{e}");
            return 1;
        }
    };
    let mut config = loaded.config;
    prefer_stderr_when_attended(&mut config, &loaded.sources);
    let pidfile = opts.pidfile.clone().or_else(|| {
        (opts.daemon || config.temboard.daemonize).then(|| config.temboard.pidfile.clone())
    });
    if let Some(p) = &pidfile {
        if let Err(e) = daemon::check_pidfile(p) {
            eprintln!("temboard-agent: {e}");
            return 1;
        }
    }
    // SAFETY: umask is process-wide and we are single-threaded.
    unsafe { libc::umask(0o077) };
    // The supervisor holds the configuration with the PostgreSQL password.
    privileges::forbid_dumping();
    let open_files_soft = raise_open_files_limit();
    let launcher = if opts.daemon || config.temboard.daemonize {
        match daemon::daemonize() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("temboard-agent: cannot daemonize: {e}");
                return 1;
            }
        }
    } else {
        daemon::foreground()
    };
    let identity =
        match privileges::worker_identity(config.temboard.user.as_deref(), &config.temboard.home) {
            Ok(i) => i,
            Err(e) => {
                error!("cannot start: {e}");
                eprintln!("temboard-agent: cannot start: {e}");
                return 1;
            }
        };
    apply_logging(&sink, &config, &identity);
    for w in &loaded.warnings {
        warn!("{w}");
    }
    match start(
        opts,
        config,
        identity,
        loaded.sources,
        launcher,
        pidfile,
        open_files_soft,
    ) {
        Ok(mut sup) => sup.main_loop(),
        Err(e) => {
            error!("cannot start: {e}");
            eprintln!("temboard-agent: cannot start: {e}");
            1
        }
    }
}

fn start(
    opts: Options,
    config: Config,
    identity: Identity,
    sources: BTreeMap<String, crate::config::Source>,
    launcher: daemon::Launcher,
    pidfile: Option<PathBuf>,
    open_files_soft: Option<u64>,
) -> Result<Supervisor, SupervisorError> {
    let run_dir = config.run_dir();
    let run_fd = listeners::prepare_run_dir(&run_dir, &identity)?;
    let lock = listeners::take_lock(&run_fd, &run_dir, &identity)?;
    let tls = read_tls(&config)?;
    let signing_key_pem = read_signing_key(&config)?;
    let exe: OwnedFd = std::fs::File::open("/proc/self/exe")
        .map_err(|source| SupervisorError::System {
            what: "cannot open /proc/self/exe".into(),
            source,
        })?
        .into();
    let exe = listeners::move_high(exe).map_err(|source| SupervisorError::System {
        what: "cannot move the executable's descriptor".into(),
        source,
    })?;
    let tcp = listeners::bind_tcp(config.temboard.address, config.temboard.port)?;
    let mut unix = BTreeMap::new();
    for role in Role::ALL.into_iter().filter(|r| r.serves_ipc()) {
        let (fd, _) = listeners::bind_unix(&run_fd, &run_dir, role.as_str(), &identity)?;
        unix.insert(role, fd);
    }
    let signals = setup_signals()?;
    let start_datetime = now_local();
    let runtime = Runtime {
        supervisor_pid: std::process::id(),
        start_datetime: start_datetime.clone(),
        reload_datetime: start_datetime,
        user: identity.name.clone(),
        run_dir,
        open_files_soft,
    };
    info!(
        "temboard-agent {} starting: listening on {}:{}, workers run as '{}'",
        env!("CARGO_PKG_VERSION"),
        config.temboard.address,
        config.temboard.port,
        identity.name
    );
    info!("built with {}", crate::build_info::summary());
    let now = Instant::now();
    let workers = Role::ALL
        .into_iter()
        .map(|role| Worker {
            role,
            pid: None,
            control: None,
            decoder: Decoder::default(),
            started: now,
            next_start: Some(now),
            backoff: restart::Backoff::default(),
            restarts: 0,
            last_exit: None,
            last_delay: None,
            planned_restart: false,
            ready: false,
        })
        .collect();
    Ok(Supervisor {
        opts,
        config,
        generation: 1,
        runtime,
        identity,
        tls,
        signing_key_pem,
        exe,
        tcp,
        unix,
        workers,
        signals,
        stop_deadline: None,
        servers_stopping: false,
        sources,
        last_reload_error: None,
        notifier: notify::Notifier::from_env(),
        launcher,
        pidfile,
        _lock: lock,
        run_fd,
    })
}

impl Supervisor {
    fn settings_for(&self, role: Role) -> WorkerSettings {
        WorkerSettings {
            config: if role.holds_db_password() {
                self.config.clone()
            } else {
                self.config.without_secrets()
            },
            runtime: self.runtime.clone(),
            tls: (role == Role::Http).then(|| self.tls.clone()),
            signing_key_pem: if role == Role::Http {
                self.signing_key_pem.clone()
            } else {
                None
            },
            sources: self.sources.clone(),
        }
    }

    /// Tells the http worker what the supervisor knows (for `/agent/self`).
    fn publish(&mut self) {
        let msg = ToWorker::Supervision(crate::ipc::messages::Supervision {
            workers: self
                .workers
                .iter()
                .map(|w| crate::ipc::messages::WorkerState {
                    role: w.role,
                    pid: w.pid.map(|p| p.as_raw() as u32),
                    restarts: w.restarts,
                    last_exit: w.last_exit.clone(),
                    consecutive_failures: w.backoff.failures(),
                    restart_delay_ms: w.last_delay.map(|d| d.as_millis() as u64),
                })
                .collect(),
            last_reload_error: self.last_reload_error.clone(),
            generation: self.generation,
        });
        if let Some(idx) = self
            .workers
            .iter()
            .position(|w| w.role == Role::Http && w.pid.is_some())
        {
            self.send(idx, &msg);
        }
    }

    fn main_loop(&mut self) -> i32 {
        loop {
            self.start_due_workers();
            let timeout = self.poll_timeout();
            let ready = self.wait(timeout);
            if self.signals.term.swap(false, Ordering::SeqCst) {
                self.begin_stop();
            }
            if self.signals.chld.swap(false, Ordering::SeqCst) {
                self.reap();
            }
            if self.signals.hup.swap(false, Ordering::SeqCst) && self.stop_deadline.is_none() {
                self.reload();
            }
            for idx in ready {
                self.read_control(idx);
            }
            if let Some(deadline) = self.stop_deadline {
                self.reap();
                self.stop_servers_when_clients_gone();
                if self.workers.iter().all(|w| w.pid.is_none()) {
                    info!("all workers stopped; exiting");
                    self.cleanup();
                    return 0;
                }
                if Instant::now() >= deadline {
                    for w in self.workers.iter().filter(|w| w.pid.is_some()) {
                        warn!(
                            "worker {} did not stop in time; killing it",
                            w.role.as_str()
                        );
                        if let Some(pid) = w.pid {
                            let _ = kill(pid, Signal::SIGKILL);
                        }
                    }
                    self.stop_deadline = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let now = Instant::now();
        let mut t = Duration::from_secs(1);
        for w in &self.workers {
            if let (None, Some(at)) = (w.pid, w.next_start) {
                t = t.min(at.saturating_duration_since(now));
            }
        }
        if self.stop_deadline.is_some() {
            t = t.min(Duration::from_millis(50));
        }
        t
    }

    /// Polls the wake pipe and control sockets; returns the indexes of workers
    /// whose control socket is readable.
    fn wait(&mut self, timeout: Duration) -> Vec<usize> {
        let mut fds = vec![PollFd::new(self.signals.wake.as_fd(), PollFlags::POLLIN)];
        let mut owners = vec![];
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(c) = &w.control {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
                owners.push(i);
            }
        }
        let ms = PollTimeout::from(timeout.as_millis().min(60_000) as u16);
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::Error::EINTR) => return vec![],
            Ok(_) => {}
            Err(e) => {
                error!("poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                return vec![];
            }
        }
        let mut drain = [0u8; 64];
        while matches!((&self.signals.wake).read(&mut drain), Ok(n) if n > 0) {}
        fds[1..]
            .iter()
            .zip(owners)
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, i)| i)
            .collect()
    }

    fn start_due_workers(&mut self) {
        if self.stop_deadline.is_some() {
            return;
        }
        let now = Instant::now();
        for idx in 0..self.workers.len() {
            let w = &self.workers[idx];
            if w.pid.is_some() || w.next_start.is_none_or(|at| at > now) {
                continue;
            }
            let role = w.role;
            let listener = if role == Role::Http {
                Some(&self.tcp)
            } else {
                self.unix.get(&role)
            };
            match spawn::spawn(role, &self.exe, listener, &self.identity) {
                Ok(s) => {
                    let msg = ToWorker::Start {
                        generation: self.generation,
                        settings: Box::new(self.settings_for(role)),
                    };
                    let w = &mut self.workers[idx];
                    w.pid = Some(s.pid);
                    w.control = Some(s.control);
                    w.decoder = Decoder::default();
                    w.started = now;
                    w.next_start = None;
                    w.ready = false;
                    info!("started {} worker, pid {}", role.as_str(), s.pid);
                    self.send(idx, &msg);
                }
                Err(e) => {
                    let w = &mut self.workers[idx];
                    let delay = w.backoff.on_exit(&restart::DEFAULT, Duration::ZERO);
                    error!(
                        "cannot start {} worker: {e}; retrying in {delay:?}",
                        role.as_str()
                    );
                    w.next_start = Some(now + delay);
                }
            }
        }
    }
}
