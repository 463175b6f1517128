//! temBoard 9.x state: the request ids of signed requests, remembered for
//! the validity window so a captured request cannot be replayed (9.0.1 had
//! no such protection), and the last discover document with its ETag (so
//! `GET /discover` answers while PostgreSQL is down, as in 9.x).
//!
//! In SQLite like every state of the agent: an http worker that restarts
//! still refuses a replay of a request its previous incarnation accepted.

use rusqlite::{params, Connection, OptionalExtension};

/// Records a request id until `expires` (seconds since the epoch); `false`
/// when it was already seen and has not expired (a replay). One transaction
/// (one WAL append); with `purge`, expired ids are removed too (the caller
/// asks every few dozen requests), so the table stays bounded by the
/// request rate times the window without a separate job.
pub fn remember(
    conn: &mut Connection,
    id: &str,
    now: f64,
    expires: f64,
    purge: bool,
) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    if purge {
        tx.prepare_cached(
            "DELETE FROM signed_requests WHERE id IN \
             (SELECT id FROM signed_requests WHERE expires < ?1 ORDER BY expires LIMIT 1000)",
        )?
        .execute([now])?;
    }
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
        assert!(remember(&mut c, "a", 100.0, 200.0, true).unwrap());
        assert!(
            !remember(&mut c, "a", 150.0, 250.0, false).unwrap(),
            "replay"
        );
        assert!(remember(&mut c, "b", 150.0, 250.0, false).unwrap());
        // Past its window the id is forgotten (the date check refuses such
        // an old request anyway).
        assert!(remember(&mut c, "a", 201.0, 301.0, false).unwrap());
        assert!(remember(&mut c, "c", 260.0, 400.0, true).unwrap());
        let n: i64 = c
            .query_row("SELECT count(*) FROM signed_requests", [], |r| r.get(0))
            .unwrap();
        // "b" expired at 250 and was purged at 260.
        assert_eq!(n, 2);
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
