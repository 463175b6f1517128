//! Running a task, in the task worker: on a connection opened for it (never
//! the probe worker's pool), with VERBOSE so its operation carries
//! PostgreSQL's own account, identifiers always quoted (9.x spliced them
//! in bare). A cancel asks the backend to stop (the protocol's cancel
//! request, what `pg_cancel_backend` does) and the task ends `canceled`
//! once its connection is closed and the backend gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use postgres::{CancelToken, NoTls};
use serde_json::{json, Value};
use tracing::{info, warn};

use super::store::{self, Task};
use super::calls::RunnerCall;
use crate::ipc::messages::WorkerError;
use crate::store::{notifications, operations};
use crate::api::TaskHost;

/// A running task's handle for a cancel.
#[derive(Default)]
struct Slot {
    token: Mutex<Option<CancelToken>>,
    /// Who canceled it, once someone did.
    canceled_by: Mutex<Option<String>>,
    canceled: AtomicBool,
    stopping: AtomicBool,
    /// Set when the task's statement is over: cancels stop being resent.
    ended: AtomicBool,
}

/// The maintenance work of the task worker.
pub struct TaskWork {
    running: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

/// Built when the task worker starts: what a previous incarnation was
/// running is over — `aborted`, its operation failed, said in a
/// notification, and its backend, if still there, terminated (before
/// PostgreSQL 14 nothing else stops it); what it was handed but had not
/// started is handed again; a task scheduled for later is untouched.
pub fn build(host: &TaskHost) -> Box<dyn crate::api::Work<TaskHost>> {
    let mut db = host.db();
    match recover(&mut db) {
        Ok(tasks) => {
            for t in &tasks {
                warn!(
                    "maintenance task {} ({}) aborted: the task worker stopped during it",
                    t.id,
                    describe(t)
                );
            }
            let orphans: Vec<(String, i32)> = tasks
                .iter()
                .filter_map(|t| t.backend_pid.map(|pid| (t.dbname.clone(), pid)))
                .collect();
            if !orphans.is_empty() {
                // Off the start: PostgreSQL may be slow to answer.
                let _ = host.spawn("orphans", move |host| terminate_orphans(&host, &orphans));
            }
        }
        Err(e) => warn!("maintenance: cannot record interrupted tasks: {e}"),
    }
    drop(db);
    Box::new(TaskWork {
        running: Arc::default(),
    })
}

/// The interrupted tasks aborted, their operations failed and their
/// notifications written in one SQLite transaction (see [`start`]).
fn recover(db: &mut rusqlite::Connection) -> rusqlite::Result<Vec<Task>> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let tasks = store::recover(&tx)?;
    for t in &tasks {
        if let Some(op) = &t.operation {
            operations::finish(
                &tx,
                op,
                false,
                "",
                Some("the task worker stopped during the task"),
            )?;
        }
        notifications::push(
            &tx,
            &t.username,
            &format!("Maintenance {} aborted", describe(t)),
        )?;
    }
    tx.commit()?;
    Ok(tasks)
}

/// Terminates the backends the previous task worker left running, only if
/// they are still the agent's task backends (a pid may have been reused).
fn terminate_orphans(host: &TaskHost, orphans: &[(String, i32)]) {
    for (dbname, pid) in orphans {
        let outcome = host.connect(dbname, 5_000).and_then(|mut c| {
            let row = c
                .client
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE pid = $1 AND application_name = 'temboard-agent task'",
                    &[pid],
                )
                .map_err(|e| WorkerError::Postgres(crate::pg::describe(&e)));
            c.close();
            row.map(|r| r.get::<_, i64>(0))
        });
        match outcome {
            Ok(1) => info!("maintenance: backend {pid} of an aborted task terminated"),
            Ok(_) => {}
            Err(e) => warn!("maintenance: backend {pid} of an aborted task not checked: {e}"),
        }
    }
}

/// Double-quoted identifier (any name, quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the task does, for notifications and logs: `VACUUM (FULL) of
/// db.schema.table`.
pub fn describe(t: &Task) -> String {
    let target = [Some(&t.dbname), t.schema.as_ref(), t.table.as_ref().or(t.index.as_ref())]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(".");
    let mode = match t.mode.as_deref() {
        Some(m) if !m.is_empty() => format!(" ({})", m.to_uppercase()),
        _ => String::new(),
    };
    format!("{}{mode} of {target}", t.op.to_uppercase())
}

