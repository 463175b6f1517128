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
use super::TaskCall;
use crate::ipc::messages::WorkerError;
use crate::store::{notifications, operations};
use crate::workers::task::TaskHost;

/// A running task's handle for a cancel.
#[derive(Default)]
struct Slot {
    token: Mutex<Option<CancelToken>>,
    canceled: AtomicBool,
    stopping: AtomicBool,
}

/// The maintenance work of the task worker.
pub struct TaskWork {
    running: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

/// Built when the task worker starts: what a previous incarnation was
/// running is over — `aborted`, its operation failed, said in a
/// notification; what it was handed but had not started is handed again;
/// a task scheduled for later is untouched.
pub fn build(host: &TaskHost) -> Box<dyn crate::plugins::Work<TaskHost>> {
    let db = host.db();
    match store::recover(&db) {
        Ok(tasks) => {
            for t in tasks {
                warn!("maintenance task {} ({}) aborted: the task worker stopped during it", t.id, describe(&t));
                if let Some(op) = &t.operation {
                    let _ = operations::finish(&db, op, false, "", Some("the task worker stopped during the task"));
                }
                let _ = notifications::push(&db, &t.username, &format!("Maintenance {} aborted", describe(&t)));
            }
        }
        Err(e) => warn!("maintenance: cannot record interrupted tasks: {e}"),
    }
    drop(db);
    Box::new(TaskWork {
        running: Arc::default(),
    })
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

/// The statement of a task, identifiers quoted.
pub fn statement(t: &Task) -> String {
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
    match t.op.as_str() {
        "vacuum" => {
            let mut opts = vec!["VERBOSE".to_string()];
            opts.extend(
                t.mode
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_uppercase),
            );
            format!("VACUUM ({}) {}", opts.join(", "), table.unwrap_or_default())
                .trim_end()
                .to_string()
        }
        "analyze" => format!("ANALYZE VERBOSE {}", table.unwrap_or_default())
            .trim_end()
            .to_string(),
        _ => match (table, qualified(&t.index)) {
            (Some(tb), _) => format!("REINDEX (VERBOSE) TABLE {tb}"),
            (None, Some(ix)) => format!("REINDEX (VERBOSE) INDEX {ix}"),
            (None, None) => format!("REINDEX (VERBOSE) DATABASE {}", quote_ident(&t.dbname)),
        },
    }
}

impl crate::plugins::Work<TaskHost> for TaskWork {
    fn handle(&self, host: &TaskHost, call: Value) -> Result<Value, WorkerError> {
        crate::plugins::typed(call, |c: TaskCall| match c {
            TaskCall::Run { id } => {
                let running = self.running.clone();
                let slot = Arc::new(Slot::default());
                running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), slot.clone());
                let thread_id = id.clone();
                host.spawn(&format!("task {id}"), move |host| {
                    run(&host, &thread_id, &slot);
                    running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&thread_id);
                })?;
                Ok(json!({"started": id}))
            }
            TaskCall::Cancel { id } => {
                let slot = self
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .cloned();
                if let Some(slot) = slot {
                    slot.canceled.store(true, Ordering::SeqCst);
                    cancel_backend(&slot);
                    return Ok(json!({"canceled": id}));
                }
                // Not running here: it may still be queued.
                let db = host.db();
                if store::cancel_waiting(&db, &id, &["todo", "queued"])
                    .map_err(|e| WorkerError::Internal(e.to_string()))?
                {
                    Ok(json!({"canceled": id}))
                } else {
                    Err(WorkerError::NotFound("Scheduled operation not found".into()))
                }
            }
        })
    }

    fn stop(&self, _host: &TaskHost) {
        let slots: Vec<Arc<Slot>> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            slot.stopping.store(true, Ordering::SeqCst);
            cancel_backend(&slot);
        }
    }
}

fn cancel_backend(slot: &Slot) {
    let token = slot.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(token) = token {
        if let Err(e) = token.cancel_query(NoTls) {
            warn!("cannot cancel a maintenance task's backend: {e}");
        }
    }
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
        let db = host.db();
        match store::start(&db, id, &op_id) {
            Ok(Some(t)) => {
                let _ = operations::begin_beside(&db, &op_id, &t.op, &t.username);
                let _ = notifications::push(&db, &t.username, &format!("Maintenance {} started", describe(&t)));
                t
            }
            Ok(None) => return, // canceled before it started
            Err(e) => {
                warn!("maintenance task {id}: state database: {e}");
                return;
            }
        }
    };
    let sql = statement(&task);
    info!("maintenance task {id}: {sql}");
    let settings = super::settings(&host.settings().config);
    let outcome = execute(host, &task, &sql, settings.task_lock_timeout * 1000, slot);
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
    let text = format!("{sql}\n{output}");
    let db = host.db();
    match store::finish(&db, id, status, error.as_deref()) {
        Ok(true) => {
            let _ = operations::finish(&db, &op_id, status == "done", &text, error.as_deref());
            // A cancel is notified by the API, under the user who asked it.
            if status != "canceled" {
                let message = match &error {
                    Some(e) if status == "failed" => {
                        format!("Maintenance {} failed: {e}", describe(&task))
                    }
                    _ => format!("Maintenance {} {status}", describe(&task)),
                };
                let _ = notifications::push(&db, &task.username, &message);
            }
            info!("maintenance task {id} {status}");
        }
        Ok(false) => {}
        Err(e) => warn!("maintenance task {id}: state database: {e}"),
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
            conn.client
                .batch_execute(sql)
                .map_err(|e| crate::workers::probe::pool::describe(&e))
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
    let (name, what) = match (&task.table, &task.index) {
        (Some(t), _) => (t, "Table"),
        (None, Some(i)) => (i, "Index"),
        (None, None) => return Ok(()),
    };
    let found = client
        .query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, name],
        )
        .map_err(|e| crate::workers::probe::pool::describe(&e))?;
    match found {
        Some(_) => Ok(()),
        None => Err(format!("{what} {schema}.{name} not found")),
    }
}
