//! Command line of `temboard-agent`, compatible with the 2.x agent
//! (`-c/--config`, `--debug`, `-d`, `-p`, `-V`), plus `--configfile` as the docs
//! spell it and a few subcommands for operators.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{CliValues, LoadRequest};

/// temBoard agent: HTTPS REST API to manage and monitor one PostgreSQL cluster.
#[derive(Debug, Parser)]
#[command(name = "temboard-agent", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [env: TEMBOARD_CONFIGFILE] [default: /etc/temboard-agent/temboard-agent.conf]
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "configfile",
        value_name = "FILE",
        global = true
    )]
    pub config: Option<PathBuf>,
    /// Set DEBUG level for all loggers, or for a comma separated list of loggers
    /// (supervisor, http, scheduler, probe, pgctl, ipc, config, ...).
    #[arg(long, value_name = "LOGGERS", num_args = 0..=1, default_missing_value = "true", global = true)]
    pub debug: Option<String>,
    /// Run in the background (the command returns once the API answers).
    #[arg(short = 'd', long)]
    pub daemon: bool,
    /// Pid file (with --daemon, default [temboard] pidfile).
    #[arg(short = 'p', long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Operator commands; without one, the agent runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command line, with `--version` (long form) listing what the agent
    /// is made of (rustc, rustls, OpenSSL...) as the Python agent listed its
    /// Python and libraries; `-V` stays one line.
    pub fn parse_with_components() -> Cli {
        let mut long = env!("CARGO_PKG_VERSION").to_string();
        for (name, version) in crate::build_info::components() {
            long.push_str(&format!("\n{name} {version}"));
        }
        // Built once per process; clap keeps a `&'static str`.
        let long: &'static str = long.leak();
        let matches = Cli::command().long_version(long).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default without a command; the temBoard 9.x form).
    Serve,
    /// Print the route table: every route, its plugin and how it authenticates
    /// in the 2.x and the 9.x contract.
    Routes,
    /// Read PostgreSQL and the host now and print the temBoard 9.x discover
    /// document (the ETag on stderr).
    Discover,
    /// Fetch the temBoard UI's signing key (`<ui_url>/signing.key`) into
    /// `[temboard] signing_public_key` (temBoard 8 and later).
    FetchKey {
        /// Replace a different key already there.
        #[arg(long)]
        force: bool,
        /// Allow an http:// UI or one whose certificate cannot be verified
        /// (the key's fingerprint is printed: compare it with the UI's).
        #[arg(long)]
        insecure: bool,
    },
    /// Register this agent in a temBoard 9.x UI (`[temboard] ui_url`); UI
    /// credentials from TEMBOARD_UI_USER / TEMBOARD_UI_PASSWORD or prompts.
    /// For a 2.x UI, use temboard-agent-register.
    Register {
        /// Agent address as the UI reaches it [default: [temboard] hostname or the FQDN]
        #[arg(long)]
        host: Option<String>,
        /// Agent port [default: [temboard] port]
        #[arg(short = 'p', long)]
        port: Option<u16>,
        /// UI environment of the instance.
        #[arg(short = 'e', long)]
        environment: Option<String>,
        /// UI URL [default: [temboard] ui_url]
        #[arg(long)]
        ui_url: Option<String>,
        /// Allow an http:// UI or one whose certificate cannot be verified
        /// (the UI password then crosses the network unprotected).
        #[arg(long)]
        insecure: bool,
    },
    /// Check this host for the agent, each line OK/WARN/FAIL with the fix:
    /// configuration, TLS pair and expiry, PostgreSQL and the role's rights,
    /// pg_stat_statements, signing key or users, the UI and its clock,
    /// directories, free disk. Exits 0 (all OK), 1 (a FAIL), 2 (a WARN).
    Doctor,
    /// Validate the configuration and print the effective values with their
    /// sources (secrets redacted) as JSON; exits 1 if it is invalid, 2 if it
    /// is valid with warnings (a misspelt key, say).
    ShowConfig,
    /// Prepare an agent for one PostgreSQL cluster (as root, with PG* variables
    /// or options): configuration, users file, certificate, home. Idempotent.
    Setup {
        /// Where configurations go.
        #[arg(long, default_value = "/etc/temboard-agent")]
        prefix: PathBuf,
        /// Where homes go.
        #[arg(long, default_value = "/var/lib/temboard-agent")]
        home_prefix: PathBuf,
        /// PostgreSQL socket directory or host [env: PGHOST] [default: /var/run/postgresql]
        #[arg(long)]
        pghost: Option<String>,
        /// PostgreSQL port [env: PGPORT] [default: 5432]
        #[arg(long)]
        pgport: Option<u16>,
        /// PostgreSQL super-user [env: PGUSER] [default: postgres]
        #[arg(long)]
        pguser: Option<String>,
        /// Database to connect to [env: PGDATABASE] [default: postgres]
        #[arg(long)]
        pgdatabase: Option<String>,
        /// First agent port to try.
        #[arg(long, default_value_t = 2345)]
        first_port: u16,
        /// Prepare for a temBoard 9.x UI (8 and later): its URL goes in the
        /// configuration and its signing key beside it.
        #[arg(long, value_name = "URL")]
        ui_url: Option<String>,
        /// The CA that signed the UI's certificate (PEM) [default: the
        /// system's roots]; written as `ssl_ca_cert_file`.
        #[arg(long, value_name = "FILE")]
        ui_ca_file: Option<PathBuf>,
        /// Allow an http:// UI or one whose certificate cannot be verified
        /// (the key's fingerprint is printed: compare it with the UI's).
        #[arg(long)]
        insecure: bool,
    },
    /// Write a self-signed certificate and its key (0600) for the given host names.
    GenerateCert {
        /// Certificate file to create.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Key file to create.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Host names (DNS) or IP addresses the certificate is valid for.
        #[arg(long = "hostname", value_name = "NAME", required = true)]
        hostnames: Vec<String>,
    },
    /// Print a users file line `USER:HASH` for `USER:PASSWORD` (same as
    /// temboard-agent-password).
    HashPassword {
        /// `username:password`.
        #[arg(value_name = "USER:PASSWORD")]
        credentials: String,
        /// Write the 2.x hash instead of Argon2id.
        #[arg(long)]
        legacy_hash: bool,
    },
}