/// The statement of a task, identifiers quoted; `None` for a mode that is
/// not a list of `full`, `freeze`, `analyze` (checked when scheduled, and
/// again here: the row comes from the state database, which the http
/// worker writes, and only these words may reach the SQL).
pub fn statement(t: &Task) -> Option<String> {
    let qualified = |name: &Option<String>| {
        name.as_ref().map(|n| {
            format!(
                "{}.{}",
                quote_ident(t.schema.as_deref().unwrap_or_default()),
                quote_ident(n)
            )
        })
    };
    let table = qualified(&t.table);
    let sql = match t.op.as_str() {
        "vacuum" => {
            let mut opts = vec!["VERBOSE"];
            for m in t.mode.as_deref().unwrap_or_default().split(',') {
                let word = match m {
                    "" => continue,
                    "full" => "FULL",
                    "freeze" => "FREEZE",
                    "analyze" => "ANALYZE",
                    _ => return None,
                };
                if !opts.contains(&word) {
                    opts.push(word);
                }
            }
            format!("VACUUM ({}) {}", opts.join(", "), table.unwrap_or_default())
        }
        "analyze" => format!("ANALYZE VERBOSE {}", table.unwrap_or_default()),
        _ => match (table, qualified(&t.index)) {
            (Some(tb), _) => format!("REINDEX (VERBOSE) TABLE {tb}"),
            (None, Some(ix)) => format!("REINDEX (VERBOSE) INDEX {ix}"),
            (None, None) => format!("REINDEX (VERBOSE) DATABASE {}", quote_ident(&t.dbname)),
        },
    };
    Some(sql.trim_end().to_string())
}

impl crate::api::Work<TaskHost> for TaskWork {
    fn handle(&self, host: &TaskHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: RunnerCall| match c {
            RunnerCall::Run { id } => {
                let running = self.running.clone();
                let slot = Arc::new(Slot::default());
                lock(&running).insert(id.clone(), slot.clone());
                let (thread_id, thread_slot) = (id.clone(), slot.clone());
                let spawned = host.spawn(&format!("task {id}"), move |host| {
                    // A panic must not leave the task `doing` (its database
                    // would never run another): it ends `failed`.
                    let run = std::panic::AssertUnwindSafe(|| run(&host, &thread_id, &thread_slot));
                    if std::panic::catch_unwind(run).is_err() {
                        let ending = Ending {
                            task: None,
                            status: "failed",
                            error: Some("internal error (see the agent's log)"),
                            output: "",
                            op_id: None,
                            notify_as: "",
                        };
                        end(&host, &thread_id, &ending);
                    }
                    thread_slot.ended.store(true, Ordering::SeqCst);
                    let mut map = lock(&running);
                    // Only this run's slot (the id may be running again).
                    if map.get(&thread_id).is_some_and(|s| Arc::ptr_eq(s, &thread_slot)) {
                        map.remove(&thread_id);
                    }
                });
                if let Err(e) = spawned {
                    lock(&self.running).remove(&id);
                    return Err(e);
                }
                Ok(json!({"started": id}))
            }
            RunnerCall::Cancel { id, username } => {
                let slot = lock(&self.running).get(&id).cloned();
                if let Some(slot) = slot {
                    *lock(&slot.canceled_by) = Some(username);
                    slot.canceled.store(true, Ordering::SeqCst);
                    resend_cancel(host, slot)?;
                    return Ok(json!({"canceled": id}));
                }
                // Not running here: it may still be queued.
                let db = host.db();
                let waiting = store::active(&db, &id)
                    .map_err(|e| WorkerError::Internal(e.to_string()))?;
                if store::cancel_waiting(&db, &id, &["todo", "queued"])
                    .map_err(|e| WorkerError::Internal(e.to_string()))?
                {
                    if let Some(t) = waiting {
                        let _ = notifications::push(
                            &db,
                            &username,
                            &format!("Maintenance {} canceled", describe(&t)),
                        );
                    }
                    Ok(json!({"canceled": id}))
                } else {
                    Err(WorkerError::NotFound("Scheduled operation not found".into()))
                }
            }
        })
    }

    fn stop(&self, _host: &TaskHost) {
        let slots: Vec<Arc<Slot>> = lock(&self.running).values().cloned().collect();
        for slot in slots {
            slot.stopping.store(true, Ordering::SeqCst);
            cancel_backend(&slot);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn cancel_backend(slot: &Slot) {
    let token = lock(&slot.token).clone();
    if let Some(token) = token {
        if let Err(e) = token.cancel_query(NoTls) {
            warn!("cannot cancel a maintenance task's backend: {e}");
        }
    }
}

/// Sends the cancel request, and again every 200 ms until the statement is
/// over (10 s at most): PostgreSQL ignores a cancel that reaches a backend
/// between two statements, so one request could be lost.
fn resend_cancel(host: &TaskHost, slot: Arc<Slot>) -> Result<(), WorkerError> {
    cancel_backend(&slot);
    host.spawn("cancel", move |_| {
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if slot.ended.load(Ordering::SeqCst) {
                return;
            }
            cancel_backend(&slot);
        }
    })
}

/// `queued` → `doing`, its operation and its notification in one SQLite
/// transaction: a worker killed in between must not leave a running task
/// whose operation was never recorded (its abort would then fail nothing).
fn start(db: &mut rusqlite::Connection, id: &str, op_id: &str) -> rusqlite::Result<Option<Task>> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(t) = store::start(&tx, id, op_id)? else {
        return Ok(None);
    };
    operations::begin_beside(&tx, op_id, &t.op, &t.username)?;
    notifications::push(
        &tx,
        &t.username,
        &format!("Maintenance {} started", describe(&t)),
    )?;
    tx.commit()?;
    Ok(Some(t))
}

