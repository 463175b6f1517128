//! The maintenance routes (signed, facts 9), with the decisions of facts
//! 14: an unknown database, table or index is a 404 naming it, the same
//! task scheduled twice a 409, every list filtered as its path says, and a
//! cancel only of a task of the type in the path.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::store::{self, Filter, Task};
use super::calls::{RunnerCall, SizesCall, INSTANCE_WAIT, SCHEMA_WAIT};
use crate::store::notifications;
use crate::api::ApiError;
use crate::api::{Call, Handled, Reply, Route};

const fn get(path: &'static str, id: &'static str, f: fn(Call<'_>) -> Handled<'_>) -> Route {
    Route::signed("maintenance", "GET", path, id, f)
}

const fn post(path: &'static str, id: &'static str) -> Route {
    Route::signed("maintenance", "POST", path, id, schedule)
}

const fn listed(path: &'static str, id: &'static str) -> Route {
    Route::signed("maintenance", "GET", path, id, list)
}

const fn delete(path: &'static str, id: &'static str) -> Route {
    Route::signed("maintenance", "DELETE", path, id, cancel)
}

/// The routes, 9.x contract only.
pub const ROUTES: &[Route] = &[
    get("/maintenance", "Maintenance9", instance).with_deadline(Duration::from_secs(
        INSTANCE_WAIT.as_secs() + 5,
    )),
    listed("/maintenance/vacuum/scheduled", "MaintenanceVacuumScheduled9"),
    listed("/maintenance/analyze/scheduled", "MaintenanceAnalyzeScheduled9"),
    listed("/maintenance/reindex/scheduled", "MaintenanceReindexScheduled9"),
    delete("/maintenance/vacuum/{id}", "MaintenanceVacuumCancel9"),
    delete("/maintenance/analyze/{id}", "MaintenanceAnalyzeCancel9"),
    delete("/maintenance/reindex/{id}", "MaintenanceReindexCancel9"),
    get("/maintenance/{db}", "MaintenanceDatabase9", database),
    post("/maintenance/{db}/vacuum", "MaintenanceDatabaseVacuum9"),
    post("/maintenance/{db}/analyze", "MaintenanceDatabaseAnalyze9"),
    post("/maintenance/{db}/reindex", "MaintenanceDatabaseReindex9"),
    listed(
        "/maintenance/{db}/vacuum/scheduled",
        "MaintenanceDatabaseVacuumScheduled9",
    ),
    listed(
        "/maintenance/{db}/analyze/scheduled",
        "MaintenanceDatabaseAnalyzeScheduled9",
    ),
    listed(
        "/maintenance/{db}/reindex/scheduled",
        "MaintenanceDatabaseReindexScheduled9",
    ),
    get("/maintenance/{db}/schema/{schema}", "MaintenanceSchema9", schema).with_deadline(SCHEMA_WAIT),
    listed(
        "/maintenance/{db}/schema/{schema}/reindex/scheduled",
        "MaintenanceSchemaReindexScheduled9",
    ),
    post(
        "/maintenance/{db}/schema/{schema}/index/{index}/reindex",
        "MaintenanceIndexReindex9",
    ),
    get(
        "/maintenance/{db}/schema/{schema}/table/{table}",
        "MaintenanceTable9",
        table,
    ),
    post(
        "/maintenance/{db}/schema/{schema}/table/{table}/vacuum",
        "MaintenanceTableVacuum9",
    ),
    post(
        "/maintenance/{db}/schema/{schema}/table/{table}/analyze",
        "MaintenanceTableAnalyze9",
    ),
    post(
        "/maintenance/{db}/schema/{schema}/table/{table}/reindex",
        "MaintenanceTableReindex9",
    ),
    listed(
        "/maintenance/{db}/schema/{schema}/table/{table}/vacuum/scheduled",
        "MaintenanceTableVacuumScheduled9",
    ),
    listed(
        "/maintenance/{db}/schema/{schema}/table/{table}/analyze/scheduled",
        "MaintenanceTableAnalyzeScheduled9",
    ),
    listed(
        "/maintenance/{db}/schema/{schema}/table/{table}/reindex/scheduled",
        "MaintenanceTableReindexScheduled9",
    ),
];

/// The operation a route is about, from its literal segments.
fn op_of(route: &Route) -> &'static str {
    ["vacuum", "analyze", "reindex"]
        .into_iter()
        .find(|op| route.path.split('/').any(|s| s == *op))
        .unwrap_or("vacuum")
}

/// Longest PostgreSQL name in bytes (`NAMEDATALEN - 1`): a longer one
/// cannot name anything.
const MAX_NAME: usize = 63;

