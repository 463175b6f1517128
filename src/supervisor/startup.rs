//! What the supervisor sets up before its loop: logging with the workers'
//! file-system identity, the signal pipe, the open-files limit.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tracing::{error, warn};

use super::error::SupervisorError;
use super::logfile;
use super::state::Signals;
use crate::config::Config;
use crate::privileges::{self, Identity};

/// Applies `[logging]` to the supervisor's own sink. A log file is opened
/// with the workers' file-system identity: it is theirs to append to, and a
/// destination the worker user could redirect (a link, a file it cannot
/// write) is refused rather than opened or chowned as root.
pub(super) fn apply_logging(sink: &crate::logging::Sink, config: &Config, identity: &Identity) {
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
pub(super) fn prefer_stderr_when_attended(
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

/// The signal flags and the pipe that wakes the loop's poll.
pub(super) fn setup_signals() -> Result<Signals, SupervisorError> {
    let system = |what: String| move |source| SupervisorError::System { what, source };
    let (wake, notify) = UnixStream::pair().map_err(system("socketpair".into()))?;
    wake.set_nonblocking(true)
        .map_err(system("signal pipe".into()))?;
    notify
        .set_nonblocking(true)
        .map_err(system("signal pipe".into()))?;
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let chld = Arc::new(AtomicBool::new(false));
    let reg = |sig: i32, flag: &Arc<AtomicBool>| -> Result<(), SupervisorError> {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .map_err(system(format!("signal {sig}")))?;
        let n = notify.try_clone().map_err(system("signal pipe".into()))?;
        signal_hook::low_level::pipe::register(sig, n).map_err(system(format!("signal {sig}")))?;
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
pub(super) fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
        }
    }
    Some(soft)
}
