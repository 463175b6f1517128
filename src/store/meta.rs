//! Small named values shared between workers through the state database
//! (scheduler heartbeat, last collector success, last collection duration):
//! one upsert and one read, so every writer and reader agrees on the format.

use rusqlite::{Connection, OptionalExtension};

/// Sets `key` to `value`.
pub fn set(conn: &Connection, key: &str, value: f64) -> rusqlite::Result<()> {
    // Written every few seconds (heartbeats): a cached statement.
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(rusqlite::params![key, value.to_string()])?;
    Ok(())
}

/// The number stored under `key`, if any.
pub fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<f64>> {
    conn.query_row(
        "SELECT CAST(value AS REAL) FROM meta WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    #[test]
    fn set_then_get() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        assert_eq!(super::get(&c, "x").unwrap(), None);
        super::set(&c, "x", 1.5).unwrap();
        super::set(&c, "x", 2.5).unwrap();
        assert_eq!(super::get(&c, "x").unwrap(), Some(2.5));
    }
}