/// Refuses names no PostgreSQL object can have before any query: a NUL
/// byte (the protocol cannot carry it: it was a 500) or past [`MAX_NAME`]
/// bytes (a 5,000-byte name was a 500 too).
fn check_names(c: &Call<'_>) -> Result<(), ApiError> {
    for name in &c.path {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
            return Err(ApiError::NotAcceptable(format!(
                "Invalid name of {} bytes: PostgreSQL names have 1 to {MAX_NAME} bytes and no NUL character.",
                name.len()
            )));
        }
    }
    Ok(())
}

/// `GET /maintenance`.
fn instance(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let v = c.state.call_within(SizesCall::Instance, INSTANCE_WAIT).await?;
        Ok(Reply::Json(v))
    })
}

/// `GET /maintenance/<db>`.
fn database(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        check_names(&c)?;
        let db = c.segment(0).to_string();
        Ok(Reply::Json(c.state.call(SizesCall::Database { db }).await?))
    })
}

/// `GET /maintenance/<db>/schema/<s>`.
fn schema(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        check_names(&c)?;
        let (db, schema) = (c.segment(0).to_string(), c.segment(1).to_string());
        // Streamed: 7 MB for 10,000 tables, never held nor parsed here.
        let call = SizesCall::Schema { db, schema };
        Ok(Reply::Stream(c.state.stream(call, SCHEMA_WAIT).await?))
    })
}

/// `GET /maintenance/<db>/schema/<s>/table/<t>`.
fn table(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        check_names(&c)?;
        let call = SizesCall::Table {
            db: c.segment(0).to_string(),
            schema: c.segment(1).to_string(),
            table: c.segment(2).to_string(),
        };
        Ok(Reply::Json(c.state.call(call).await?))
    })
}

/// The 9.x `timestamp` rule and a real UTC date: its epoch seconds.
fn parse_datetime(s: &str) -> Option<i64> {
    let shaped = s.len() == 20
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

/// The 9.x vacuum `mode` rule: a comma list of `full`, `freeze`,
/// `analyze`; the empty string is malformed.
fn valid_mode(m: &str) -> bool {
    !m.is_empty()
        && m
            .split(',')
            .all(|p| ["full", "freeze", "analyze"].contains(&p))
}

/// The 9.x task id: the first 8 hex digits of the MD5 of
/// `<db>:<schema>:<table><index>:<datetime>:<op>`.
pub fn task_id(t: &Task) -> Result<String, ApiError> {
    let text = format!(
        "{}:{}:{}{}:{}:{}",
        t.dbname,
        t.schema.as_deref().unwrap_or_default(),
        t.table.as_deref().unwrap_or_default(),
        t.index.as_deref().unwrap_or_default(),
        t.datetime,
        t.op
    );
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::md5(), text.as_bytes())
        .map_err(|e| ApiError::Internal(format!("md5: {e}")))?;
    Ok(digest[..4].iter().map(|b| format!("{b:02x}")).collect())
}

/// `POST …/vacuum`, `…/analyze`, `…/reindex` at every level.
fn schedule(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        check_names(&c)?;
        let op = op_of(c.route);
        let empty = Map::new();
        let body = match &c.body {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => {
                return Err(ApiError::NotAcceptable(
                    "The body must be a JSON object.".into(),
                ))
            }
        };
        let (datetime, start_at) = match body.get("datetime") {
            None => {
                let now = chrono::Utc::now();
                (now.format("%Y-%m-%dT%H:%M:%SZ").to_string(), now.timestamp())
            }
            Some(Value::String(s)) => match parse_datetime(s) {
                Some(at) => (s.clone(), at),
                None => return Err(ApiError::malformed("datetime")),
            },
            Some(_) => return Err(ApiError::malformed("datetime")),
        };
        let mode = match (op, body.get("mode")) {
            ("vacuum", None) => Some(String::new()),
            ("vacuum", Some(Value::String(m))) if valid_mode(m) => Some(m.clone()),
            ("vacuum", Some(_)) => return Err(ApiError::malformed("mode")),
            _ => None,
        };
        let parts = &c.path;
        let segment = |name: &str| {
            c.route
                .path
                .split('/')
                .filter(|s| s.starts_with('{'))
                .position(|s| s == format!("{{{name}}}"))
                .and_then(|i| parts.get(i).cloned())
        };
        let mut task = Task {
            id: String::new(),
            op: op.to_string(),
            dbname: c.segment(0).to_string(),
            schema: segment("schema"),
            table: segment("table"),
            index: segment("index"),
            mode,
            datetime,
            start_at,
            status: "todo".into(),
            username: c.caller()?.username.clone(),
            operation: None,
            backend_pid: None,
        };
        c.state
            .call(SizesCall::Check {
                db: task.dbname.clone(),
                schema: task.schema.clone(),
                table: task.table.clone(),
                index: task.index.clone(),
            })
            .await?;
        task.id = task_id(&task)?;
        let id = task.id.clone();
        let inserted = c
            .state
            .db
            .run(move |conn| {
                // Immediate: the count is read under the write lock, so it
                // cannot go stale before the insert (a deferred read would
                // fail with SQLITE_BUSY when the scheduler writes between).
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                if store::active_count(&tx)? >= store::MAX_ACTIVE {
                    return Ok(None);
                }
                let inserted = store::insert(&tx, &task)?;
                if inserted {
                    notifications::push(
                        &tx,
                        &task.username,
                        &format!(
                            "Maintenance {} scheduled for {}",
                            super::task::describe(&task),
                            task.datetime
                        ),
                    )?;
                }
                tx.commit()?;
                Ok(Some(inserted))
            })
            .await?;
        let Some(inserted) = inserted else {
            return Err(ApiError::Status(
                429,
                format!(
                    "{} maintenance tasks are already scheduled or running, the most this agent keeps: wait for some to end, or cancel some.",
                    store::MAX_ACTIVE
                ),
            ));
        };
        if !inserted {
            return Err(ApiError::Conflict("Task id already exists".into()));
        }
        Ok(Reply::Json(json!({ "id": id })))
    })
}

