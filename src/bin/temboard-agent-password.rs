//! `temboard-agent-password USERNAME:PASSWORD`: prints the users file line
//! `USERNAME:HASH` (the 2.x hash), to paste into `[temboard] users`.

use temboard_agent::users::hash_password;

const USAGE: &str = "usage: temboard-agent-password USERNAME:PASSWORD\n\n\
Prints USERNAME:HASH, a line for the users file ([temboard] users).\n\
The password cannot contain ':'; use temboard-agent-adduser to add a user interactively.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let parts: Option<Vec<&str>> = match args.as_slice() {
        [one] => Some(one.split(':').collect()),
        _ => None,
    };
    match parts.as_deref() {
        Some([user, password]) if !user.is_empty() => {
            println!("{user}:{}", hash_password(user, password))
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(1);
        }
    }
}
