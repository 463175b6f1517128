//! API tokens (the PMM idea): `Authorization: Bearer <token>` on session
//! routes. Only a SHA-256 of each token is stored; the token is shown once at
//! creation. Checked at every request, so a revocation applies at once.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Prefix that makes agent tokens recognizable in logs and secret scanners.
pub const PREFIX: &str = "tba_";

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Name given at creation.
    pub name: String,
    /// Only GET requests allowed.
    pub read_only: bool,
    /// Local creation time.
    pub created_at: String,
}

fn digest(token: &str) -> String {
    crate::users::hex(&Sha256::digest(token.as_bytes()))
}

/// Creates a token; `Ok(None)` when the name is taken.
pub fn create(conn: &Connection, name: &str, read_only: bool) -> Result<Option<String>, String> {
    let id = crate::store::sessions::new_id().map_err(|e| format!("OS random source: {e}"))?;
    let token = format!("{PREFIX}{id}");
    add(conn, name, &token, read_only)
}

/// Adds a token made by `create` on another agent (so a fleet shares one
/// token for, say, its Prometheus): it must have the shape `create` gives
/// (`tba_` and 64 lowercase hexadecimal digits) and look like what the OS
/// random source gives ([`random_looking`]), so no guessable token gets in.
pub fn import(
    conn: &Connection,
    name: &str,
    token: &str,
    read_only: bool,
) -> Result<Option<String>, String> {
    let id = token.strip_prefix(PREFIX).unwrap_or("");
    if id.len() != 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "not a token made by 'temboard-agent-token create': expected {PREFIX} and 64 lowercase hexadecimal digits"
        ));
    }
    if !random_looking(id.as_bytes()) {
        return Err(
            "refused: this token is guessable (too few distinct digits, a long run or a repeated pattern); make one with 'temboard-agent-token create'"
                .into(),
        );
    }
    add(conn, name, token, read_only)
}

/// Whether 64 hexadecimal digits could have come from 32 random bytes:
/// at least 10 distinct digits, no digit repeated more than 10 times in a
/// row, and no pattern repeated with a period of 32 or less. Each fails
/// for random bytes with a probability under 10⁻¹⁰ (the run, the weakest),
/// and each refuses what a person types (`AAAA…`, `0123…` repeated, a
/// word padded with zeros).
fn random_looking(digits: &[u8]) -> bool {
    let distinct = digits
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let longest_run = digits
        .chunk_by(|a, b| a == b)
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let periodic = (1..=32).any(|p| (p..digits.len()).all(|i| digits[i] == digits[i - p]));
    distinct >= 10 && longest_run <= 10 && !periodic
}

fn add(
    conn: &Connection,
    name: &str,
    token: &str,
    read_only: bool,
) -> Result<Option<String>, String> {
    let token = token.to_string();
    let n = conn
        .execute(
            "INSERT INTO api_tokens (name, hash, read_only, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
            params![name, digest(&token), read_only, crate::store::notifications::local_date()],
        )
        .map_err(|e| e.to_string())?;
    Ok((n == 1).then_some(token))
}

/// Every token, by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenInfo>> {
    let mut stmt =
        conn.prepare("SELECT name, read_only, created_at FROM api_tokens ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(TokenInfo {
            name: r.get(0)?,
            read_only: r.get(1)?,
            created_at: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Revokes a token; false if there was none by that name.
pub fn revoke(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM api_tokens WHERE name = ?1", [name])? == 1)
}

/// The token's name and read-only flag, if it exists.
pub fn lookup(conn: &Connection, token: &str) -> rusqlite::Result<Option<(String, bool)>> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    conn.prepare_cached("SELECT name, read_only FROM api_tokens WHERE hash = ?1")?
        .query_row([digest(token)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_takes_only_tokens_made_by_create() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::store::open(dir.path()).unwrap();
        let token = create(&a, "prometheus", true).unwrap().unwrap();
        let other = tempfile::tempdir().unwrap();
        let b = crate::store::open(other.path()).unwrap();
        assert!(import(&b, "prometheus", "tba_short", true).is_err());
        assert!(import(&b, "prometheus", "password123", true).is_err());
        assert_eq!(
            import(&b, "prometheus", &token, true).unwrap(),
            Some(token.clone())
        );
        assert_eq!(
            lookup(&b, &token).unwrap(),
            Some(("prometheus".into(), true))
        );
    }

    #[test]
    fn guessable_tokens_are_refused_and_random_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        let b = crate::store::open(dir.path()).unwrap();
        for (i, guessable) in [
            "A".repeat(64),
            "a".repeat(64),
            "0123456789abcdef".repeat(4),
            format!("{}{}", "deadbeef", "0".repeat(56)),
            "0011223344556677".repeat(4),
            format!("{}{}", "0123456789abcdef0123456789abcdef", "9".repeat(32)),
        ]
        .iter()
        .enumerate()
        {
            let r = import(&b, &format!("t{i}"), &format!("tba_{guessable}"), true);
            assert!(r.is_err(), "{guessable} was taken");
        }
        // Every token create makes passes (1,000 of them).
        for _ in 0..1_000 {
            let id = crate::store::sessions::new_id().unwrap();
            assert!(random_looking(id.as_bytes()), "{id} refused");
        }
    }

    #[test]
    fn create_use_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        let t = create(&c, "grafana", true).unwrap().unwrap();
        assert!(t.starts_with(PREFIX) && t.len() == PREFIX.len() + 64);
        assert_eq!(create(&c, "grafana", false).unwrap(), None);
        assert_eq!(lookup(&c, &t).unwrap(), Some(("grafana".into(), true)));
        assert_eq!(lookup(&c, "tba_nope").unwrap(), None);
        let stored: String = c
            .query_row("SELECT hash FROM api_tokens", [], |r| r.get(0))
            .unwrap();
        assert!(
            !stored.contains(&t[PREFIX.len()..]),
            "token stored in clear"
        );
        assert_eq!(list(&c).unwrap()[0].name, "grafana");
        assert!(revoke(&c, "grafana").unwrap());
        assert_eq!(lookup(&c, &t).unwrap(), None);
        assert!(!revoke(&c, "grafana").unwrap());
    }
}
