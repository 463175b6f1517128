//! `temboard-agent`: the supervisor when started by an operator, or a worker
//! when exec'd by the supervisor (role given in the environment, see ipc::fds).

use clap::Parser;

use temboard_agent::cli::{Cli, Command};
use temboard_agent::ipc::fds::ROLE_ENV;
use temboard_agent::ipc::Role;
use temboard_agent::{certgen, config, supervisor, users, workers};

fn main() {
    if let Ok(name) = std::env::var(ROLE_ENV) {
        let code = match Role::parse(&name) {
            Some(role) => workers::run(role),
            None => {
                eprintln!("temboard-agent: unknown worker role '{name}'");
                2
            }
        };
        std::process::exit(code);
    }
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let request = cli.load_request(env);
    let code = match &cli.command {
        Some(Command::ShowConfig) => show_config(&request),
        Some(Command::GenerateCert {
            cert,
            key,
            hostnames,
        }) => match certgen::write_self_signed(hostnames, cert, key) {
            Ok(()) => {
                println!("wrote {} and {}", cert.display(), key.display());
                0
            }
            Err(e) => {
                eprintln!("temboard-agent: {e}");
                1
            }
        },
        Some(Command::HashPassword { credentials }) => match credentials.split_once(':') {
            Some((user, password)) if !user.is_empty() => {
                println!("{user}:{}", users::hash_password(user, password));
                0
            }
            _ => {
                eprintln!("temboard-agent: expected USER:PASSWORD");
                1
            }
        },
        None => supervisor::run(supervisor::Options {
            request,
            daemon: cli.daemon,
            pidfile: cli.pid_file.clone(),
        }),
    };
    std::process::exit(code);
}

fn show_config(request: &config::LoadRequest) -> i32 {
    match config::load(request) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let out = serde_json::json!({
                "config": loaded.config.redacted(),
                "sources": loaded.sources,
            });
            match serde_json::to_string_pretty(&out) {
                Ok(text) => {
                    println!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("temboard-agent: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("temboard-agent: invalid configuration:\n{e}");
            1
        }
    }
}
