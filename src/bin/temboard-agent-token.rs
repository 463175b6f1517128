//! `temboard-agent-token -c CONF create NAME [--read-only] | list | revoke NAME`:
//! API tokens for scripts and monitoring systems (`Authorization: Bearer`).
//! Run it as the agent's user (e.g. `sudo -u postgres`), who owns the state
//! database under `[temboard] home`.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use temboard_agent::config;
use temboard_agent::store::{self, tokens};

/// Manage API tokens of the agent.
#[derive(Debug, Parser)]
#[command(name = "temboard-agent-token", version)]
struct Args {
    #[command(flatten)]
    config: temboard_agent::cli::ConfigArg,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a token and print it (shown once: only its hash is kept).
    Create {
        /// A name for the token (letters, digits, `-`, `_`).
        name: String,
        /// Allow only GET requests.
        #[arg(long)]
        read_only: bool,
        /// Add the token read from standard input (one made by `create` on
        /// another agent) instead of making one: a fleet then shares one
        /// token for its Prometheus.
        #[arg(long)]
        from_stdin: bool,
    },
    /// List tokens (names, flags, dates; never the tokens).
    List,
    /// Revoke a token now.
    Revoke {
        /// Its name.
        name: String,
    },
}

fn run(args: Args) -> Result<(), String> {
    let req = args.config.load_request();
    let values = config::raw_values(&req, &[("temboard", "home")])
        .map_err(|e| format!("invalid configuration:\n{e}"))?;
    let home = PathBuf::from(values[0].clone().ok_or("[temboard] home is not set")?);
    let conn = store::open(&home).map_err(|e| e.to_string())?;
    match args.command {
        Cmd::Create {
            name,
            read_only,
            from_stdin,
        } => {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("invalid name: use 1 to 64 letters, digits, '-' or '_'".into());
            }
            let made = if from_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("standard input: {e}"))?;
                tokens::import(&conn, &name, line.trim(), read_only)?.map(|_| "added".to_string())
            } else {
                tokens::create(&conn, &name, read_only)?
            };
            match made {
                Some(t) => println!("{t}"),
                None => return Err(format!("a token named '{name}' exists already")),
            }
        }
        Cmd::List => {
            for t in tokens::list(&conn).map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}",
                    t.name,
                    if t.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    },
                    t.created_at
                );
            }
        }
        Cmd::Revoke { name } => {
            if !tokens::revoke(&conn, &name).map_err(|e| e.to_string())? {
                return Err(format!("no token named '{name}'"));
            }
            println!("revoked {name}");
        }
    }
    Ok(())
}

fn main() {
    // The program is assembled here: the plugins are handed to the config
    // layer and the state store before anything reads a configuration.
    temboard_agent::plugins::install_catalog();
    if let Err(e) = run(Args::parse()) {
        eprintln!("temboard-agent-token: {e}");
        std::process::exit(1);
    }
}
