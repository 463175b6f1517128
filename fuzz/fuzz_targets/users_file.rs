//! Users file parser and password check (`src/users.rs`).
//!
//! Why: the users file is read at every login, by the network-facing http
//! worker, and is edited by hand or appended to by `temboard-agent-adduser`.
//! A malformed line must be skipped with a warning, never crash a login.
//!
//! Properties checked:
//! - `parse` never panics; every non-blank line becomes exactly one entry or
//!   one warning naming the file and the line;
//! - entries have a non-empty user name and hash without `:`;
//! - `check` agrees with its definition: true exactly when the first line of
//!   that user holds `hash_password(user, password)`;
//! - a line written the way `temboard-agent-adduser` writes it (prepended to
//!   the fuzzed text) authenticates with its password and no other.

#![no_main]

use libfuzzer_sys::fuzz_target;
use temboard_agent::users::{check, hash_password, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let f = parse("users", &text);

    let non_blank = text
        .lines()
        .filter(|l| !l.trim_end_matches('\r').trim().is_empty())
        .count();
    assert_eq!(
        f.entries.len() + f.warnings.len(),
        non_blank,
        "each non-blank line is an entry or a warning"
    );
    for w in &f.warnings {
        assert!(w.starts_with("users, line "), "warning names the file: {w}");
    }
    for e in &f.entries {
        assert!(!e.username.is_empty() && !e.hash.is_empty());
        assert!(!e.username.contains(':') && !e.hash.contains(':'));
    }

    // Candidate credentials from the input: the first entry's user name (or
    // a fixed one) and the last line as the password.
    let username = f
        .entries
        .first()
        .map(|e| e.username.clone())
        .unwrap_or_else(|| "alice".to_string());
    let password = text.lines().last().unwrap_or("").to_string();
    let expected = f
        .entries
        .iter()
        .find(|e| e.username == username)
        .is_some_and(|e| e.hash == hash_password(&username, &password));
    assert_eq!(check(&f, &username, &password), expected);
    assert!(
        !check(&f, "", &password),
        "an empty user name never matches"
    );

    // A line as temboard-agent-adduser appends it, put first so it wins.
    let user: String = username
        .chars()
        .filter(|c| *c != ':' && *c != '\n')
        .collect();
    let user = if user.trim().is_empty() {
        "bob".to_string()
    } else {
        user
    };
    let line = format!("{user}:{}\n", hash_password(&user, &password));
    let f2 = parse("users", &(line + &text));
    assert!(check(&f2, &user, &password), "adduser line does not log in");
    let wrong = format!("{password}x");
    assert!(!check(&f2, &user, &wrong), "wrong password accepted");
});
