//! The users file (`[temboard] users`): `username:hash` lines. Read at each
//! login (edits apply without a reload); appended to by
//! `temboard-agent-adduser`.
//!
//! Two hash formats are accepted: the 2.x one (one unsalted SHA-512 round,
//! so existing files keep working) and Argon2id in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which the tools write by
//! default: salted and memory-hard, so a stolen users file costs an attacker
//! about 20 ms of one core and 19 MiB per guess instead of a microsecond.
//! The price is paid at login too (tens of ms, on the blocking pool, a few at
//! a time): by design.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// Which hash the tools write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFormat {
    /// Argon2id, salted from the OS random source (the default).
    Argon2id,
    /// The 2.x hash, for files shared with a 2.x agent.
    Legacy,
}

/// A users file hash of `password` for `username` in `format`.
pub fn new_hash(format: HashFormat, username: &str, password: &str) -> Result<String, String> {
    match format {
        HashFormat::Legacy => Ok(hash_password(username, password)),
        HashFormat::Argon2id => {
            use argon2::password_hash::{PasswordHasher, SaltString};
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| format!("OS random source: {e}"))?;
            let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
            argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| format!("argon2: {e}"))
        }
    }
}

/// `base64(SHA-512(hex(password) ‖ SHA-512(username)))`, facts 3.2.
pub fn hash_password(username: &str, password: &str) -> String {
    let user_digest = Sha512::digest(username.as_bytes());
    let mut h = Sha512::new();
    h.update(hex(password.as_bytes()).as_bytes());
    h.update(user_digest);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// 2.x `T_USERNAME`: `^[a-z0-9]{3,16}$`.
pub fn valid_username(u: &str) -> bool {
    (3..=16).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// 2.x `T_PASSWORD`: `^.{5,32}$` (characters, no line break).
pub fn valid_password(p: &str) -> bool {
    let n = p.chars().count();
    (5..=32).contains(&n) && !p.contains('\n') && !p.contains('\r')
}

/// One usable line of the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// User name.
    pub username: String,
    /// Stored hash.
    pub hash: String,
}

/// Parsed users file: entries, and a warning per malformed line (file and
/// line named) for the caller to log.
#[derive(Debug, Default)]
pub struct UsersFile {
    /// Entries in file order.
    pub entries: Vec<UserEntry>,
    /// Malformed lines, skipped.
    pub warnings: Vec<String>,
}

/// Parses the users file text; `shown` names the file in warnings.
pub fn parse(shown: &str, text: &str) -> UsersFile {
    let mut out = UsersFile::default();
    for (idx, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        if parts.len() != 2 || parts[0].is_empty() || parts[1].is_empty() {
            out.warnings.push(format!(
                "{shown}, line {}: malformed users file line skipped (expected username:hash)",
                idx + 1
            ));
            continue;
        }
        out.entries.push(UserEntry {
            username: parts[0].to_string(),
            hash: parts[1].to_string(),
        });
    }
    out
}

/// Reads and parses the users file.
pub fn load(path: &Path) -> std::io::Result<UsersFile> {
    let text = std::fs::read_to_string(path)?;
    Ok(parse(&path.display().to_string(), &text))
}

/// Whether `password` is right for `username` (first matching line wins, as
/// in 2.x). The hash comparison is constant-time; an unknown user costs the
/// same hash computation as a known one.
pub fn check(file: &UsersFile, username: &str, password: &str) -> bool {
    let entry = file.entries.iter().find(|e| e.username == username);
    if let Some(e) = entry.filter(|e| e.hash.starts_with("$argon2")) {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        // The PHC string names its own parameters and salt; the comparison
        // inside is constant-time.
        return PasswordHash::new(&e.hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
    }
    let computed = hash_password(username, password);
    match entry {
        Some(e) => bool::from(e.hash.as_bytes().ct_eq(computed.as_bytes())),
        None => {
            let _ = computed.as_bytes().ct_eq(computed.as_bytes());
            false
        }
    }
}

/// Appends `username:hash` in a single write, never truncating the file and
/// keeping its mode; adds a line break first if the file lacks a final one.
pub fn append(path: &Path, username: &str, hash: &str) -> std::io::Result<()> {
    let existing = std::fs::read(path)?;
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        line.push('\n');
    }
    line.push_str(&format!("{username}:{hash}\n"));
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_of_the_python_agent() {
        assert_eq!(
            hash_password("temboard", "password"),
            "XZ4F0k5TWSVaseLoUgK1ko5p6lSTouoLzjhST/9wQnpVmSVSmJM5HtsrkhLMQX11CER3K5S0Mq9Rq33D/BxVDg=="
        );
        assert_eq!(
            hash_password("alice", "alice"),
            "Xm4iJH8aQmXRvrsLy/fNbQU23K6/FlEVRhhPZKO2aHvYVGzCft+u7RXQ9Z48IyVtnS+n47UM3QUM4is0BVTPOA=="
        );
    }

    #[test]
    fn parse_and_check() {
        let text = format!(
            "\nalice:{}\nbroken line\na:b:c\nalice:other\nbob:{}\n",
            hash_password("alice", "alice"),
            hash_password("bob", "secret")
        );
        let f = parse("users", &text);
        assert_eq!(f.entries.len(), 3);
        assert_eq!(f.warnings.len(), 2);
        assert!(f.warnings[0].starts_with("users, line 3: malformed"));
        assert!(f.warnings[1].starts_with("users, line 4: malformed"));
        assert!(check(&f, "alice", "alice"));
        assert!(!check(&f, "alice", "other"));
        assert!(check(&f, "bob", "secret"));
        assert!(!check(&f, "carol", "secret"));
    }

    #[test]
    fn argon2id_hashes_are_salted_and_checked() {
        let a = new_hash(HashFormat::Argon2id, "alice", "s3cret").unwrap();
        let b = new_hash(HashFormat::Argon2id, "alice", "s3cret").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(!a.contains(':'));
        let f = parse(
            "users",
            &format!("alice:{a}\nbob:{}\n", hash_password("bob", "legacy")),
        );
        assert!(check(&f, "alice", "s3cret"));
        assert!(!check(&f, "alice", "s3cret!"));
        assert!(check(&f, "bob", "legacy"));
        assert!(!check(
            &parse("u", "carol:$argon2id$garbage\n"),
            "carol",
            "x"
        ));
        assert_eq!(
            new_hash(HashFormat::Legacy, "alice", "alice").unwrap(),
            hash_password("alice", "alice")
        );
    }

    #[test]
    fn formats() {
        assert!(valid_username("abc") && valid_username("a1b2c3d4e5f6g7h8"));
        assert!(
            !valid_username("ab")
                && !valid_username("Alice")
                && !valid_username("a_b")
                && !valid_username("a1b2c3d4e5f6g7h8x")
        );
        assert!(valid_password("12345") && valid_password("ünïcödé"));
        assert!(
            !valid_password("1234")
                && !valid_password(&"x".repeat(33))
                && !valid_password("abc\ndef")
        );
    }

    #[test]
    fn append_keeps_content_and_adds_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "alice:x").unwrap();
        append(&p, "bob", "y").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "alice:x\nbob:y\n");
        append(&p, "carol", "z").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "alice:x\nbob:y\ncarol:z\n"
        );
    }
}
