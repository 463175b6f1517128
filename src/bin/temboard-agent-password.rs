//! `temboard-agent-password [--legacy-hash] USERNAME:PASSWORD`: prints the
//! users file line `USERNAME:HASH` (Argon2id; the 2.x hash with
//! `--legacy-hash`), to paste into `[temboard] users`.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]

use temboard_agent::users::{new_hash, HashFormat};

const USAGE: &str = "usage: temboard-agent-password [--legacy-hash] USERNAME:PASSWORD\n\n\
Prints USERNAME:HASH, a line for the users file ([temboard] users).\n\
The hash is Argon2id (salted, memory-hard); --legacy-hash writes the 2.x\n\
hash instead, for a file a 2.x agent must also read.\n\
The password cannot contain ':'; use temboard-agent-adduser to add a user interactively.";

fn main() {
    // The program is assembled here: the plugins are handed to the config
    // layer and the state store before anything reads a configuration.
    temboard_agent::plugins::install_catalog();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let format = if let Some(i) = args.iter().position(|a| a == "--legacy-hash") {
        args.remove(i);
        HashFormat::Legacy
    } else {
        HashFormat::Argon2id
    };
    let parts: Option<Vec<&str>> = match args.as_slice() {
        [one] => Some(one.split(':').collect()),
        _ => None,
    };
    match parts.as_deref() {
        Some([user, password]) if !user.is_empty() => match new_hash(format, user, password) {
            Ok(h) => println!("{user}:{h}"),
            Err(e) => {
                eprintln!("temboard-agent-password: {e}");
                std::process::exit(1);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(1);
        }
    }
}
