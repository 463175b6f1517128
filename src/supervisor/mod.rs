//! The supervisor: runs as the started process (root or the PostgreSQL owner).
//!
//! Owns the configuration, every listening socket and the worker processes. It is
//! single-threaded (no tokio, no helper threads) so forking is always safe; its
//! loop is driven by `poll` on a self-pipe woken by signal handlers and on the
//! workers' control sockets. It never handles a request itself.

pub mod daemon;
pub mod listeners;
pub mod logfile;
pub mod notify;
pub mod restart;
pub mod spawn;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use crate::config::{self, Config, LoadRequest};
use crate::ipc::frame::{encode, Decoder};
use crate::ipc::messages::{Runtime, TlsMaterial, ToSupervisor, ToWorker, WorkerSettings};
use crate::ipc::{Role, PROTOCOL};
use crate::privileges::{self, Identity};

/// Exit status a worker uses for "configuration unusable": never restarted.
pub const EXIT_CONFIG: i32 = 78;

/// How long workers get to stop on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(4);

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

struct Worker {
    role: Role,
    pid: Option<Pid>,
    control: Option<UnixStream>,
    decoder: Decoder,
    started: Instant,
    next_start: Option<Instant>,
    backoff: restart::Backoff,
    restarts: u64,
    last_exit: Option<String>,
    /// Delay chosen at the last unplanned death.
    last_delay: Option<Duration>,
    planned_restart: bool,
    ready: bool,
}

struct Signals {
    wake: UnixStream,
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
}

struct Supervisor {
    opts: Options,
    config: Config,
    generation: u64,
    runtime: Runtime,
    identity: Identity,
    tls: TlsMaterial,
    /// The UI's public key, as read and checked at start or last reload.
    signing_key_pem: Option<String>,
    exe: OwnedFd,
    tcp: OwnedFd,
    unix: BTreeMap<Role, OwnedFd>,
    workers: Vec<Worker>,
    signals: Signals,
    stop_deadline: Option<Instant>,
    servers_stopping: bool,
    sources: BTreeMap<String, crate::config::Source>,
    last_reload_error: Option<String>,
    notifier: notify::Notifier,
    launcher: daemon::Launcher,
    pidfile: Option<PathBuf>,
    _lock: nix::fcntl::Flock<std::fs::File>,
    /// `<home>/run`, opened once: sockets are removed relative to it.
    run_fd: OwnedFd,
}

fn now_local() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn read_tls(config: &Config) -> Result<TlsMaterial, String> {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let material = TlsMaterial {
        cert_pem: read(&config.temboard.ssl_cert_file)?,
        key_pem: read(&config.temboard.ssl_key_file)?,
    };
    // The exact bytes the http worker will get must make a server
    // configuration: a certificate copied before its key must not stop the
    // API (the old worker keeps serving).
    crate::tls::acceptor(&material).map_err(|e| {
        format!(
            "TLS material {} + {} unusable: {e}",
            config.temboard.ssl_cert_file.display(),
            config.temboard.ssl_key_file.display()
        )
    })?;
    Ok(material)
}

/// Reads the UI's public key and checks it parses: a reload with a broken key
/// is refused and the old one kept (9.0.1 never reloaded it at all).
fn read_signing_key(config: &Config) -> Result<Option<String>, String> {
    let Some(path) = &config.temboard.signing_public_key else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("signing key {}: {e}", path.display()))?;
    crate::signing::PublicKey::from_pem(&pem)
        .map_err(|e| format!("signing key {}: {e}", path.display()))?;
    Ok(Some(pem))
}

/// Applies `[logging]` to the supervisor's own sink. A log file is opened
/// with the workers' file-system identity: it is theirs to append to, and a
/// destination the worker user could redirect (a link, a file it cannot
/// write) is refused rather than opened or chowned as root.
fn apply_logging(sink: &crate::logging::Sink, config: &Config, identity: &Identity) {
    if config.logging.method == crate::config::LogMethod::File {
        if let Err(e) = logfile::prepare(&config.logging.destination, identity) {
            // The sink's own open fails the same way and falls back to
            // stderr; this says why.
            error!("log file refused: {e}");
        }
    }
    match privileges::ActingAs::worker(identity) {
        Ok(_as) => sink.reconfigure(&config.logging),
        Err(e) => error!("cannot reconfigure logging: {e}"),
    }
}

