//! The risks plugin's state: the latest observations (so either job's run
//! can judge both), the findings `GET /risks` and `/metrics` read, what the
//! judge remembers between runs (conditions first seen, standbys last
//! seen) and the file systems' use over the last hours. Everything is in
//! the state database: a restarted scheduler forgets nothing.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::judge::{Finding, Memory};

/// The plugin's schema, in order.
pub const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS risks_observed (
    kind TEXT PRIMARY KEY,
    at REAL NOT NULL,
    doc TEXT NOT NULL
 );
 CREATE TABLE IF NOT EXISTS risks_findings (
    id TEXT PRIMARY KEY,
    check_name TEXT NOT NULL,
    subject TEXT,
    severity INTEGER NOT NULL,
    doc TEXT NOT NULL
 );
 CREATE TABLE IF NOT EXISTS risks_seen (
    key TEXT PRIMARY KEY,
    since REAL NOT NULL,
    value INTEGER
 );
 CREATE TABLE IF NOT EXISTS risks_disk (
    path TEXT NOT NULL,
    at REAL NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (path, at)
 );"];

/// Hours of file system use kept (the judge reads the last one).
const DISK_HOURS: f64 = 6.0;

/// Stores an observation of `kind` (`instance`, `databases`).
pub fn put_observed(conn: &Connection, kind: &str, at: f64, doc: &Value) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO risks_observed (kind, at, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind) DO UPDATE SET at = excluded.at, doc = excluded.doc",
    )?
    .execute(params![kind, at, doc.to_string()])?;
    Ok(())
}

/// The latest observation of `kind`, with its time.
pub fn observed(conn: &Connection, kind: &str) -> rusqlite::Result<Option<(f64, Value)>> {
    conn.prepare_cached("SELECT at, doc FROM risks_observed WHERE kind = ?1")?
        .query_row([kind], |r| Ok((r.get::<_, f64>(0)?, r.get::<_, String>(1)?)))
        .optional()
        .map(|o| o.map(|(at, doc)| (at, serde_json::from_str(&doc).unwrap_or(Value::Null))))
}

/// What the judge remembers, and the file systems' recent use.
pub fn memory(conn: &Connection) -> rusqlite::Result<Memory> {
    let mut m = Memory::default();
    let mut q = conn.prepare_cached("SELECT key, since, value FROM risks_seen")?;
    for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?, r.get(2)?)))? {
        let (key, since, value) = row?;
        m.seen.insert(key, (since, value));
    }
    let mut q = conn.prepare_cached("SELECT path, at, used FROM risks_disk ORDER BY path, at")?;
    for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?, r.get::<_, i64>(2)?)))? {
        let (path, at, used) = row?;
        m.disk_use.entry(path).or_default().push((at, used));
    }
    Ok(m)
}

/// Records the file systems' use now (and drops what is older than
/// [`DISK_HOURS`]).
pub fn put_disk_use(conn: &mut Connection, at: f64, uses: &[(String, i64)]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (path, used) in uses {
        tx.prepare_cached("INSERT OR REPLACE INTO risks_disk (path, at, used) VALUES (?1, ?2, ?3)")?
            .execute(params![path, at, used])?;
    }
    tx.prepare_cached("DELETE FROM risks_disk WHERE at < ?1")?
        .execute([at - DISK_HOURS * 3600.0])?;
    tx.commit()
}

/// Replaces the findings and what the judge remembers, in one transaction.
pub fn put_findings(conn: &mut Connection, findings: &[Finding], memory: &Memory) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM risks_findings", [])?;
    for f in findings {
        tx.prepare_cached(
            "INSERT INTO risks_findings (id, check_name, subject, severity, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            f.id,
            f.check,
            f.subject,
            f.severity.level(),
            serde_json::to_string(f).unwrap_or_default()
        ])?;
    }
    tx.execute("DELETE FROM risks_seen", [])?;
    for (key, (since, value)) in &memory.seen {
        tx.prepare_cached("INSERT INTO risks_seen (key, since, value) VALUES (?1, ?2, ?3)")?
            .execute(params![key, since, value])?;
    }
    tx.commit()
}

/// The findings, worst first.
pub fn findings(conn: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut q = conn.prepare_cached("SELECT doc FROM risks_findings ORDER BY severity DESC, id")?;
    let rows = q.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|r| r.map(|doc| serde_json::from_str(&doc).unwrap_or(Value::Null)))
        .collect()
}

/// (check, subject, severity) of every finding, for `/metrics`.
pub fn levels(conn: &Connection) -> rusqlite::Result<Vec<(String, Option<String>, i64)>> {
    let mut q = conn.prepare_cached("SELECT check_name, subject, severity FROM risks_findings ORDER BY id")?;
    let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}