/// `GET …/{vacuum,analyze,reindex}/scheduled` at every level, filtered on
/// what the path names.
fn list(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        check_names(&c)?;
        let mut names = c.path.iter().cloned();
        let filter = Filter {
            op: op_of(c.route).to_string(),
            dbname: names.next(),
            schema: names.next(),
            table: names.next(),
        };
        let tasks = c.state.db.run(move |conn| store::list(conn, &filter)).await?;
        let rows: Vec<Value> = tasks
            .into_iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "dbname": t.dbname,
                    "schema": t.schema,
                    "table": t.table,
                    "index": t.index,
                    "mode": t.mode,
                    "datetime": t.datetime,
                    "status": t.status,
                })
            })
            .collect();
        Ok(Reply::Json(Value::Array(rows)))
    })
}

/// `DELETE /maintenance/{vacuum,analyze,reindex}/<id>`: a task waiting for
/// its time is canceled here; a queued or running one by the task worker,
/// which cancels its backend.
fn cancel(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        check_names(&c)?;
        let op = op_of(c.route);
        let id = c.segment(0).to_string();
        let lookup = id.clone();
        let task = c.state.db.run(move |conn| store::active(conn, &lookup)).await?;
        let not_found = || ApiError::NotFoundText("Scheduled operation not found".into());
        let task = task.filter(|t| t.op == op).ok_or_else(not_found)?;
        let waiting = id.clone();
        let canceled = c
            .state
            .db
            .run(move |conn| store::cancel_waiting(conn, &waiting, &["todo"]))
            .await?;
        let username = c.caller()?.username.clone();
        if canceled {
            let message = format!("Maintenance {} canceled", super::task::describe(&task));
            c.state.notify(&username, vec![message]).await?;
        } else {
            // Queued or running: the task worker cancels it and writes the
            // notification once the task has really ended canceled.
            c.state
                .call(RunnerCall::Cancel {
                    id: id.clone(),
                    username,
                })
                .await?;
        }
        Ok(Reply::Json(json!({"response": "ok"})))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(db: &str, schema: Option<&str>, table: Option<&str>) -> Task {
        Task {
            id: String::new(),
            op: "vacuum".into(),
            dbname: db.into(),
            schema: schema.map(Into::into),
            table: table.map(Into::into),
            index: None,
            mode: None,
            datetime: "2026-11-29T21:12:32Z".into(),
            start_at: 0,
            status: "todo".into(),
            username: String::new(),
            operation: None,
            backend_pid: None,
        }
    }

    #[test]
    fn ids_are_the_9x_ones() {
        // facts 9.2, observed on the 9.0.1 agent
        assert_eq!(task_id(&task("my db", None, None)).unwrap(), "b197024e");
        assert_eq!(
            task_id(&task("my db", Some("app"), Some("t1"))).unwrap(),
            "e9aef63d"
        );
    }

    #[test]
    fn datetime_and_mode_rules() {
        assert_eq!(parse_datetime("1970-01-01T00:01:00Z"), Some(60));
        for bad in [
            "2026-11-29 21:12:32Z",
            "2026-11-29T21:12:32",
            "2026-13-29T21:12:32Z",
            "2026-11-29T21:12:32+00:00",
            "",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert!(valid_mode("full,analyze"));
        assert!(valid_mode("freeze"));
        for bad in ["", "full,", ",full", "FULL", "full;drop", "verbose"] {
            assert!(!valid_mode(bad), "{bad}");
        }
    }
}