/// The documented default is syslog; in a terminal or under systemd's journal
/// (`JOURNAL_STREAM`), stderr is what the operator reads, so an unset
/// `[logging] method` means stderr there.
fn prefer_stderr_when_attended(
    config: &mut Config,
    sources: &BTreeMap<String, crate::config::Source>,
) {
    use std::io::IsTerminal;
    let defaulted = matches!(
        sources.get("logging.method"),
        Some(crate::config::Source::Default) | None
    );
    let attended = std::io::stderr().is_terminal() || std::env::var_os("JOURNAL_STREAM").is_some();
    if defaulted && attended {
        config.logging.method = crate::config::LogMethod::Stderr;
    }
}

fn setup_signals() -> Result<Signals, String> {
    let (wake, notify) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    wake.set_nonblocking(true).map_err(|e| e.to_string())?;
    notify.set_nonblocking(true).map_err(|e| e.to_string())?;
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let chld = Arc::new(AtomicBool::new(false));
    let reg = |sig: i32, flag: &Arc<AtomicBool>| -> Result<(), String> {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .map_err(|e| format!("signal {sig}: {e}"))?;
        let n = notify.try_clone().map_err(|e| e.to_string())?;
        signal_hook::low_level::pipe::register(sig, n).map_err(|e| format!("signal {sig}: {e}"))?;
        Ok(())
    };
    reg(libc::SIGTERM, &term)?;
    reg(libc::SIGINT, &term)?;
    reg(libc::SIGHUP, &hup)?;
    reg(libc::SIGCHLD, &chld)?;
    // A worker dying mid-write must not kill us.
    // SAFETY: setting SIGPIPE to ignored is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(Signals {
        wake,
        term,
        hup,
        chld,
    })
}

