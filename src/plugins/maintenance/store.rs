//! Maintenance tasks in the state database: one row per scheduled VACUUM,
//! ANALYZE or REINDEX, from `todo` to its end. Every worker that touches a
//! task moves it with a guarded `UPDATE ... WHERE status = <expected>`, so
//! a cancel racing the start, or a worker restarting, can never make a task
//! run twice or end twice.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// The schema of the plugin's table.
pub const MIGRATIONS: &[&str] = &["CREATE TABLE maintenance_tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    op TEXT NOT NULL,
    dbname TEXT NOT NULL,
    schema_name TEXT,
    table_name TEXT,
    index_name TEXT,
    mode TEXT,
    datetime TEXT NOT NULL,
    start_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    username TEXT NOT NULL,
    operation TEXT,
    backend_pid INTEGER,
    error TEXT,
    queued_at REAL,
    finished_at REAL
);
CREATE UNIQUE INDEX maintenance_tasks_active ON maintenance_tasks (id)
    WHERE status IN ('todo', 'queued', 'doing');
CREATE INDEX maintenance_tasks_due ON maintenance_tasks (status, start_at);"];

/// Statuses of a task not yet ended.
pub const ACTIVE: &str = "('todo', 'queued', 'doing')";
/// Ended tasks kept (the oldest are removed beyond it).
const KEEP_ENDED: i64 = 1_000;
/// Tasks not yet ended, at most: a flood of schedulings (10,200 in 41 s
/// were accepted) is refused past it with a 429, instead of filling the
/// state database and pushing every earlier notification out.
pub const MAX_ACTIVE: i64 = 1_000;

/// How many tasks have not ended.
pub fn active_count(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(&format!(
        "SELECT count(*) FROM maintenance_tasks WHERE status IN {ACTIVE}"
    ))?
    .query_row([], |r| r.get(0))
}
/// Seconds an ended task stays in the `…/scheduled` lists, so a page
/// polling every 5 s sees how it ended before it goes (9.x removed them
/// after 1–2 s).
pub const ENDED_VISIBLE: f64 = 10.0;

/// One task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The 9.x id (8 hex digits of an MD5).
    pub id: String,
    /// `vacuum`, `analyze` or `reindex`.
    pub op: String,
    /// Database.
    pub dbname: String,
    /// Schema of the table or index.
    pub schema: Option<String>,
    /// Table.
    pub table: Option<String>,
    /// Index.
    pub index: Option<String>,
    /// VACUUM options (`""` for a plain VACUUM); null for the others.
    pub mode: Option<String>,
    /// When it runs, `YYYY-MM-DDTHH:MM:SSZ`.
    pub datetime: String,
    /// That time in epoch seconds.
    pub start_at: i64,
    /// `todo`, `queued`, `doing`, `done`, `failed`, `canceled`, `aborted`.
    pub status: String,
    /// Who scheduled it.
    pub username: String,
    /// Its operation id once started.
    pub operation: Option<String>,
    /// The backend running it, once connected.
    #[serde(default)]
    pub backend_pid: Option<i32>,
}

const COLUMNS: &str = "id, op, dbname, schema_name, table_name, index_name, mode, datetime, start_at, status, username, operation, backend_pid";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        op: r.get(1)?,
        dbname: r.get(2)?,
        schema: r.get(3)?,
        table: r.get(4)?,
        index: r.get(5)?,
        mode: r.get(6)?,
        datetime: r.get(7)?,
        start_at: r.get(8)?,
        status: r.get(9)?,
        username: r.get(10)?,
        operation: r.get(11)?,
        backend_pid: r.get(12)?,
    })
}

