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
 CREATE INDEX IF NOT EXISTS monitoring_payloads_unsent ON monitoring_payloads(seq) WHERE sent_at IS NULL;",
    // Step 2: the temBoard 9.x history (pulled with GET /monitoring/history,
    // signed): one document per collection, keyed by its own `datetime` in
    // whole seconds, which is what the UI's `start` is compared with.
    "CREATE TABLE IF NOT EXISTS monitoring_history9 (
    datetime INTEGER PRIMARY KEY,
    collected_at REAL NOT NULL,
    document TEXT NOT NULL
 );",
    // Step 3: the raw counters of each document's delta probes, for the 9.x
    // `/monitoring/metrics` (counters, where the document has deltas).
    "ALTER TABLE monitoring_history9 ADD COLUMN raw TEXT;"];

/// Retention of the queue.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Rows kept at most.
    pub max_rows: i64,
    /// Seconds a row is kept at most.
    pub max_age: f64,
}

/// Adds a payload and applies the retention; returns how many unsent rows
/// were dropped by it. Without a collector (`queued` false) the payload is
/// kept for the 2.x pull history only, never waiting to be sent: no queue
/// shows in `/health` and the retention drops nothing "unsent".
pub fn push(
    conn: &mut Connection,
    payload: &str,
    now: f64,
    keep: Retention,
    queued: bool,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO monitoring_payloads (collected_at, payload, sent_at)
         VALUES (?1, ?2, CASE WHEN ?3 THEN NULL ELSE ?1 END)",
        params![now, payload, queued],
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

/// Stores a 9.x document (`datetime` = its own, whole seconds; a second
/// document in the same second replaces the first) and drops those older
/// than `retention` seconds.
pub fn push9(
    conn: &mut Connection,
    datetime: i64,
    (document, raw): (&str, &str),
    now: f64,
    retention: u64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO monitoring_history9 (datetime, collected_at, document, raw) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (datetime) DO UPDATE SET collected_at = excluded.collected_at,
           document = excluded.document, raw = excluded.raw",
        params![datetime, now, document, raw],
    )?;
    tx.execute(
        "DELETE FROM monitoring_history9 WHERE datetime < ?1",
        [datetime - retention as i64],
    )?;
    tx.commit()
}

/// The newest 9.x document and its raw counters.
pub fn newest9(conn: &Connection) -> rusqlite::Result<Option<(String, Option<String>)>> {
    conn.query_row(
        "SELECT document, raw FROM monitoring_history9 ORDER BY datetime DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// The 9.x history: without `start`, the newest document only; else every
/// document whose `datetime` is `start` or later, oldest first, at most
/// `limit` (0 = no limit). Returns (datetime, document) pairs.
pub fn history9(
    conn: &Connection,
    start: Option<i64>,
    limit: u64,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let limit = if limit == 0 { -1 } else { limit as i64 };
    let mut stmt = match start {
        None => conn.prepare_cached(
            "SELECT datetime, document FROM monitoring_history9 ORDER BY datetime DESC LIMIT 1",
        )?,
        Some(_) => conn.prepare_cached(
            "SELECT datetime, document FROM monitoring_history9 WHERE datetime >= ?1 ORDER BY datetime LIMIT ?2",
        )?,
    };
    let map = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    let rows = match start {
        None => stmt.query_map([], map)?.collect(),
        Some(s) => stmt.query_map(params![s, limit], map)?.collect(),
    };
    rows
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
                push(&mut c, &format!("p{i}"), 100.0 + i as f64, keep, true).unwrap(),
                0
            );
        }
        let (seq, p) = oldest_unsent(&c).unwrap().unwrap();
        assert_eq!(p, "p0");
        mark_sent(&c, seq, 200.0).unwrap();
        assert_eq!(oldest_unsent(&c).unwrap().unwrap().1, "p1");
        // p0 (sent) goes first, then p1 (unsent) is dropped and counted.
        assert_eq!(push(&mut c, "p3", 103.0, keep, true).unwrap(), 0);
        assert_eq!(push(&mut c, "p4", 104.0, keep, true).unwrap(), 1);
        assert_eq!(dropped(&c).unwrap(), 1);
        assert_eq!(backlog(&c).unwrap(), 3);
        // Age limit.
        assert_eq!(push(&mut c, "p5", 2000.0, keep, true).unwrap(), 3);
        assert_eq!(dropped(&c).unwrap(), 4);
        assert_eq!(history(&c, 0.0, 10).unwrap(), vec!["p5"]);
        // Without a collector: history only, nothing queued or dropped.
        let (seq, _) = oldest_unsent(&c).unwrap().unwrap();
        mark_sent(&c, seq, 2000.0).unwrap();
        for i in 0..5 {
            assert_eq!(push(&mut c, "h", 2001.0 + i as f64, keep, false).unwrap(), 0);
        }
        assert_eq!(backlog(&c).unwrap(), 0);
        assert_eq!(dropped(&c).unwrap(), 4);
        assert_eq!(history(&c, 2000.5, 10).unwrap().len(), 3);
    }

    #[test]
    fn history9_start_limit_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        assert!(history9(&c, None, 50).unwrap().is_empty());
        for t in [1000, 1060, 1120, 1180] {
            push9(&mut c, t, (&format!("d{t}"), "{}"), t as f64, 150).unwrap();
        }
        // 1000 is older than 1180 - 150: gone.
        let all = history9(&c, Some(0), 0).unwrap();
        assert_eq!(all.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![1060, 1120, 1180]);
        assert_eq!(history9(&c, None, 50).unwrap(), vec![(1180, "d1180".to_string())]);
        // start is inclusive; last + 1 s never repeats the last one.
        assert_eq!(history9(&c, Some(1120), 50).unwrap().len(), 2);
        assert_eq!(history9(&c, Some(1121), 50).unwrap().len(), 1);
        assert_eq!(history9(&c, Some(1060), 1).unwrap()[0].0, 1060);
        assert!(history9(&c, Some(1181), 50).unwrap().is_empty());
        assert_eq!(newest9(&c).unwrap(), Some(("d1180".to_string(), Some("{}".to_string()))));
    }
}