/// Raises the soft limit on open files to the hard one (workers inherit
/// it): each client connection is a descriptor of the http worker, and the
/// usual soft limit of 1,024 would refuse connections long before memory or
/// CPU run short. The hard limit stays the administrator's (systemd's
/// `LimitNOFILE`).
/// Returns the soft limit the agent was started with, which commands run
/// for the DBA (pg_ctl) get back.
fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
        }
    }
    Some(soft)
}

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
) -> Result<Supervisor, String> {
    let run_dir = config.run_dir();
    let run_fd = listeners::prepare_run_dir(&run_dir, &identity)?;
    let lock = listeners::take_lock(&run_fd, &run_dir, &identity)?;
    let tls = read_tls(&config)?;
    let signing_key_pem = read_signing_key(&config)?;
    let exe: OwnedFd = std::fs::File::open("/proc/self/exe")
        .map_err(|e| format!("cannot open /proc/self/exe: {e}"))?
        .into();
    let exe = listeners::move_high(exe).map_err(|e| e.to_string())?;
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

    fn send(&mut self, idx: usize, msg: &ToWorker) {
        let w = &mut self.workers[idx];
        let Some(c) = &mut w.control else { return };
        let bytes = match encode(msg) {
            Ok(b) => b,
            Err(e) => {
                error!("cannot encode message for {}: {e}", w.role.as_str());
                return;
            }
        };
        // Messages are small; a bounded blocking write keeps the loop simple.
        let result = c
            .set_nonblocking(false)
            .and_then(|_| c.set_write_timeout(Some(Duration::from_secs(2))))
            .and_then(|_| c.write_all(&bytes))
            .and_then(|_| c.set_nonblocking(true));
        if let Err(e) = result {
            warn!("cannot talk to {} worker: {e}", w.role.as_str());
        }
    }

    /// Reads what a worker sent and handles every complete message. Messages
    /// are taken out after each read, so the decoder never holds more than
    /// one frame (its length is checked against the cap from its header)
    /// plus one read: a worker flooding its socket cannot grow the
    /// supervisor's memory.
    fn read_control(&mut self, idx: usize) {
        let mut buf = [0u8; 8192];
        loop {
            let w = &mut self.workers[idx];
            let Some(c) = &mut w.control else { return };
            match c.read(&mut buf) {
                Ok(0) => {
                    // The worker is exiting; waitpid tells us how.
                    w.control = None;
                    return;
                }
                Ok(n) => {
                    w.decoder.push(&buf[..n]);
                    if !self.drain_control(idx) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("control socket of {} worker: {e}", w.role.as_str());
                    w.control = None;
                    return;
                }
            }
        }
    }

    /// Handles the complete messages received; false when the worker sent
    /// garbage and was killed.
    fn drain_control(&mut self, idx: usize) -> bool {
        loop {
            let w = &mut self.workers[idx];
            match w.decoder.next_message::<ToSupervisor>() {
                Ok(Some(msg)) => self.on_message(idx, msg),
                Ok(None) => return true,
                Err(e) => {
                    error!(
                        "garbage on control socket of {} worker ({e}); killing it",
                        w.role.as_str()
                    );
                    if let Some(pid) = w.pid {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                    w.control = None;
                    w.decoder = Decoder::default();
                    return false;
                }
            }
        }
    }

    fn on_message(&mut self, idx: usize, msg: ToSupervisor) {
        let role = self.workers[idx].role;
        match msg {
            ToSupervisor::Hello {
                role: said,
                protocol,
                pid,
            } => {
                if said != role || protocol != PROTOCOL {
                    error!("worker pid {pid} says it is {said:?} protocol {protocol}; expected {role:?} protocol {PROTOCOL}; killing it");
                    if let Some(p) = self.workers[idx].pid {
                        let _ = kill(p, Signal::SIGKILL);
                    }
                }
            }
            ToSupervisor::Ready { generation } => {
                self.workers[idx].ready = true;
                self.publish();
                tracing::debug!("{} worker ready (generation {generation})", role.as_str());
                if role == Role::Http {
                    // Pid file first: the launcher exits as soon as it hears
                    // "ready", and scripts then read the pid file.
                    if let Some(p) = self.pidfile.clone() {
                        if let Err(e) = daemon::write_pidfile(&p) {
                            error!("{e}");
                        }
                    }
                    self.launcher.ready();
                    self.notifier.send("READY=1");
                }
            }
            ToSupervisor::Reloaded { generation } => {
                tracing::debug!("{} worker applied generation {generation}", role.as_str());
            }
        }
    }

    fn reap(&mut self) {
        let mut changed = false;
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => {
                    if changed && self.stop_deadline.is_none() {
                        self.publish();
                    }
                    return;
                }
                Ok(s) => s,
            };
            changed = true;
            let (pid, reason, code) = match status {
                WaitStatus::Exited(pid, code) => {
                    (pid, format!("exited with status {code}"), Some(code))
                }
                WaitStatus::Signaled(pid, sig, _) => {
                    (pid, format!("killed by signal {}", sig.as_str()), None)
                }
                _ => continue,
            };
            let stopping = self.stop_deadline.is_some();
            let Some(w) = self.workers.iter_mut().find(|w| w.pid == Some(pid)) else {
                continue;
            };
            let uptime = w.started.elapsed();
            w.pid = None;
            w.control = None;
            w.ready = false;
            w.last_exit = Some(reason.clone());
            if stopping {
                info!("{} worker (pid {pid}) {reason}", w.role.as_str());
                continue;
            }
            if w.planned_restart {
                w.planned_restart = false;
                info!(
                    "{} worker (pid {pid}) {reason}; restarting it with the new configuration",
                    w.role.as_str()
                );
                w.next_start = Some(Instant::now());
                continue;
            }
            if code == Some(EXIT_CONFIG) {
                error!("{} worker (pid {pid}) {reason}: configuration unusable; not restarting it until reload", w.role.as_str());
                continue;
            }
            let delay = w.backoff.on_exit(&restart::DEFAULT, uptime);
            w.last_delay = Some(delay);
            w.restarts += 1;
            w.next_start = Some(Instant::now() + delay);
            error!(
                "{} worker (pid {pid}) {reason} after {:.1}s; restart #{} in {} ms",
                w.role.as_str(),
                uptime.as_secs_f64(),
                w.restarts,
                delay.as_millis()
            );
        }
    }

    fn reload(&mut self) {
        info!(
            "SIGHUP: reloading configuration from {}",
            self.opts.request.configfile.display()
        );
        self.notifier.send("RELOADING=1");
        let loaded = match config::load(&self.opts.request) {
            Ok(l) => l,
            Err(e) => {
                error!("reload refused, keeping the current configuration:\n{e}");
                self.last_reload_error = Some(e.to_string());
                self.publish();
                self.notifier.send("READY=1");
                return;
            }
        };
        self.sources = loaded.sources.clone();
        self.last_reload_error = None;
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let mut new = loaded.config;
        prefer_stderr_when_attended(&mut new, &loaded.sources);
        // What the supervisor bound or decided at start cannot change live.
        let old = &self.config.temboard;
        if (new.temboard.address, new.temboard.port) != (old.address, old.port) {
            warn!(
                "[temboard] address/port changed: restart the agent to listen on {}:{}",
                new.temboard.address, new.temboard.port
            );
        }
        if new.temboard.home != old.home || new.temboard.user != old.user {
            warn!("[temboard] home/user changed: restart the agent to apply");
        }
        new.temboard.address = old.address;
        new.temboard.port = old.port;
        new.temboard.home = old.home.clone();
        new.temboard.user = old.user.clone();
        // Every file the workers get from us, checked before anything swaps.
        let material = read_tls(&new).and_then(|t| read_signing_key(&new).map(|k| (t, k)));
        let (tls, signing_key_pem) = match material {
            Ok(m) => m,
            Err(e) => {
                error!("reload refused, keeping the current configuration: {e}");
                self.last_reload_error = Some(e);
                self.publish();
                self.notifier.send("READY=1");
                return;
            }
        };
        let tls_changed = tls != self.tls;
        self.config = new;
        self.tls = tls;
        self.signing_key_pem = signing_key_pem;
        self.generation += 1;
        self.runtime.reload_datetime = now_local();
        match crate::logging::current() {
            Some(sink) => apply_logging(&sink, &self.config, &self.identity),
            None => {
                crate::logging::init("supervisor", &self.config.logging);
            }
        }
        for idx in 0..self.workers.len() {
            let role = self.workers[idx].role;
            if self.workers[idx].pid.is_none() {
                // A worker parked after a configuration error gets a new chance.
                if self.workers[idx].next_start.is_none() {
                    self.workers[idx].next_start = Some(Instant::now());
                }
                continue;
            }
            if role == Role::Http && tls_changed {
                info!("TLS certificate or key changed: restarting the http worker");
                self.workers[idx].planned_restart = true;
                self.send(idx, &ToWorker::Stop);
                continue;
            }
            let msg = ToWorker::Reload {
                generation: self.generation,
                settings: Box::new(self.settings_for(role)),
            };
            self.send(idx, &msg);
        }
        info!("configuration reloaded (generation {})", self.generation);
        self.notifier.send("READY=1");
        self.publish();
    }

    /// Stops the clients (http, scheduler) first, then the servers (probe,
    /// pgctl) once the clients are gone: a client must never wait on a server
    /// socket that nobody will serve again (the listeners stay open until we
    /// exit, so such a call would hang until its timeout).
    fn begin_stop(&mut self) {
        if self.stop_deadline.is_some() {
            return;
        }
        info!("stopping: asking workers to finish");
        self.notifier.send("STOPPING=1");
        self.stop_deadline = Some(Instant::now() + STOP_GRACE);
        self.servers_stopping = false;
        for idx in 0..self.workers.len() {
            if self.workers[idx].pid.is_some() && !self.workers[idx].role.serves_ipc() {
                self.send(idx, &ToWorker::Stop);
            }
        }
        self.stop_servers_when_clients_gone();
    }

    fn stop_servers_when_clients_gone(&mut self) {
        if self.servers_stopping {
            return;
        }
        let clients_gone = self
            .workers
            .iter()
            .all(|w| w.role.serves_ipc() || w.pid.is_none());
        let half_time = self
            .stop_deadline
            .is_some_and(|d| d.saturating_duration_since(Instant::now()) < STOP_GRACE / 2);
        if clients_gone || half_time {
            self.servers_stopping = true;
            for idx in 0..self.workers.len() {
                if self.workers[idx].pid.is_some() && self.workers[idx].role.serves_ipc() {
                    self.send(idx, &ToWorker::Stop);
                }
            }
        }
    }

    fn cleanup(&mut self) {
        for role in self.unix.keys() {
            listeners::remove_socket(&self.run_fd, role.as_str(), &self.identity);
        }
        if let Some(p) = &self.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }
}
