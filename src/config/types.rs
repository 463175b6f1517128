//! The configuration's types: the typed snapshot the supervisor sends to
//! workers, where a value came from, and why a configuration is refused.
//! A leaf of the config layer: every other file of it builds on these.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ini_file;

/// Where a value came from; shown in errors and in `show-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The documented default.
    Default,
    /// A configuration file (the main one or one in the `.d` directory).
    File {
        /// File path.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
    },
    /// An environment variable.
    Env {
        /// Variable name.
        var: String,
    },
    /// A command-line option.
    CommandLine {
        /// The option as typed, e.g. `--debug`.
        option: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default value"),
            Source::File { path, line } => write!(f, "{}, line {}", path.display(), line),
            Source::Env { var } => write!(f, "environment variable {var}"),
            Source::CommandLine { option } => write!(f, "command line option {option}"),
        }
    }
}

/// A value before validation.
#[derive(Debug, Clone)]
pub struct RawValue {
    /// Text, with one pair of surrounding quotes already removed.
    pub value: String,
    /// Origin.
    pub source: Source,
    /// Directory that relative paths in this value resolve against.
    pub base_dir: PathBuf,
}

/// What the command line contributes.
#[derive(Debug, Clone, Default)]
pub struct CliValues {
    /// (section, key, value, option name).
    pub values: Vec<(String, String, String, String)>,
}

/// Default configuration file when neither `--configfile` nor
/// `TEMBOARD_CONFIGFILE` is given.
pub const DEFAULT_CONFIGFILE: &str = "/etc/temboard-agent/temboard-agent.conf";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The main configuration file does not exist.
    #[error("configuration file {path} does not exist: pass another one with -c FILE (or TEMBOARD_CONFIGFILE), or create this one with `temboard-agent setup` (see `temboard-agent setup --help`)")]
    MissingFile {
        /// Path as resolved.
        path: String,
    },
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {reason}")]
    Unreadable {
        /// Path.
        path: String,
        /// OS error.
        reason: String,
    },
    /// Syntax error in a file.
    #[error(transparent)]
    Syntax(#[from] ini_file::IniError),
    /// One or more values are invalid; each line names its origin.
    #[error("{}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Invalid>),
}

/// One invalid value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: [{section}] {key}: {reason}")]
pub struct Invalid {
    /// Where it came from.
    pub origin: Source,
    /// Section.
    pub section: String,
    /// Key.
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// Log destinations of the 2.x agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogMethod {
    /// Standard error of the supervisor (inherited by workers).
    Stderr,
    /// A syslog datagram socket.
    Syslog,
    /// A file, appended to.
    File,
}

/// Log levels with Python's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    /// Most verbose.
    Debug,
    /// Normal operation.
    Info,
    /// Something is odd.
    Warning,
    /// Something failed.
    Error,
    /// The agent cannot go on.
    Critical,
}

/// `[logging] debug`: nothing, everything, or some loggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DebugLoggers {
    /// No logger forced to DEBUG.
    None,
    /// Every logger at DEBUG.
    All,
    /// These loggers at DEBUG (names such as `http`, `ipc`, `supervisor`).
    Some(Vec<String>),
}

/// `[temboard]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemboardSection {
    /// Listening port.
    pub port: u16,
    /// Listening address.
    pub address: IpAddr,
    /// Users file.
    pub users: Option<PathBuf>,
    /// The temBoard UI's public key (9.x signed requests), when enabled.
    pub signing_public_key: Option<PathBuf>,
    /// The temBoard UI's URL (`fetch-key`, `register`).
    pub ui_url: Option<String>,
    /// Loaded plugins, in configuration order.
    pub plugins: Vec<String>,
    /// Certificate chain file.
    pub ssl_cert_file: PathBuf,
    /// Private key file.
    pub ssl_key_file: PathBuf,
    /// Optional CA file (kept for compatibility).
    pub ssl_ca_cert_file: Option<PathBuf>,
    /// Agent home (state database, sockets).
    pub home: PathBuf,
    /// Hostname override.
    pub hostname: Option<String>,
    /// The contract (2 or 9) of requests that carry neither a signature
    /// nor a 2.x credential.
    pub unsigned_contract: u8,
    /// More names a signed request's `Host` may give (`name` with this
    /// agent's port, or `name:port`), lowercase.
    pub accepted_hosts: Vec<String>,
    /// Collector key (secret).
    pub key: Option<String>,
    /// OS user for workers when started as root.
    pub user: Option<String>,
    /// Idle lifetime of an API session, in seconds.
    pub session_ttl: u64,
    /// Open connections one client address may hold.
    pub max_connections_per_client: u64,
    /// Pid file used with `--daemon`.
    pub pidfile: PathBuf,
    /// Daemonize even without `-d`.
    pub daemonize: bool,
}

