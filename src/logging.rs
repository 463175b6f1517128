//! Logging for every process: one line per event, with the process role, to
//! stderr, syslog or a file, as `[logging]` says. Reconfigured in place on
//! reload. Messages are written by our code only; secrets are never passed to it.
//!
//! Formats (documented in docs/configuration.md):
//! - stderr and file: `2026-11-24 09:00:00,123 temboard-agent[1234]: [http] INFO: message`
//! - syslog: `<PRI>temboard-agent[1234]: [http] INFO: message`

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::config::{DebugLoggers, LogLevel, LogMethod, LoggingSection};

enum Output {
    Stderr,
    Syslog(UnixDatagram),
    File(std::fs::File),
}

struct State {
    role: String,
    settings: LoggingSection,
    output: Output,
    /// Syslog datagrams dropped since the last one that went through.
    dropped: u64,
}

/// The process-wide sink; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    state: Arc<Mutex<State>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

fn open_output(s: &LoggingSection) -> (Output, Option<String>) {
    match s.method {
        LogMethod::Stderr => (Output::Stderr, None),
        LogMethod::Syslog => {
            // Non-blocking: a stuck or slow syslog daemon must never stop
            // the agent; what cannot be sent is counted and reported.
            let sock = UnixDatagram::unbound().and_then(|d| {
                d.connect(&s.destination)?;
                d.set_nonblocking(true)?;
                Ok(d)
            });
            match sock {
                Ok(d) => (Output::Syslog(d), None),
                Err(e) => (
                    Output::Stderr,
                    Some(format!(
                        "cannot log to syslog socket {}: {e}; logging to stderr instead",
                        s.destination.display()
                    )),
                ),
            }
        }
        LogMethod::File => match open_log_file(&s.destination) {
            Ok(f) => (Output::File(f), None),
            Err(e) => (
                Output::Stderr,
                Some(format!(
                    "cannot open log file {}: {e}; logging to stderr instead",
                    s.destination.display()
                )),
            ),
        },
    }
}

/// Opens the log file for appending, refusing a link at its last component
/// and anything but a regular file (a FIFO would block, a device is not a
/// log). The supervisor calls this with the workers' file-system identity.
fn open_log_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("it is a symbolic link, which the agent does not follow")
            } else {
                e
            }
        })?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() || kind.is_fifo() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// Installs the global logger for this process. Later calls reconfigure it.
pub fn init(role: &str, settings: &LoggingSection) -> Sink {
    if let Some(sink) = SINK.get() {
        sink.reconfigure(settings);
        return sink.clone();
    }
    let (output, problem) = open_output(settings);
    let sink = Sink {
        state: Arc::new(Mutex::new(State {
            role: role.to_string(),
            settings: settings.clone(),
            output,
            dropped: 0,
        })),
    };
    let _ = SINK.set(sink.clone());
    let _ = tracing_subscriber::registry().with(sink.clone()).try_init();
    if let Some(p) = problem {
        tracing::warn!("{p}");
    }
    sink
}

/// The process's sink, once installed.
pub fn current() -> Option<Sink> {
    SINK.get().cloned()
}

/// Logging before the configuration is known (startup errors): stderr, INFO.
pub fn init_early(role: &str) -> Sink {
    init(
        role,
        &LoggingSection {
            method: LogMethod::Stderr,
            facility: 16,
            destination: "/dev/log".into(),
            level: LogLevel::Info,
            debug: DebugLoggers::None,
        },
    )
}

impl Sink {
    /// Applies new settings (and reopens the file or socket, which also serves
    /// log rotation on SIGHUP).
    pub fn reconfigure(&self, settings: &LoggingSection) {
        let (output, problem) = open_output(settings);
        let mut supervisor = false;
        if let Ok(mut st) = self.state.lock() {
            st.settings = settings.clone();
            st.output = output;
            supervisor = st.role == "supervisor";
        }
        // The destination is the same for every process: the supervisor
        // says it once; the workers, which meet the same problem, only at
        // DEBUG (five identical warnings were noise).
        if let Some(p) = problem {
            if supervisor {
                tracing::warn!("{p}");
            } else {
                tracing::debug!("{p}");
            }
        }
    }

    /// Changes the role shown (a forked tool becoming a worker).
    pub fn set_role(&self, role: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.role = role.to_string();
        }
    }
}

/// Logger name of a target: the path segments after the crate name, so
/// `--debug http` matches `temboard_agent::workers::http::server`.
fn logger_matches(target: &str, names: &[String]) -> bool {
    target
        .split("::")
        .skip(1)
        .any(|seg| names.iter().any(|n| n == seg))
}

fn enabled_for(st: &State, meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("temboard_agent");
    let level = *meta.level();
    let forced_debug = match &st.settings.debug {
        DebugLoggers::All => ours,
        DebugLoggers::None => false,
        DebugLoggers::Some(names) => {
            ours && (logger_matches(meta.target(), names) || names.iter().any(|n| n == &st.role))
        }
    };
    if level == Level::TRACE {
        return false;
    }
    if forced_debug {
        return true;
    }
    if !ours && level > Level::WARN {
        return false;
    }
    let min = match st.settings.level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warning => Level::WARN,
        LogLevel::Error | LogLevel::Critical => Level::ERROR,
    };
    level <= min
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

fn severity(l: Level) -> u8 {
    match l {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let s = format!("{value:?}");
            self.0.insert_str(0, &s);
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for Sink {
    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.state
            .lock()
            .map(|st| enabled_for(&st, meta))
            .unwrap_or(false)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if !enabled_for(&st, event.metadata()) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let level = *event.metadata().level();
        let pid = std::process::id();
        let body = format!(
            "temboard-agent[{pid}]: [{}] {}: {}",
            st.role,
            level_name(level),
            text.0
        );
        let facility = st.settings.facility;
        let State {
            output,
            dropped,
            role,
            ..
        } = &mut *st;
        match output {
            Output::Syslog(sock) => {
                if *dropped > 0 {
                    let note = format!(
                        "<{}>temboard-agent[{pid}]: [{role}] WARNING: {dropped} log messages dropped: the syslog socket was full",
                        u16::from(facility) * 8 + u16::from(severity(tracing::Level::WARN))
                    );
                    if sock.send(note.as_bytes()).is_ok() {
                        *dropped = 0;
                    }
                }
                let line = format!(
                    "<{}>{body}",
                    u16::from(facility) * 8 + u16::from(severity(level))
                );
                if sock.send(line.as_bytes()).is_err() {
                    *dropped += 1;
                }
            }
            Output::Stderr => {
                let line = format!("{} {body}\n", timestamp());
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Output::File(f) => {
                let line = format!("{} {body}\n", timestamp());
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

fn timestamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S,%3f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_names() {
        let names = vec!["http".to_string()];
        assert!(logger_matches(
            "temboard_agent::workers::http::server",
            &names
        ));
        assert!(!logger_matches("temboard_agent::workers::probe", &names));
        assert!(!logger_matches("http", &names));
    }
}
