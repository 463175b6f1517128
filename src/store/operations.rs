//! Operations: every PostgreSQL control action is a row (id, type, state,
//! output, user, times), the pg-backup-api idea, so an action interrupted by a
//! crash is visible afterwards instead of silently lost.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::notifications;

/// Rows kept at most (oldest finished ones removed).
pub const MAX_ROWS: i64 = 1_000;

/// The PostgreSQL control actions, one at a time; other operations (the
/// maintenance tasks) run beside them.
const CONTROL: &str = "('start', 'stop', 'restart', 'reload')";

/// One operation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// Random id (32 hex characters).
    pub id: String,
    /// `start`, `stop`, `restart` or `reload`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `IN_PROGRESS`, `DONE` or `FAILED`.
    pub state: String,
    /// API user who asked.
    pub username: String,
    /// Command output (bounded).
    pub output: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Local start time.
    pub start_datetime: String,
    /// Local end time.
    pub end_datetime: Option<String>,
}

/// Starts an operation unless one is in progress: `Ok(Err(running_id))` then.
/// Records the `PostgreSQL <action>` notification in the same transaction.
pub fn begin(
    conn: &mut Connection,
    id: &str,
    kind: &str,
    username: &str,
) -> rusqlite::Result<Result<(), String>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let running: Option<String> = tx
        .query_row(
            &format!("SELECT id FROM operations WHERE state = 'IN_PROGRESS' AND type IN {CONTROL} LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(r) = running {
        return Ok(Err(r));
    }
    begin_beside(&tx, id, kind, username)?;
    notifications::push_audit(&tx, username, &format!("PostgreSQL {kind}"))?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Starts an operation that runs beside others (a maintenance task): no
/// exclusion, no notification (the caller writes its own).
pub fn begin_beside(
    conn: &Connection,
    id: &str,
    kind: &str,
    username: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO operations (id, type, state, username, output, started_at) VALUES (?1, ?2, 'IN_PROGRESS', ?3, '', ?4)",
        params![id, kind, username, notifications::local_date()],
    )?;
    conn.execute(
        "DELETE FROM operations WHERE seq <= (SELECT max(seq) FROM operations) - ?1 AND state <> 'IN_PROGRESS'",
        [MAX_ROWS],
    )?;
    Ok(())
}

/// Ends an operation.
pub fn finish(
    conn: &Connection,
    id: &str,
    done: bool,
    output: &str,
    reason: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE operations SET state = ?2, output = ?3, reason = ?4, ended_at = ?5 WHERE id = ?1",
        params![
            id,
            if done { "DONE" } else { "FAILED" },
            output,
            reason,
            notifications::local_date()
        ],
    )?;
    Ok(())
}

/// Marks every control action still in progress as failed with `reason`
/// (used when the pg_ctl worker starts: none can be running then).
pub fn fail_interrupted(conn: &Connection, reason: &str) -> rusqlite::Result<usize> {
    conn.execute(
        &format!("UPDATE operations SET state = 'FAILED', reason = ?1, ended_at = ?2 WHERE state = 'IN_PROGRESS' AND type IN {CONTROL}"),
        params![reason, notifications::local_date()],
    )
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Operation> {
    Ok(Operation {
        id: r.get(0)?,
        kind: r.get(1)?,
        state: r.get(2)?,
        username: r.get(3)?,
        output: r.get(4)?,
        reason: r.get(5)?,
        start_datetime: r.get(6)?,
        end_datetime: r.get(7)?,
    })
}

const COLUMNS: &str = "id, type, state, username, output, reason, started_at, ended_at";

/// Newest first.
pub fn list(conn: &Connection, limit: i64) -> rusqlite::Result<Vec<Operation>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM operations ORDER BY seq DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit], from_row)?;
    rows.collect()
}

/// One operation.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Operation>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM operations WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_and_interrupted_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        assert_eq!(begin(&mut c, "a1", "restart", "alice").unwrap(), Ok(()));
        assert_eq!(
            begin(&mut c, "b2", "reload", "alice").unwrap(),
            Err("a1".to_string())
        );
        assert_eq!(get(&c, "a1").unwrap().unwrap().state, "IN_PROGRESS");
        assert_eq!(fail_interrupted(&c, "worker died").unwrap(), 1);
        let a = get(&c, "a1").unwrap().unwrap();
        assert_eq!(
            (a.state.as_str(), a.reason.as_deref()),
            ("FAILED", Some("worker died"))
        );
        assert!(a.end_datetime.is_some());
        assert_eq!(begin(&mut c, "b2", "reload", "bob").unwrap(), Ok(()));
        finish(&c, "b2", true, "server signaled\n", None).unwrap();
        let all = list(&c, 10).unwrap();
        assert_eq!(
            all.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
            vec!["b2", "a1"]
        );
        assert_eq!(all[0].state, "DONE");
        assert_eq!(all[0].output, "server signaled\n");
        let n = crate::store::notifications::list(&c, 10).unwrap();
        assert_eq!(n[0].message, "PostgreSQL reload");
        assert!(get(&c, "zz").unwrap().is_none());
    }
}
