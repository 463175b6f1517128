//! The monitoring payload queue: every collected payload is a row; the sender
//! marks rows sent after a 2xx (or a 409, which drops it); retention by count
//! and age keeps the table bounded, dropping the oldest with a count. The same
//! rows serve `GET /monitoring/history` for collectors that pull.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The plugin's schema, in order: delta state and the payload queue (also
/// the pull history). `IF NOT EXISTS`: databases created before plugins had
/// migrations already hold them, from core step 4.
pub const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS monitoring_deltas (
    key TEXT PRIMARY KEY,
    measure_time REAL NOT NULL,
    measure TEXT NOT NULL
 );
 CREATE TABLE IF NOT EXISTS monitoring_payloads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collected_at REAL NOT NULL,
    payload TEXT NOT NULL,
    sent_at REAL
 );
 CREATE INDEX IF NOT EXISTS monitoring_payloads_unsent ON monitoring_payloads(seq) WHERE sent_at IS NULL;"];

/// Retention of the queue.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Rows kept at most.
    pub max_rows: i64,
    /// Seconds a row is kept at most.
    pub max_age: f64,
}

/// Adds a payload and applies the retention; returns how many unsent rows
/// were dropped by it.
pub fn push(
    conn: &mut Connection,
    payload: &str,
    now: f64,
    keep: Retention,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO monitoring_payloads (collected_at, payload) VALUES (?1, ?2)",
        params![now, payload],
    )?;
    let cutoff_seq: i64 = tx.query_row(
        "SELECT coalesce(max(seq), 0) - ?1 FROM monitoring_payloads",
        [keep.max_rows],
        |r| r.get(0),
    )?;
    let dropped = tx.query_row(
        "SELECT count(*) FROM monitoring_payloads WHERE sent_at IS NULL AND (seq <= ?1 OR collected_at < ?2)",
        params![cutoff_seq, now - keep.max_age],
        |r| r.get::<_, i64>(0),
    )? as usize;
    tx.execute(
        "DELETE FROM monitoring_payloads WHERE seq <= ?1 OR collected_at < ?2",
        params![cutoff_seq, now - keep.max_age],
    )?;
    if dropped > 0 {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('monitoring_dropped', ?1)
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?1 AS TEXT)",
            [dropped as i64],
        )?;
    }
    tx.commit()?;
    Ok(dropped)
}

/// The oldest unsent payload.
pub fn oldest_unsent(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.query_row(
        "SELECT seq, payload FROM monitoring_payloads WHERE sent_at IS NULL ORDER BY seq LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Marks a payload sent (or dropped after a 409).
pub fn mark_sent(conn: &Connection, seq: i64, now: f64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE monitoring_payloads SET sent_at = ?2 WHERE seq = ?1",
        params![seq, now],
    )?;
    Ok(())
}

/// Unsent payloads.
pub fn backlog(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM monitoring_payloads WHERE sent_at IS NULL",
        [],
        |r| r.get(0),
    )
}

/// Payloads dropped by the retention so far.
pub fn dropped(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'monitoring_dropped'), 0)", [], |r| r.get(0))
}

/// Payloads collected after `after` (epoch seconds), oldest first.
pub fn history(conn: &Connection, after: f64, limit: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT payload FROM monitoring_payloads WHERE collected_at > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_order_retention_and_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let keep = Retention {
            max_rows: 3,
            max_age: 1000.0,
        };
        for i in 0..3 {
            assert_eq!(
                push(&mut c, &format!("p{i}"), 100.0 + i as f64, keep).unwrap(),
                0
            );
        }
        let (seq, p) = oldest_unsent(&c).unwrap().unwrap();
        assert_eq!(p, "p0");
        mark_sent(&c, seq, 200.0).unwrap();
        assert_eq!(oldest_unsent(&c).unwrap().unwrap().1, "p1");
        // p0 (sent) goes first, then p1 (unsent) is dropped and counted.
        assert_eq!(push(&mut c, "p3", 103.0, keep).unwrap(), 0);
        assert_eq!(push(&mut c, "p4", 104.0, keep).unwrap(), 1);
        assert_eq!(dropped(&c).unwrap(), 1);
        assert_eq!(backlog(&c).unwrap(), 3);
        // Age limit.
        assert_eq!(push(&mut c, "p5", 2000.0, keep).unwrap(), 3);
        assert_eq!(dropped(&c).unwrap(), 4);
        assert_eq!(history(&c, 0.0, 10).unwrap(), vec!["p5"]);
    }
}
