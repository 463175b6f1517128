//! temBoard 9.x state: the request ids of signed requests, remembered for
//! the validity window so a captured request cannot be replayed (9.0.1 had
//! no such protection), and the last discover document with its ETag (so
//! `GET /discover` answers while PostgreSQL is down, as in 9.x).
//!
//! In SQLite like every state of the agent: an http worker that restarts
//! still refuses a replay of a request its previous incarnation accepted.

use rusqlite::{params, Connection, OptionalExtension};

/// Forgets expired ids, at most 1,000 a call.
fn purge(conn: &Connection, now: f64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM signed_requests WHERE id IN \
         (SELECT id FROM signed_requests WHERE expires < ?1 ORDER BY expires LIMIT 1000)",
    )?
    .execute([now])?;
    Ok(())
}

/// Records one request id until `expires` (seconds since the epoch) before
/// the answer; `false` when it was already seen and has not expired (a
/// replay). The slow path of the http worker's replay guard, once its map
/// is no longer trusted alone.
///
/// Each call also forgets up to 1,000 expired ids, so the table stays
/// bounded on this path too (it was the flush's alone, which this path
/// does not take).
pub fn remember(conn: &mut Connection, id: &str, now: f64, expires: f64) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    purge(&tx, now)?;
    let inserted = tx
        .prepare_cached("INSERT OR IGNORE INTO signed_requests (id, expires) VALUES (?1, ?2)")?
        .execute(params![id, expires])?;
    // Seen: a replay unless that record has expired (then it starts anew).
    let fresh = inserted == 1
        || tx
            .prepare_cached(
                "UPDATE signed_requests SET expires = ?2 WHERE id = ?1 AND expires < ?3",
            )?
            .execute(params![id, expires, now])?
            == 1;
    tx.commit()?;
    Ok(fresh)
}

/// Writes ids the http worker accepted (one transaction), forgetting
/// expired ones: the table stays bounded by the request rate times the
/// window without a separate job.
pub fn record(conn: &mut Connection, ids: &[(String, i64)], now: f64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    purge(&tx, now)?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR REPLACE INTO signed_requests (id, expires) VALUES (?1, ?2)",
        )?;
        for (id, e) in ids {
            ins.execute(params![id, *e as f64])?;
        }
    }
    tx.commit()
}

/// Ids not expired at `now`, at most `limit` (what a new worker loads).
pub fn unexpired(conn: &Connection, now: f64, limit: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = conn
        .prepare_cached("SELECT id, expires FROM signed_requests WHERE expires >= ?1 LIMIT ?2")?;
    let rows = st.query_map(params![now, limit], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)? as i64))
    })?;
    rows.collect()
}

/// How many ids have not expired at `now`.
pub fn count_unexpired(conn: &Connection, now: f64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM signed_requests WHERE expires >= ?1")?
        .query_row([now], |r| r.get(0))
}

/// The stored discover document and its ETag.
pub fn discover(conn: &Connection) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached("SELECT document, etag FROM discover WHERE one = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Stores the discover document when it changed.
pub fn set_discover(conn: &Connection, document: &str, etag: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO discover (one, document, etag) VALUES (1, ?1, ?2) \
         ON CONFLICT (one) DO UPDATE SET document = excluded.document, etag = excluded.etag \
         WHERE discover.etag <> excluded.etag",
    )?
    .execute(params![document, etag])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_accepted_once_within_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        assert!(remember(&mut c, "a", 100.0, 200.0).unwrap());
        assert!(!remember(&mut c, "a", 150.0, 250.0).unwrap(), "replay");
        // Past its window the id is new again (the date check refuses such
        // an old request anyway).
        assert!(remember(&mut c, "a", 201.0, 301.0).unwrap());
        // A batch records, and forgets what expired.
        record(&mut c, &[("b".into(), 250)], 200.0).unwrap();
        record(&mut c, &[("c".into(), 400)], 260.0).unwrap();
        let left: Vec<String> = unexpired(&c, 0.0, 10)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!left.contains(&"b".to_string()));
        assert_eq!(
            unexpired(&c, 350.0, 10).unwrap(),
            vec![("c".to_string(), 400)]
        );
    }

    #[test]
    fn discover_is_kept_with_its_etag() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        assert_eq!(discover(&c).unwrap(), None);
        set_discover(&c, "{}", "e1").unwrap();
        set_discover(&c, "{\"a\":1}", "e2").unwrap();
        assert_eq!(
            discover(&c).unwrap(),
            Some(("{\"a\":1}".into(), "e2".into()))
        );
    }
}