/// `[postgresql]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostgresqlSection {
    /// Socket directory or host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password (secret; only given to workers that connect).
    pub password: Option<String>,
    /// Database.
    pub dbname: String,
    /// Cluster label.
    pub instance: String,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggingSection {
    /// Where logs go.
    pub method: LogMethod,
    /// Syslog facility code (already numeric).
    pub facility: u8,
    /// Syslog socket or file path.
    pub destination: PathBuf,
    /// Minimum level.
    pub level: LogLevel,
    /// Loggers forced to DEBUG.
    pub debug: DebugLoggers,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Absolute path of the main configuration file.
    pub configfile: PathBuf,
    /// `[temboard]`.
    pub temboard: TemboardSection,
    /// `[postgresql]`.
    pub postgresql: PostgresqlSection,
    /// `[logging]`.
    pub logging: LoggingSection,
    /// Each plugin's validated section, by plugin name, as its own settings
    /// type serialized (read with [`Config::section`]).
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

impl Config {
    /// Which ways to authenticate are on, for `show-config` and `/agent/self`.
    pub fn authentication(&self) -> Vec<&'static str> {
        let mut out = vec![];
        if self.temboard.users.is_some() {
            out.push("2.x sessions and API tokens ([temboard] users)");
        }
        if self.temboard.key.is_some() {
            out.push("agent key ([temboard] key)");
        }
        if self.temboard.signing_public_key.is_some() {
            out.push("9.x signed requests ([temboard] signing_public_key)");
        }
        out
    }
}

/// A loaded configuration with what is needed to explain it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The values.
    pub config: Config,
    /// Source of each key, `section.key` → source.
    pub sources: BTreeMap<String, Source>,
    /// Remarks to log (unknown keys...).
    pub warnings: Vec<String>,
}

/// Inputs of a load, gathered by `main` so loading itself is pure.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The configuration file.
    pub configfile: PathBuf,
    /// The process environment.
    pub env: Vec<(String, String)>,
    /// Command-line values.
    pub cli: CliValues,
}

impl LoadRequest {
    /// The configuration file from the option, else `TEMBOARD_CONFIGFILE`, else the default.
    pub fn resolve_configfile(option: Option<&Path>, env: &[(String, String)]) -> PathBuf {
        if let Some(p) = option {
            return p.to_path_buf();
        }
        env.iter()
            .find(|(k, _)| k == "TEMBOARD_CONFIGFILE")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIGFILE))
    }
}

impl Config {
    /// A copy without secrets, for processes that must not hold them (the
    /// network-facing http worker, the scheduler) and for display.
    pub fn without_secrets(&self) -> Config {
        let mut c = self.clone();
        if c.postgresql.password.is_some() {
            // A marker, so displays can tell one is set; never usable.
            c.postgresql.password = Some("********".into());
        }
        c
    }

    /// A copy for display: secrets replaced by a marker.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.postgresql.password.is_some() {
            c.postgresql.password = Some("********".into());
        }
        if c.temboard.key.is_some() {
            c.temboard.key = Some("********".into());
        }
        c
    }

    /// A plugin's section in its own type; `None` when the plugin has none
    /// (or it does not decode, which validation rules out).
    pub fn section<T: serde::de::DeserializeOwned>(&self, plugin: &str) -> Option<T> {
        self.sections
            .get(plugin)
            .and_then(|v| T::deserialize(v).ok())
    }

    /// Whether a plugin is loaded.
    pub fn has_plugin(&self, name: &str) -> bool {
        self.temboard.plugins.iter().any(|p| p == name)
    }

    /// Run directory holding the worker IPC sockets.
    pub fn run_dir(&self) -> PathBuf {
        self.temboard.home.join("run")
    }
}
