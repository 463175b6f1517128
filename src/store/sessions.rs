//! API sessions: 64-hex ids from the OS random source, an idle TTL, one live
//! session per user (2.x returns the same id on re-login), a bounded table.
//! Every change is one transaction with its notification.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::notifications;

/// Sessions kept at most; the least recently used is dropped beyond.
pub const MAX_SESSIONS: i64 = 1_000;

/// Seconds since the epoch, as a float.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A new session id: 32 bytes from the OS random source, in hex.
pub fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(crate::users::hex(&bytes))
}

/// Logs `username` in: returns the live session of that user, refreshed, or
/// a new one; records the `Login` notification in the same transaction.
pub fn login(
    conn: &mut Connection,
    username: &str,
    ttl: f64,
    new_id: String,
) -> rusqlite::Result<String> {
    let now = now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let live: Option<String> = tx
        .query_row(
            "SELECT id FROM sessions WHERE username = ?1 AND last_used > ?2 ORDER BY last_used DESC LIMIT 1",
            params![username, now - ttl],
            |r| r.get(0),
        )
        .optional()?;
    let id = match live {
        Some(id) => {
            tx.execute(
                "UPDATE sessions SET last_used = ?1 WHERE id = ?2",
                params![now, id],
            )?;
            id
        }
        None => {
            // Sessions of this user still in the table are expired ones the
            // purge has not reached yet: they expire now, with their notice.
            let expired = tx.execute("DELETE FROM sessions WHERE username = ?1", [username])?;
            for _ in 0..expired {
                notifications::push(&tx, username, "Session expired")?;
            }
            tx.execute(
                "INSERT INTO sessions (id, username, created_at, last_used) VALUES (?1, ?2, ?3, ?3)",
                params![new_id, username, now],
            )?;
            tx.execute(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions ORDER BY last_used DESC LIMIT -1 OFFSET ?1)",
                [MAX_SESSIONS],
            )?;
            new_id
        }
    };
    notifications::push_audit(&tx, username, "Login")?;
    tx.commit()?;
    Ok(id)
}

/// The user of a live session, refreshing its idle time. The refresh is
/// written only when the last one is older than `refresh_after` seconds, so a
/// busy client does not cost a write per request.
///
/// The refresh is best-effort: when it cannot be written (the home's disk
/// is full, the database is busy), the session is still valid — reads must
/// keep working — and the failure is logged; `/health` reports the store.
pub fn validate(
    conn: &Connection,
    id: &str,
    ttl: f64,
    refresh_after: f64,
) -> rusqlite::Result<Option<String>> {
    let now = now();
    let found: Option<(String, f64)> = conn
        .prepare_cached("SELECT username, last_used FROM sessions WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((username, last_used)) = found else {
        return Ok(None);
    };
    if now - last_used >= ttl {
        return Ok(None);
    }
    if now - last_used >= refresh_after {
        let refreshed = conn
            .prepare_cached("UPDATE sessions SET last_used = ?1 WHERE id = ?2 AND last_used < ?1")
            .and_then(|mut st| st.execute(params![now, id]));
        if let Err(e) = refreshed {
            tracing::warn!("cannot refresh a session's idle time (kept valid): {e}");
        }
    }
    Ok(Some(username))
}

/// Ends a session with the `Logout` notification; false if it did not exist.
pub fn logout(conn: &mut Connection, id: &str, username: &str) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
    if n > 0 {
        notifications::push(&tx, username, "Logout")?;
    }
    tx.commit()?;
    Ok(n > 0)
}

/// Removes sessions idle for `ttl` seconds, each with a `Session expired`
/// notification; returns the users concerned.
pub fn purge_expired(conn: &mut Connection, ttl: f64) -> rusqlite::Result<Vec<String>> {
    let cutoff = now() - ttl;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let users: Vec<String> = {
        let mut stmt = tx.prepare("SELECT username FROM sessions WHERE last_used <= ?1")?;
        let rows = stmt.query_map([cutoff], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if !users.is_empty() {
        tx.execute("DELETE FROM sessions WHERE last_used <= ?1", [cutoff])?;
        for u in &users {
            notifications::push(&tx, u, "Session expired")?;
        }
    }
    tx.commit()?;
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_reuses_live_session_and_logout_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let a = login(&mut c, "alice", 3600.0, new_id().unwrap()).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let again = login(&mut c, "alice", 3600.0, new_id().unwrap()).unwrap();
        assert_eq!(a, again);
        let b = login(&mut c, "bob", 3600.0, new_id().unwrap()).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            validate(&c, &a, 3600.0, 10.0).unwrap().as_deref(),
            Some("alice")
        );
        assert!(logout(&mut c, &a, "alice").unwrap());
        assert_eq!(validate(&c, &a, 3600.0, 10.0).unwrap(), None);
        assert!(!logout(&mut c, &a, "alice").unwrap());
        let msgs: Vec<String> = notifications::list(&c, 10)
            .unwrap()
            .into_iter()
            .map(|n| n.message)
            .collect();
        assert_eq!(msgs, vec!["Logout", "Login", "Login", "Login"]);
    }

    #[test]
    fn expiry_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let a = login(&mut c, "alice", 3600.0, new_id().unwrap()).unwrap();
        c.execute("UPDATE sessions SET last_used = last_used - 100", [])
            .unwrap();
        assert_eq!(validate(&c, &a, 50.0, 1.0).unwrap(), None);
        assert_eq!(
            validate(&c, &a, 3600.0, 1.0).unwrap().as_deref(),
            Some("alice")
        );
        c.execute("UPDATE sessions SET last_used = last_used - 100", [])
            .unwrap();
        assert_eq!(
            purge_expired(&mut c, 50.0).unwrap(),
            vec!["alice".to_string()]
        );
        assert_eq!(
            notifications::list(&c, 1).unwrap()[0].message,
            "Session expired"
        );
        assert!(purge_expired(&mut c, 50.0).unwrap().is_empty());
        // Re-login before the purge ran: the old session still expires with its notice.
        let b = login(&mut c, "bob", 50.0, new_id().unwrap()).unwrap();
        c.execute("UPDATE sessions SET last_used = last_used - 100", [])
            .unwrap();
        let b2 = login(&mut c, "bob", 50.0, new_id().unwrap()).unwrap();
        assert_ne!(b, b2);
        let msgs: Vec<String> = notifications::list(&c, 2)
            .unwrap()
            .into_iter()
            .map(|n| n.message)
            .collect();
        assert_eq!(msgs, vec!["Login", "Session expired"]);
    }

    #[test]
    fn table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        for i in 0..(MAX_SESSIONS + 3) {
            login(&mut c, &format!("u{i}"), 3600.0, new_id().unwrap()).unwrap();
        }
        let n: i64 = c
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MAX_SESSIONS);
    }
}