/// One task from `queued` to its end.
fn run(host: &TaskHost, id: &str, slot: &Slot) {
    let op_id = match crate::store::sessions::new_id() {
        Ok(v) => v,
        Err(e) => {
            warn!("maintenance task {id}: OS random source: {e}");
            return;
        }
    };
    let task = {
        let mut db = host.db();
        if slot.canceled.load(Ordering::SeqCst) {
            // Canceled between its hand-over and now: it never starts.
            let task = store::active(&db, id).ok().flatten();
            if store::cancel_waiting(&db, id, &["queued"]).unwrap_or(false) {
                if let (Some(t), Some(who)) = (task, lock(&slot.canceled_by).clone()) {
                    let _ = notifications::push(
                        &db,
                        &who,
                        &format!("Maintenance {} canceled", describe(&t)),
                    );
                }
            }
            return;
        }
        match start(&mut db, id, &op_id) {
            Ok(Some(t)) => t,
            Ok(None) => return, // canceled before it started
            Err(e) => {
                warn!("maintenance task {id}: state database: {e}");
                return;
            }
        }
    };
    let Some(sql) = statement(&task) else {
        let ending = Ending {
            task: Some(&task),
            status: "failed",
            error: Some("the task's mode is not full, freeze or analyze"),
            output: "",
            op_id: Some(&op_id),
            notify_as: &task.username,
        };
        end(host, id, &ending);
        return;
    };
    info!("maintenance task {id}: {sql}");
    let settings = super::config::settings(&host.settings().config);
    let outcome = execute(host, &task, &sql, settings.task_lock_timeout * 1000, slot);
    slot.ended.store(true, Ordering::SeqCst);
    let (status, error, output) = match outcome {
        Ok(output) => ("done", None, output),
        Err((e, output)) => {
            let status = if slot.stopping.load(Ordering::SeqCst) {
                "aborted"
            } else if slot.canceled.load(Ordering::SeqCst) {
                "canceled"
            } else {
                "failed"
            };
            (status, Some(e), output)
        }
    };
    let canceled_by = lock(&slot.canceled_by).clone();
    let text = format!("{sql}\n{output}");
    let who = match status {
        "canceled" => canceled_by.as_deref().unwrap_or(&task.username),
        _ => &task.username,
    };
    let ending = Ending {
        task: Some(&task),
        status,
        error: error.as_deref(),
        output: &text,
        op_id: Some(&op_id),
        notify_as: who,
    };
    end(host, id, &ending);
}

/// How a task ended, for [`end`].
struct Ending<'a> {
    task: Option<&'a Task>,
    status: &'a str,
    error: Option<&'a str>,
    output: &'a str,
    op_id: Option<&'a str>,
    /// The user of the notification.
    notify_as: &'a str,
}

/// The task's end, its operation's and its notification in one SQLite
/// transaction (see [`start`]); false when the task had already ended.
fn finish(db: &mut rusqlite::Connection, id: &str, e: &Ending<'_>) -> rusqlite::Result<bool> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !store::finish(&tx, id, e.status, e.error)? {
        return Ok(false);
    }
    if let Some(op) = e.op_id {
        operations::finish(&tx, op, e.status == "done", e.output, e.error)?;
    }
    if let Some(t) = e.task {
        let message = match (e.status, e.error) {
            ("failed", Some(why)) => format!("Maintenance {} failed: {why}", describe(t)),
            (status, _) => format!("Maintenance {} {status}", describe(t)),
        };
        notifications::push(&tx, e.notify_as, &message)?;
    }
    tx.commit()?;
    Ok(true)
}