/// Seconds since the epoch, fractional.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Records a new task `todo`; `Ok(false)` when a task with that id is
/// still to run or running (the 409 of the API).
pub fn insert(conn: &Connection, t: &Task) -> rusqlite::Result<bool> {
    let done = conn.execute(
        "INSERT INTO maintenance_tasks (id, op, dbname, schema_name, table_name, index_name, mode, datetime, start_at, status, username)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'todo', ?10)",
        params![t.id, t.op, t.dbname, t.schema, t.table, t.index, t.mode, t.datetime, t.start_at, t.username],
    );
    match done {
        Ok(_) => {
            conn.execute(
                &format!("DELETE FROM maintenance_tasks WHERE status NOT IN {ACTIVE} AND seq <= (SELECT max(seq) FROM maintenance_tasks) - ?1"),
                [KEEP_ENDED],
            )?;
            Ok(true)
        }
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Which tasks a `…/scheduled` list shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `vacuum`, `analyze` or `reindex`.
    pub op: String,
    /// Only this database.
    pub dbname: Option<String>,
    /// Only this schema (tables and indexes in it).
    pub schema: Option<String>,
    /// Only this table.
    pub table: Option<String>,
}

/// Tasks not ended, and those ended in the last [`ENDED_VISIBLE`] seconds,
/// by start time.
pub fn list(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<Task>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM maintenance_tasks
         WHERE op = ?1 AND (status IN {ACTIVE} OR finished_at > ?2)
           AND (?3 IS NULL OR dbname = ?3) AND (?4 IS NULL OR schema_name = ?4)
           AND (?5 IS NULL OR table_name = ?5)
         ORDER BY start_at, seq"
    ))?;
    let rows = stmt.query_map(
        params![f.op, now() - ENDED_VISIBLE, f.dbname, f.schema, f.table],
        from_row,
    )?;
    rows.collect()
}

/// The task not ended with this id.
pub fn active(conn: &Connection, id: &str) -> rusqlite::Result<Option<Task>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM maintenance_tasks WHERE id = ?1 AND status IN {ACTIVE}"),
        [id],
        from_row,
    )
    .optional()
}

/// Cancels a task still waiting for its time (or handed over but not
/// started); false when it is no longer in one of `from`.
pub fn cancel_waiting(conn: &Connection, id: &str, from: &[&str]) -> rusqlite::Result<bool> {
    let mut n = 0;
    for status in from {
        n += conn.execute(
            "UPDATE maintenance_tasks SET status = 'canceled', finished_at = ?2 WHERE id = ?1 AND status = ?3",
            params![id, now(), status],
        )?;
    }
    Ok(n > 0)
}

/// Seconds a task may stay `queued` (handed to the task worker, which
/// starts it at once) before it is handed again: the scheduler or the task
/// worker died between the two.
const QUEUED_MAX: f64 = 60.0;

/// Takes the tasks due at `at` (epoch seconds) that may start: at most one
/// per database (a database with a task queued or running waits), and no
/// more than `cap` queued or running in all. They become `queued`.
pub fn claim_due(conn: &mut Connection, at: i64, cap: usize) -> rusqlite::Result<Vec<String>> {
    // Every second, usually with nothing due: a read first, the write lock
    // only when there is something to take.
    // (A cached statement: parsing it each second was most of the cost.)
    let due: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM maintenance_tasks WHERE status = 'todo' AND start_at <= ?1)
                 OR EXISTS (SELECT 1 FROM maintenance_tasks WHERE status = 'queued' AND queued_at < ?2)",
        )?
        .query_row(params![at, now() - QUEUED_MAX], |r| r.get(0))?;
    if !due {
        return Ok(vec![]);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE maintenance_tasks SET status = 'todo' WHERE status = 'queued' AND queued_at < ?1",
        [now() - QUEUED_MAX],
    )?;
    let mut busy: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT dbname FROM maintenance_tasks WHERE status IN ('queued', 'doing')",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let due: Vec<(i64, String, String)> = {
        let mut stmt = tx.prepare(
            "SELECT seq, id, dbname FROM maintenance_tasks WHERE status = 'todo' AND start_at <= ?1 ORDER BY start_at, seq",
        )?;
        let rows = stmt.query_map([at], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut claimed = vec![];
    for (seq, id, db) in due {
        if busy.len() >= cap {
            break;
        }
        if busy.contains(&db) {
            continue;
        }
        tx.execute(
            "UPDATE maintenance_tasks SET status = 'queued', queued_at = ?2 WHERE seq = ?1",
            params![seq, now()],
        )?;
        busy.push(db);
        claimed.push(id);
    }
    tx.commit()?;
    Ok(claimed)
}

/// Gives a queued task back to `todo` (the task worker could not be
/// reached: the next round tries again).
pub fn unclaim(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE maintenance_tasks SET status = 'todo' WHERE id = ?1 AND status = 'queued'",
        [id],
    )?;
    Ok(())
}

