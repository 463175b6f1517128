//! `temboard-agent`: the supervisor when started by an operator, or a worker
//! when exec'd by the supervisor (role given in the environment, see ipc::fds).

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]

use temboard_agent::cli::{Cli, Command};
use temboard_agent::ipc::fds::ROLE_ENV;
use temboard_agent::ipc::Role;
use temboard_agent::{certgen, config, supervisor, users, workers};

fn main() {
    // The program is assembled here: the plugins are handed to the config
    // layer and the state store before anything reads a configuration.
    temboard_agent::plugins::install_catalog();
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
    let cli = Cli::parse_with_components();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let request = cli.load_request(env);
    let code = match &cli.command {
        Some(Command::ShowConfig) => show_config(&request),
        Some(Command::Doctor) => temboard_agent::doctor::run(&request),
        Some(Command::Setup {
            prefix,
            home_prefix,
            pghost,
            pgport,
            pguser,
            pgdatabase,
            first_port,
            ui_url,
            ui_ca_file,
            insecure,
        }) => {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let opts = temboard_agent::setup::SetupOptions {
                prefix: prefix.clone(),
                home_prefix: home_prefix.clone(),
                pghost: pghost
                    .clone()
                    .or_else(|| env("PGHOST"))
                    .unwrap_or_else(|| "/var/run/postgresql".into()),
                pgport: pgport
                    .or_else(|| env("PGPORT").and_then(|p| p.parse().ok()))
                    .unwrap_or(5432),
                pguser: pguser
                    .clone()
                    .or_else(|| env("PGUSER"))
                    .unwrap_or_else(|| "postgres".into()),
                pgdatabase: pgdatabase
                    .clone()
                    .or_else(|| env("PGDATABASE"))
                    .unwrap_or_else(|| "postgres".into()),
                hostname: env("TEMBOARD_HOSTNAME"),
                first_port: *first_port,
                ui_url: ui_url.clone(),
                ui_ca_file: ui_ca_file.clone(),
                insecure: *insecure,
            };
            match temboard_agent::setup::run(&opts) {
                Ok(r) => {
                    if r.created {
                        println!("Configuration: {}", r.configfile.display());
                        println!("Port:          {}", r.port);
                        println!("Key:           {}", r.key);
                        println!();
                        if let Some((path, fp)) = &r.signing_key {
                            println!("UI key:        {}", path.display());
                            println!("{fp}");
                        }
                        if r.pg_stat_statements {
                            println!("Statements:    pg_stat_statements is available: list statements in [temboard] plugins to serve GET /statements");
                        }
                        println!();
                        if r.signing_key.is_some() {
                            println!("Next: start:        systemctl start temboard-agent@<version>-<name> (or temboard-agent -c {})", r.configfile.display());
                            println!("      register:     temboard-agent -c {} register -e <environment>", r.configfile.display());
                            println!(
                                "      (2.x UI too:  temboard-agent-adduser -c {})",
                                r.configfile.display()
                            );
                        } else {
                            println!(
                                "Next: add a user:   temboard-agent-adduser -c {}",
                                r.configfile.display()
                            );
                            println!("      start:        temboard-agent -c {} (or systemctl start temboard-agent@<version>-<name>)", r.configfile.display());
                            println!("      register:     temboard-agent-register -c {} -h <this host> -p {} <UI address>", r.configfile.display(), r.port);
                        }
                    } else {
                        println!(
                            "{} exists already: nothing changed (port {}).",
                            r.configfile.display(),
                            r.port
                        );
                    }
                    0
                }
                Err(e) => {
                    eprintln!("temboard-agent setup: {e}");
                    1
                }
            }
        }
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
        Some(Command::HashPassword {
            credentials,
            legacy_hash,
        }) => match credentials.split_once(':') {
            Some((user, password)) if !user.is_empty() => {
                let format = if *legacy_hash {
                    users::HashFormat::Legacy
                } else {
                    users::HashFormat::Argon2id
                };
                match users::new_hash(format, user, password) {
                    Ok(h) => {
                        println!("{user}:{h}");
                        0
                    }
                    Err(e) => {
                        eprintln!("temboard-agent: {e}");
                        1
                    }
                }
            }
            _ => {
                eprintln!("temboard-agent: expected USER:PASSWORD");
                1
            }
        },
        Some(Command::Routes) => {
            print_routes();
            0
        }
        Some(Command::Discover) => done(temboard_agent::ui9::discover(&request)),
        Some(Command::FetchKey { force, insecure }) => {
            done(temboard_agent::ui9::fetch_key(&request, *force, *insecure))
        }
        Some(Command::Register {
            host,
            port,
            environment,
            ui_url,
            insecure,
        }) => done(temboard_agent::ui9::register(
            &request,
            &temboard_agent::ui9::RegisterOptions {
                host: host.clone(),
                port: *port,
                environment: environment.clone(),
                ui_url: ui_url.clone(),
                insecure: *insecure,
            },
        )),
        Some(Command::Serve) | None => supervisor::run(supervisor::Options {
            request,
            daemon: cli.daemon,
            pidfile: cli.pid_file.clone(),
        }),
    };
    std::process::exit(code);
}

/// Exit status of an operator command, its error on stderr.
fn done(outcome: temboard_agent::ui9::Outcome) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("temboard-agent: {e}");
            1
        }
    }
}

/// `routes`: the 2.x table (auth: session, key, none) and the 9.x one.
fn print_routes() {
    use temboard_agent::workers::http::routes;
    let head = |last: &str| println!("{:<7} {:<48} {:<15} {last}", "METHOD", "PATH", "PLUGIN");
    head("2.x AUTH");
    for r in routes::all()
        .into_iter()
        .filter(|r| r.contract == temboard_agent::api::Contract::V2)
    {
        let auth = match (r.session, r.key) {
            (true, true) => "session/token/key",
            (true, false) => "session/token",
            _ => "none",
        };
        println!(
            "{:<7} {:<48} {:<15} {}",
            r.method,
            r.path,
            r.plugin.unwrap_or("core"),
            auth
        );
    }
    println!();
    head("9.x SIGNED");
    for r in routes::all()
        .into_iter()
        .filter(|r| r.contract == temboard_agent::api::Contract::V9)
    {
        let signed = match (r.session, r.signature_optional) {
            (true, _) => "yes",
            (false, true) => "optional",
            (false, false) => "no",
        };
        println!(
            "{:<7} {:<48} {:<15} {signed}",
            r.method,
            r.path,
            r.plugin.unwrap_or("core")
        );
    }
}

fn show_config(request: &config::LoadRequest) -> i32 {
    match config::load(request) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let out = serde_json::json!({
                "config": loaded.config.redacted(),
                "authentication": loaded.config.authentication(),
                "sources": loaded.sources,
            });
            match serde_json::to_string_pretty(&out) {
                Ok(text) => {
                    println!("{text}");
                    // Warnings (a misspelt key, an unknown section) fail
                    // provisioning scripts: the value meant is not in force.
                    if loaded.warnings.is_empty() {
                        0
                    } else {
                        2
                    }
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
