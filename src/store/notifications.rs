//! Notifications: `{date, username, message}` rows, newest first, bounded by a
//! row count. Written inside the caller's transaction, so a notification is
//! committed together with what it reports.
//!
//! Two classes, each with its own bound: audit records ([`push_audit`]:
//! settings, pg_hba and pg_ident changes, kills, pg_ctl controls, logins)
//! and routine ones ([`push`]: logouts, expired sessions, maintenance
//! tasks). Why: with one first-in-first-out bound, 10,200 scheduled tasks
//! erased every earlier login and `archive_command` change. Both are listed
//! together, newest first.

use rusqlite::{params, Connection};
use serde::Serialize;

/// Rows kept of each class; older ones are removed on insert.
pub const MAX_ROWS: i64 = 10_000;
/// Bytes of a message kept (longer ones are cut at a character boundary and
/// marked): with the row cap, this bounds the table (10,000 × 2 KiB) and
/// `/notifications` whatever a client sends (a 1 MB `log_line_prefix`).
pub const MAX_MESSAGE_BYTES: usize = 2048;
/// Bytes of a user name kept.
const MAX_USERNAME_BYTES: usize = 256;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn bounded(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// One notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Local time `%Y-%m-%dT%H:%M:%S`.
    pub date: String,
    /// Who did it.
    pub username: String,
    /// What happened (2.x texts: `Login`, `Logout`, `Session expired`, ...).
    pub message: String,
}

/// Local time in the 2.x notification format.
pub fn local_date() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Inserts one routine notification and trims its class (call inside a
/// transaction).
pub fn push(conn: &Connection, username: &str, message: &str) -> rusqlite::Result<()> {
    insert(conn, username, message, false)
}

/// Inserts one audit record (a change or action an operator must be able
/// to trace) and trims its class (call inside a transaction).
pub fn push_audit(conn: &Connection, username: &str, message: &str) -> rusqlite::Result<()> {
    insert(conn, username, message, true)
}

fn insert(conn: &Connection, username: &str, message: &str, audit: bool) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO notifications (date, username, message, audit) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        local_date(),
        bounded(username, MAX_USERNAME_BYTES),
        bounded(message, MAX_MESSAGE_BYTES),
        audit
    ])?;
    conn.prepare_cached(
        "DELETE FROM notifications WHERE audit = ?1 AND seq <= \
         (SELECT seq FROM notifications WHERE audit = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![audit, MAX_ROWS])?;
    Ok(())
}

/// Newest first, at most `limit` rows.
pub fn list(conn: &Connection, limit: i64) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(
        "SELECT date, username, message FROM notifications ORDER BY seq DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(Notification {
            date: r.get(0)?,
            username: r.get(1)?,
            message: r.get(2)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        push(&c, "alice", &long).unwrap();
        let m = &list(&c, 1).unwrap()[0].message;
        assert!(
            m.len() <= MAX_MESSAGE_BYTES && m.ends_with('…'),
            "{}",
            m.len()
        );
        assert!(m.starts_with("éé"));
    }

    #[test]
    fn newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        for i in 0..(MAX_ROWS + 5) {
            push(&c, "alice", &format!("m{i}")).unwrap();
        }
        let all = list(&c, i64::MAX).unwrap();
        assert_eq!(all.len() as i64, MAX_ROWS);
        assert_eq!(all[0].message, format!("m{}", MAX_ROWS + 4));
        assert_eq!(all.last().unwrap().message, "m5");
        assert_eq!(all[0].date.len(), 19);
    }

    #[test]
    fn a_flood_of_routine_records_keeps_the_audit_ones() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        push_audit(&c, "alice", "Login").unwrap();
        push_audit(&c, "alice", "Setting archive_command changed").unwrap();
        for i in 0..(MAX_ROWS + 200) {
            push(&c, "bob", &format!("Maintenance task {i} scheduled")).unwrap();
        }
        let all = list(&c, i64::MAX).unwrap();
        assert_eq!(all.len() as i64, MAX_ROWS + 2);
        assert_eq!(all.last().unwrap().message, "Login");
        assert!(all
            .iter()
            .any(|n| n.message == "Setting archive_command changed"));
    }
}
