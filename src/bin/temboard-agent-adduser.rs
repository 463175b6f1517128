//! `temboard-agent-adduser [-c CONF]`: asks for a user name and a password
//! (twice, not echoed) and appends the user to the users file of the agent's
//! configuration. The agent reads that file at each login: no reload needed.
//!
//! Without a terminal on stdin it reads three lines instead (user name,
//! password, password again), so scripts and tests can use it.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]

use std::io::{BufRead, IsTerminal, Write};

use clap::Parser;
use temboard_agent::config;
use temboard_agent::users;

/// Add a user allowed to use the agent's API.
#[derive(Debug, Parser)]
#[command(name = "temboard-agent-adduser", version)]
struct Args {
    #[command(flatten)]
    config: temboard_agent::cli::ConfigArg,
    /// Write the 2.x hash instead of Argon2id (for a users file a 2.x agent
    /// must also read).
    #[arg(long)]
    legacy_hash: bool,
    /// Accepted for compatibility with 2.x; no effect.
    #[arg(long, value_name = "LOGGERS", num_args = 0..=1, default_missing_value = "true")]
    debug: Option<String>,
}

struct Input {
    tty: bool,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Input {
    fn ask(&mut self, prompt: &str, secret: bool) -> Result<String, String> {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
        let echo = if secret && self.tty { echo_off() } else { None };
        let line = self.lines.next();
        if let Some(saved) = echo {
            restore(saved);
            println!();
        }
        match line {
            Some(Ok(l)) => Ok(l.trim_end_matches('\r').to_string()),
            Some(Err(e)) => Err(format!("cannot read input: {e}")),
            None => Err("no more input".into()),
        }
    }
}

fn echo_off() -> Option<nix::sys::termios::Termios> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok()?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).ok()?;
    Some(saved)
}

fn restore(saved: nix::sys::termios::Termios) {
    let _ =
        nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &saved);
}

fn run(args: Args) -> Result<(), String> {
    let req = args.config.load_request();
    let path = config::users_path(&req).map_err(|e| format!("invalid configuration:\n{e}"))?;
    let existing = users::load(&path)
        .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
    let mut input = Input {
        tty: std::io::stdin().is_terminal(),
        lines: std::io::stdin().lock().lines(),
    };
    let username = loop {
        let u = input.ask("Username: ", false)?;
        if existing.entries.iter().any(|e| e.username == u) {
            println!("User already exists.");
        } else if !users::valid_username(&u) {
            println!("Invalid username.");
        } else {
            break u;
        }
    };
    let password = loop {
        let p = input.ask("Password: ", true)?;
        let again = input.ask("Retype password: ", true)?;
        if p != again {
            println!("Sorry, passwords do not match.");
        } else if !users::valid_password(&p) {
            println!("Invalid password.");
        } else {
            break p;
        }
    };
    let format = if args.legacy_hash {
        users::HashFormat::Legacy
    } else {
        users::HashFormat::Argon2id
    };
    let hash = users::new_hash(format, &username, &password)?;
    users::append(&path, &username, &hash)
        .map_err(|e| format!("cannot append to users file {}: {e}", path.display()))?;
    println!("Done.");
    Ok(())
}

fn main() {
    // The program is assembled here: the plugins are handed to the config
    // layer and the state store before anything reads a configuration.
    temboard_agent::plugins::install_catalog();
    if let Err(e) = run(Args::parse()) {
        eprintln!("temboard-agent-adduser: {e}");
        std::process::exit(1);
    }
}