/// Records a task's end (retried: a busy state database must not leave it
/// `doing`), its operation's, and the notification: by who canceled it for
/// a cancel, by who scheduled it otherwise.
fn end(host: &TaskHost, id: &str, e: &Ending<'_>) {
    let status = e.status;
    for attempt in 0..5 {
        let mut db = host.db();
        match finish(&mut db, id, e) {
            Ok(true) => {
                info!("maintenance task {id} {status}");
                return;
            }
            Ok(false) => return,
            Err(err) => {
                warn!(
                    "maintenance task {id}: state database (attempt {}): {err}",
                    attempt + 1
                );
                drop(db);
                std::thread::sleep(std::time::Duration::from_secs(1 << attempt));
            }
        }
    }
}

/// Connects, checks the target still exists, runs the statement; the
/// connection is closed (its backend gone) before this returns. The
/// server's messages come back either way.
fn execute(
    host: &TaskHost,
    task: &Task,
    sql: &str,
    lock_timeout_ms: u64,
    slot: &Slot,
) -> Result<String, (String, String)> {
    let mut conn = host
        .connect(&task.dbname, lock_timeout_ms)
        .map_err(|e| (e.to_string(), String::new()))?;
    *slot.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.client.cancel_token());
    let _ = store::set_backend(&host.db(), &task.id, conn.backend_pid);
    let result = if slot.canceled.load(Ordering::SeqCst) || slot.stopping.load(Ordering::SeqCst) {
        Err("canceled before it started".to_string())
    } else {
        exists(&mut conn.client, task).and_then(|()| {
            // A cancel sent before the statement reached the backend was
            // ignored by it: look at the flag last thing before sending.
            if slot.canceled.load(Ordering::SeqCst) || slot.stopping.load(Ordering::SeqCst) {
                return Err("canceled before it started".to_string());
            }
            conn.client
                .batch_execute(sql)
                .map_err(|e| crate::pg::describe(&e))
        })
    };
    *slot.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let output = conn.output();
    conn.close();
    match result {
        Ok(()) => Ok(output),
        Err(e) => Err((e, output)),
    }
}

/// The table or index is checked again at run time (it may have been
/// dropped since it was scheduled).
fn exists(client: &mut postgres::Client, task: &Task) -> Result<(), String> {
    let schema = task.schema.as_deref().unwrap_or_default();
    let (name, what, kinds) = match (&task.table, &task.index) {
        (Some(t), _) => (t, "Table", "rmp"),
        (None, Some(i)) => (i, "Index", "iI"),
        (None, None) => return Ok(()),
    };
    let found = client
        .query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND strpos($3, c.relkind::text) > 0",
            &[&schema, name, &kinds],
        )
        .map_err(|e| crate::pg::describe(&e))?;
    match found {
        Some(_) => Ok(()),
        None => Err(format!("{what} {schema}.{name} not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(op: &str, table: Option<&str>, index: Option<&str>, mode: Option<&str>) -> Task {
        Task {
            id: "0".into(),
            op: op.into(),
            dbname: "my \"db\"".into(),
            schema: table.or(index).map(|_| "app".into()),
            table: table.map(Into::into),
            index: index.map(Into::into),
            mode: mode.map(Into::into),
            datetime: String::new(),
            start_at: 0,
            status: "todo".into(),
            username: String::new(),
            operation: None,
            backend_pid: None,
        }
    }

    #[test]
    fn every_level_gets_its_statement_with_quoted_names() {
        let cases = [
            (task("vacuum", None, None, Some("")), "VACUUM (VERBOSE)"),
            (
                task("vacuum", Some("t 1"), None, Some("full,analyze,full")),
                "VACUUM (VERBOSE, FULL, ANALYZE) \"app\".\"t 1\"",
            ),
            (task("analyze", None, None, None), "ANALYZE VERBOSE"),
            (task("analyze", Some("t"), None, None), "ANALYZE VERBOSE \"app\".\"t\""),
            (task("reindex", None, None, None), "REINDEX (VERBOSE) DATABASE \"my \"\"db\"\"\""),
            (task("reindex", Some("t"), None, None), "REINDEX (VERBOSE) TABLE \"app\".\"t\""),
            (task("reindex", None, Some("i"), None), "REINDEX (VERBOSE) INDEX \"app\".\"i\""),
        ];
        for (t, want) in cases {
            assert_eq!(statement(&t).as_deref(), Some(want));
        }
        // A mode outside the whitelist never reaches the SQL.
        assert_eq!(statement(&task("vacuum", None, None, Some("full); DROP TABLE x; --"))), None);
    }
}
