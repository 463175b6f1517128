//! Dashboard history: one JSON document per collection, the newest
//! `history_length` kept (the oldest removed in the same transaction).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

/// The plugin's schema, in order (`IF NOT EXISTS`: databases created before
/// plugins had migrations already hold the table, from core step 3).
/// Step 2 adds `v9`: the figures only the 9.x sample has (database sizes
/// and memory in bytes), kept beside the 2.x set so the 2.x answer stays
/// byte for byte what it was and one collection feeds both contracts.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS dashboard_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collected_at REAL NOT NULL,
    data TEXT NOT NULL
 );",
    "ALTER TABLE dashboard_history ADD COLUMN v9 TEXT;",
];

/// Stores one collected set (and its 9.x-only figures) and trims the
/// history.
pub fn push(
    conn: &mut Connection,
    data: &Value,
    v9: &Value,
    history_length: u64,
) -> rusqlite::Result<()> {
    // Every 2 s by default: cached statements (parsing them was a fifth
    // of the scheduler's idle CPU).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO dashboard_history (collected_at, data, v9) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        crate::store::sessions::now(),
        data.to_string(),
        v9.to_string()
    ])?;
    tx.prepare_cached(
        "DELETE FROM dashboard_history WHERE seq <= (SELECT max(seq) FROM dashboard_history) - ?1",
    )?
    .execute([history_length as i64])?;
    tx.commit()
}

fn parse(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The newest set, if any.
pub fn last(conn: &Connection) -> rusqlite::Result<Option<Value>> {
    conn.query_row(
        "SELECT data FROM dashboard_history ORDER BY seq DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
    .map(|o| o.map(parse))
}

/// The newest set as stored (JSON text), for the hot `/dashboard` route
/// that splices it into its answer without parsing it.
pub fn last_text(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT data FROM dashboard_history ORDER BY seq DESC LIMIT 1")?;
    stmt.query_row([], |r| r.get(0)).optional()
}

/// Every kept set with its 9.x-only figures (`null` for sets stored before
/// they were), oldest first; the newest only when `last`.
pub fn history_v9(conn: &Connection, last: bool) -> rusqlite::Result<Vec<(Value, Value)>> {
    let sql = if last {
        "SELECT data, v9 FROM dashboard_history ORDER BY seq DESC LIMIT 1"
    } else {
        "SELECT data, v9 FROM dashboard_history ORDER BY seq"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    rows.map(|r| r.map(|(d, v)| (parse(d), v.map(parse).unwrap_or(Value::Null))))
        .collect()
}

/// Every kept set, oldest first.
pub fn history(conn: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached("SELECT data FROM dashboard_history ORDER BY seq")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| r.map(parse)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_history_length_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        assert!(last(&c).unwrap().is_none());
        for i in 0..8 {
            push(&mut c, &json!({ "n": i }), &json!({ "m": i }), 5).unwrap();
        }
        let h = history(&c).unwrap();
        assert_eq!(
            h.iter()
                .map(|v| v["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7]
        );
        assert_eq!(last(&c).unwrap().unwrap()["n"], 7);
        let v9 = history_v9(&c, false).unwrap();
        assert_eq!(v9.len(), 5);
        assert_eq!((v9[0].0["n"].clone(), v9[0].1["m"].clone()), (json!(3), json!(3)));
        assert_eq!(history_v9(&c, true).unwrap()[0].1["m"], 7);
    }
}
