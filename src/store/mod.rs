//! The agent's state database, `<home>/agent.db` (SQLite, WAL).
//!
//! Opened after exec by each worker that needs it (never by the supervisor, so
//! the file belongs to the worker user). Every write is a transaction, so a
//! worker killed at any instant loses nothing it had committed. Migrations are
//! keyed by a schema version and applied under `BEGIN IMMEDIATE`, so two workers
//! opening a fresh database at once do not race.

pub mod meta;
pub mod notifications;
pub mod operations;
pub mod sessions;
pub mod signed;
pub mod tokens;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// File name under the home directory.
pub const FILE_NAME: &str = "agent.db";

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// Database path.
        path: String,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer agent.
    #[error("state database {path} has schema version {found}, newer than this agent's {known}")]
    TooNew {
        /// Database path.
        path: String,
        /// Version found.
        found: i64,
        /// Newest version we know.
        known: i64,
    },
}

/// Schema migrations, in order; index + 1 is the version they bring.
const MIGRATIONS: &[&str] = &[
    // 1: bookkeeping, sessions and notifications.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used REAL NOT NULL
     );
     CREATE INDEX sessions_username ON sessions(username);
     CREATE TABLE notifications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        date TEXT NOT NULL,
        username TEXT NOT NULL,
        message TEXT NOT NULL
     );",
    // 2: PostgreSQL control actions as operations.
    "CREATE TABLE operations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('IN_PROGRESS', 'DONE', 'FAILED')),
        username TEXT NOT NULL,
        output TEXT NOT NULL DEFAULT '',
        reason TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT
     );",
    // 3: the dashboard history, now the dashboard plugin's own migration
    // (kept as a step so existing databases keep their numbering).
    "SELECT 1;",
    // 4: the monitoring tables, now the monitoring plugin's own migration.
    "SELECT 1;",
    // 5: API tokens (only their SHA-256 is kept).
    "CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        read_only INTEGER NOT NULL,
        created_at TEXT NOT NULL
     );",
    // 6: temBoard 9.x: request ids of signed requests (replay refusal) and
    // the last discover document.
    "CREATE TABLE signed_requests (
        id TEXT PRIMARY KEY,
        expires REAL NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX signed_requests_expires ON signed_requests(expires);
     CREATE TABLE discover (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        document TEXT NOT NULL,
        etag TEXT NOT NULL
     );",
    // 7: audit records (settings, kills, controls, logins) kept apart from
    // routine ones, so a flood of routine records cannot push them out.
    "ALTER TABLE notifications ADD COLUMN audit INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX notifications_class ON notifications(audit, seq);",
];

/// Newest schema version this build knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Path of the database under `home`.
pub fn path(home: &Path) -> PathBuf {
    home.join(FILE_NAME)
}

/// Opens (creating if needed) and migrates the database.
pub fn open(home: &Path) -> Result<Connection, StoreError> {
    let p = path(home);
    let shown = p.display().to_string();
    let wrap = |source| StoreError::Sqlite {
        path: shown.clone(),
        source,
    };
    let existed = p.exists();
    let mut conn = Connection::open_with_flags(
        &p,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(wrap)?;
    if !existed {
        // The umask is 077 already; be explicit in case it was not.
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
    conn.busy_timeout(Duration::from_secs(10)).map_err(wrap)?;
    set_wal(&conn).map_err(wrap)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(wrap)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(wrap)?;
    migrate(&mut conn).map_err(|e| match e {
        MigrateError::Sqlite(source) => StoreError::Sqlite {
            path: shown.clone(),
            source,
        },
        MigrateError::TooNew(found) => StoreError::TooNew {
            path: shown.clone(),
            found,
            known: schema_version(),
        },
    })?;
    Ok(conn)
}

/// Switching a fresh database to WAL needs an exclusive lock and SQLite does
/// not call the busy handler for it, so two workers opening it at once would
/// see "database is locked": retry for a bounded time.
fn set_wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

enum MigrateError {
    Sqlite(rusqlite::Error),
    TooNew(i64),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    let current: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current > schema_version() {
        return Err(MigrateError::TooNew(current));
    }
    for (idx, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, datetime('now'))",
            [idx as i64 + 1],
        )?;
    }
    // Each registered plugin's tables, numbered per plugin. Applied whether
    // the plugin is loaded or not: listing it later needs no migration, and
    // the core's hooks (metrics, health) may read them.
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS plugin_schema (
            plugin TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,
            PRIMARY KEY (plugin, version))",
    )?;
    for p in crate::config::catalog::sections() {
        let done: i64 = tx.query_row(
            "SELECT coalesce(max(version), 0) FROM plugin_schema WHERE plugin = ?1",
            [p.name],
            |r| r.get(0),
        )?;
        if done > p.migrations.len() as i64 {
            return Err(MigrateError::TooNew(done));
        }
        for (idx, sql) in p.migrations.iter().enumerate().skip(done as usize) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO plugin_schema (plugin, version, applied_at) VALUES (?1, ?2, datetime('now'))",
                rusqlite::params![p.name, idx as i64 + 1],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn plugin_tables_exist_on_fresh_and_older_databases() {
        // Fresh: the plugins' migrations create their tables.
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).unwrap();
        for table in [
            "dashboard_history",
            "monitoring_payloads",
            "monitoring_deltas",
        ] {
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        drop(c);
        // Older: made when core steps 3 and 4 created them; its data stays.
        let old = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(path(old.path())).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL);
                 CREATE TABLE dashboard_history (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    collected_at REAL NOT NULL, data TEXT NOT NULL);
                 INSERT INTO dashboard_history (collected_at, data) VALUES (1, '{\"kept\": true}');",
            )
            .unwrap();
            for (i, sql) in MIGRATIONS.iter().enumerate() {
                if i != 2 {
                    c.execute_batch(sql).unwrap();
                }
                c.execute(
                    "INSERT INTO schema_version VALUES (?1, 'then')",
                    [i as i64 + 1],
                )
                .unwrap();
            }
        }
        let c = open(old.path()).unwrap();
        let data: String = c
            .query_row("SELECT data FROM dashboard_history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(data, "{\"kept\": true}");
        let v: i64 = c
            .query_row(
                "SELECT version FROM plugin_schema WHERE plugin = 'dashboard'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, 1);
    }

    #[test]
    fn creates_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).unwrap();
        let v: i64 = c
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema_version());
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(c);
        assert_eq!(
            std::fs::metadata(path(dir.path())).unwrap().mode() & 0o777,
            0o600
        );
        let c = open(dir.path()).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, schema_version());
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).unwrap();
        c.execute("INSERT INTO schema_version VALUES (999, 'x')", [])
            .unwrap();
        drop(c);
        assert!(matches!(
            open(dir.path()),
            Err(StoreError::TooNew { found: 999, .. })
        ));
    }

    #[test]
    fn concurrent_first_open() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let h = home.clone();
                std::thread::spawn(move || open(&h).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    }
}