/// Starts a queued task under `operation`; `None` when it is no longer
/// queued (canceled meanwhile).
pub fn start(conn: &Connection, id: &str, operation: &str) -> rusqlite::Result<Option<Task>> {
    let n = conn.execute(
        "UPDATE maintenance_tasks SET status = 'doing', operation = ?2 WHERE id = ?1 AND status = 'queued'",
        params![id, operation],
    )?;
    if n == 0 {
        return Ok(None);
    }
    active(conn, id)
}

/// Records the backend running a task.
pub fn set_backend(conn: &Connection, id: &str, pid: i32) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE maintenance_tasks SET backend_pid = ?2 WHERE id = ?1 AND status = 'doing'",
        params![id, pid],
    )?;
    Ok(())
}

/// Ends a running task with `status`; false when it had already ended.
pub fn finish(
    conn: &Connection,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE maintenance_tasks SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1 AND status = 'doing'",
        params![id, status, error, now()],
    )? > 0)
}

/// When a task worker starts: every task a previous one was running ends
/// `aborted` (returned); those handed to it but not started go back to
/// `todo`, to be handed again (a start racing this finds them no longer
/// `queued` and leaves them to the next round).
pub fn recover(conn: &Connection) -> rusqlite::Result<Vec<Task>> {
    let tasks: Vec<Task> = {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM maintenance_tasks WHERE status = 'doing'"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    conn.execute(
        "UPDATE maintenance_tasks SET status = 'aborted', error = 'the task worker stopped during the task', finished_at = ?1 WHERE status = 'doing'",
        [now()],
    )?;
    conn.execute(
        "UPDATE maintenance_tasks SET status = 'todo' WHERE status = 'queued'",
        [],
    )?;
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, db: &str, at: i64) -> Task {
        Task {
            id: id.into(),
            op: "vacuum".into(),
            dbname: db.into(),
            schema: None,
            table: None,
            index: None,
            mode: Some(String::new()),
            datetime: "2026-11-30T00:00:00Z".into(),
            start_at: at,
            status: "todo".into(),
            username: "alice".into(),
            operation: None,
            backend_pid: None,
        }
    }

    #[test]
    fn one_task_per_database_a_global_cap_and_no_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        assert!(insert(&c, &task("a", "db1", 10)).unwrap());
        assert!(!insert(&c, &task("a", "db1", 10)).unwrap(), "same id");
        assert!(insert(&c, &task("b", "db1", 11)).unwrap());
        assert!(insert(&c, &task("c", "db2", 12)).unwrap());
        assert!(insert(&c, &task("d", "db3", 13)).unwrap());
        assert!(insert(&c, &task("e", "db4", 100)).unwrap());
        assert_eq!(claim_due(&mut c, 50, 2).unwrap(), vec!["a", "c"]);
        assert_eq!(claim_due(&mut c, 50, 2).unwrap(), Vec::<String>::new());
        assert!(start(&c, "a", "op1").unwrap().is_some());
        assert!(start(&c, "a", "op1").unwrap().is_none(), "started once");
        assert!(finish(&c, "a", "done", None).unwrap());
        assert!(!finish(&c, "a", "failed", None).unwrap(), "ended once");
        assert_eq!(claim_due(&mut c, 50, 2).unwrap(), vec!["b"]);
        // a canceled waiting task never starts
        assert!(cancel_waiting(&c, "d", &["todo"]).unwrap());
        assert!(!cancel_waiting(&c, "d", &["todo"]).unwrap());
        let f = Filter {
            op: "vacuum".into(),
            ..Filter::default()
        };
        let statuses: Vec<(String, String)> = list(&c, &f)
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.status))
            .collect();
        assert_eq!(
            statuses,
            [("a", "done"), ("b", "queued"), ("c", "queued"), ("d", "canceled"), ("e", "todo")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        // the id of an ended task may be scheduled again
        assert!(insert(&c, &task("a", "db1", 10)).unwrap());
        // a new task worker: the running task is aborted, the handed one
        // goes back to todo and is handed again
        assert!(start(&c, "b", "op2").unwrap().is_some());
        let aborted = recover(&c).unwrap();
        assert_eq!(
            aborted.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["b"]
        );
        assert!(start(&c, "c", "op3").unwrap().is_none(), "no longer queued");
        assert_eq!(claim_due(&mut c, 50, 2).unwrap(), vec!["a", "c"]);
        // nothing due: nothing taken, no write
        assert_eq!(claim_due(&mut c, 5, 2).unwrap(), Vec::<String>::new());
    }
}
