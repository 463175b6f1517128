//! `temboard-agent-register`: registers this agent in a temBoard UI (facts
//! 10.6): reads the agent's `/discover`, logs in to the UI (`/json/login`),
//! then posts `/json/register/instance` with the agent's address, port, key
//! and host facts.
//!
//! `-h` is the agent host, as in 2.x; help is `-?` or `--help`.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]

use std::path::PathBuf;

use clap::{ArgAction, Parser};
use serde_json::{json, Value};
use temboard_agent::config;
use temboard_agent::http_client::{agent, error_of};
use temboard_agent::users::{valid_password, valid_username};

/// Register this agent in a temBoard UI.
#[derive(Debug, Parser)]
#[command(name = "temboard-agent-register", version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    config: temboard_agent::cli::ConfigArg,
    /// Address of the agent as the UI will reach it.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    host: String,
    /// Port of the agent.
    #[arg(short = 'p', long = "port", default_value_t = 2345)]
    port: u16,
    /// Comma separated groups of the instance in the UI.
    #[arg(short = 'g', long = "groups")]
    groups: Option<String>,
    /// Verify the UI's certificate against this CA file (2.x never verified).
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Accepted for compatibility with 2.x; no effect.
    #[arg(long, value_name = "LOGGERS", num_args = 0..=1, default_missing_value = "true")]
    debug: Option<String>,
    /// Print help.
    #[arg(short = '?', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// temBoard UI address, e.g. https://temboard-ui.lan:8888
    ui_address: String,
}

fn ask(prompt: &str, secret: bool) -> Result<String, String> {
    temboard_agent::cli::prompt(prompt, secret)
}

fn run(args: Args) -> Result<(), String> {
    let req = args.config.load_request();
    let values = config::raw_values(&req, &[("temboard", "key"), ("temboard", "port")])
        .map_err(|e| format!("invalid configuration:\n{e}"))?;
    let key = values[0]
        .clone()
        .ok_or("[temboard] key is not set: the UI needs it to accept this agent's data")?;
    let agent_port = values[1].clone().unwrap_or_else(|| "2345".into());

    let to_agent = agent(None)?;
    let mut resp = to_agent
        .get(&format!("https://{}:{}/discover", args.host, args.port))
        .call()
        .map_err(|e| format!("cannot reach the agent at {}:{}: {e}", args.host, args.port))?;
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if !resp.status().is_success() {
        return Err(format!("agent /discover failed: {}", error_of(&body)));
    }
    let discover: Value =
        serde_json::from_str(&body).map_err(|e| format!("agent /discover: {e}"))?;

    let username = match std::env::var("TEMBOARD_UI_USER") {
        Ok(u) => u,
        Err(_) => ask(" Username: ", false)?,
    };
    if !valid_username(&username) {
        return Err("Invalid username.".into());
    }
    let password = match std::env::var("TEMBOARD_UI_PASSWORD") {
        Ok(p) => p,
        Err(_) => ask(" Password: ", true)?,
    };
    if !valid_password(&password) {
        return Err("Invalid password.".into());
    }
    if args.ca_file.is_none() && args.ui_address.starts_with("https") {
        eprintln!("warning: the UI's certificate is not verified (use --ca-file)");
    }
    let ui = agent(args.ca_file.as_deref())?;
    let base = args.ui_address.trim_end_matches('/');
    let mut resp = ui
        .post(&format!("{base}/json/login"))
        .header("Content-Type", "application/json")
        .send(json!({ "username": username, "password": password }).to_string())
        .map_err(|e| format!("cannot reach the UI at {base}: {e}"))?;
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|kv| kv.trim_start().starts_with("temboard="))
                .map(|s| s.trim().to_string())
        });
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if !resp.status().is_success() {
        return Err(format!("UI login failed: {}", error_of(&body)));
    }
    let cookie = cookie.ok_or("the UI did not return a temboard session cookie")?;
    let groups: Value = match &args.groups {
        Some(g) => json!(g
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()),
        None => Value::Null,
    };
    let payload = json!({
        "hostname": discover["hostname"],
        "agent_key": key,
        "agent_address": args.host,
        "agent_port": agent_port,
        "cpu": discover["cpu"],
        "memory_size": discover["memory_size"],
        "pg_port": discover["pg_port"],
        "pg_data": discover["pg_data"],
        "pg_version": discover["pg_version"],
        "plugins": discover["plugins"],
        "groups": groups,
    });
    let mut resp = ui
        .post(&format!("{base}/json/register/instance"))
        .header("Content-Type", "application/json")
        .header("Cookie", &cookie)
        .send(payload.to_string())
        .map_err(|e| format!("cannot reach the UI at {base}: {e}"))?;
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if !resp.status().is_success() {
        return Err(format!("registration refused: {}", error_of(&body)));
    }
    println!("Done.");
    Ok(())
}

fn main() {
    // The program is assembled here: the plugins are handed to the config
    // layer and the state store before anything reads a configuration.
    temboard_agent::plugins::install_catalog();
    if let Err(e) = run(Args::parse()) {
        eprintln!("temboard-agent-register: {e}");
        std::process::exit(1);
    }
}