impl Cli {
    /// How to load the configuration, from this command line and `env`.
    pub fn load_request(&self, env: Vec<(String, String)>) -> LoadRequest {
        let configfile = LoadRequest::resolve_configfile(self.config.as_deref(), &env);
        let mut cli = CliValues::default();
        if let Some(d) = &self.debug {
            cli.values.push((
                "logging".into(),
                "debug".into(),
                d.clone(),
                "--debug".into(),
            ));
        }
        LoadRequest {
            configfile,
            env,
            cli,
        }
    }
}

/// The `-c/--config` option of the operator tools (`temboard-agent-adduser`,
/// `-token`, `-register`): the same option, help and file resolution as the
/// agent's own, in one place.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Agent configuration file [env: TEMBOARD_CONFIGFILE] [default: /etc/temboard-agent/temboard-agent.conf]
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "configfile",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// How to load the configuration: this option, then the environment.
    pub fn load_request(&self) -> LoadRequest {
        let env: Vec<(String, String)> = std::env::vars().collect();
        LoadRequest {
            configfile: LoadRequest::resolve_configfile(self.config.as_deref(), &env),
            env,
            cli: CliValues::default(),
        }
    }
}

/// Asks one line on the terminal (not echoed when `secret` and stdin is a
/// terminal; read plainly from a pipe, for scripts). The operator tools'
/// one prompt.
pub fn prompt(text: &str, secret: bool) -> Result<String, String> {
    use std::io::{BufRead, IsTerminal, Write};
    print!("{text}");
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    let saved = if secret && stdin.is_terminal() {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        tcgetattr(&stdin).ok().inspect(|t| {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        })
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &t);
        println!();
    }
    match read {
        Ok(0) => Err("no more input".into()),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => Err(e.to_string()),
    }
}
