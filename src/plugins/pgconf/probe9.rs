//! The pgconf plugin's 9.x work in the probe worker (facts 9.x section 6):
//! `pg_settings` rows with their `pg_file_settings` sources, the deprecated
//! grouped shape the UI 9.0.1 reads, and `ALTER SYSTEM` changes checked by
//! PostgreSQL itself. Reads run on a backend opened for the purpose (a
//! pooled one may have re-read the files lazily, see `Pool::with_new`);
//! names and values are always bound or quoted by the server.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::change::{self, alter_sql, Change};
use crate::ipc::messages::WorkerError;
use crate::pg::Conn;
use crate::api::ProbeHost;

/// The 9.x calls (carried inside `PgconfCall::V9`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op9", rename_all = "snake_case")]
pub enum Pgconf9Call {
    /// `GET /pgconf/settings`: every row, with sources.
    Settings,
    /// The deprecated grouped listing, filtered or one category.
    Configuration {
        /// Substring of name or descriptions (validated by the route).
        filter: Option<String>,
        /// Exact category.
        category: Option<String>,
    },
    /// `GET /pgconf/configuration/status`.
    Status,
    /// Resets then sets, in order, then a reload; a value equal to the
    /// running one is skipped (as 10.0 does).
    Apply {
        /// `ALTER SYSTEM RESET` of each.
        resets: Vec<String>,
        /// `ALTER SYSTEM SET` name to value.
        sets: Vec<(String, String)>,
    },
    /// `ALTER SYSTEM SET name TO DEFAULT` (or `RESET`), then a reload.
    Unset {
        /// The setting.
        name: String,
        /// `TO DEFAULT` rather than `RESET`.
        to_default: bool,
    },
    /// `pg_reload_conf()`.
    Reload,
}

/// What an applied change reports: the notifications of what was done and,
/// when PostgreSQL refused one, its message (what was done before stays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// One per change written, then `PostgreSQL reload`.
    pub notifications: Vec<String>,
    /// PostgreSQL's refusal (406 in 9.x), if any.
    pub error: Option<String>,
}

const SETTINGS_SQL: &str = "
SELECT category, name, setting, current_setting(name), unit, vartype, min_val, max_val,
       enumvals, enumvals::text, context, short_desc || ' ' || coalesce(extra_desc, ''),
       boot_val, reset_val, pending_restart
FROM pg_settings
WHERE ($1::text IS NULL OR strpos(lower(name), lower($1)) > 0
       OR strpos(lower(short_desc), lower($1)) > 0
       OR strpos(lower(coalesce(extra_desc, '')), lower($1)) > 0)
  AND ($2::text IS NULL OR category = $2)
  AND ($3 OR pending_restart)
ORDER BY category, name";

/// Rows of `pg_settings`; `pending_only` keeps those waiting for a restart.
fn rows(
    conn: &mut Conn,
    filter: Option<&str>,
    category: Option<&str>,
    pending_only: bool,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    // PostgreSQL text cannot hold NUL: nothing matches one.
    if [filter, category].iter().flatten().any(|v| v.contains('\0')) {
        return Ok(vec![]);
    }
    conn.client
        .query(SETTINGS_SQL, &[&filter, &category, &!pending_only])
}

/// `pg_file_settings` by setting name; empty when the role may not read it.
fn sources(conn: &mut Conn) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    let found = conn.client.query(
        "SELECT name, sourcefile, sourceline, seqno, setting, error, applied
         FROM pg_file_settings ORDER BY seqno",
        &[],
    );
    match found {
        Ok(list) => {
            for r in list {
                let name: Option<String> = r.get(0);
                out.entry(name.unwrap_or_default()).or_default().push(json!({
                    "file": r.get::<_, Option<String>>(1),
                    "line": r.get::<_, Option<i32>>(2),
                    "seqno": r.get::<_, Option<i32>>(3),
                    "setting": r.get::<_, Option<String>>(4),
                    "error": r.get::<_, Option<String>>(5),
                    "applied": r.get::<_, Option<bool>>(6),
                }));
            }
        }
        Err(e) => tracing::debug!("pg_file_settings not readable: {e}"),
    }
    out
}

/// A row of `GET /pgconf/settings` (facts 6.1).
fn current_row(r: &postgres::Row, sources: &mut HashMap<String, Vec<Value>>) -> Value {
    let name: String = r.get(1);
    json!({
        "category": r.get::<_, String>(0),
        "name": name,
        "setting": r.get::<_, Option<String>>(2),
        "current_setting": r.get::<_, Option<String>>(3),
        "unit": r.get::<_, Option<String>>(4),
        "vartype": r.get::<_, Option<String>>(5),
        "min_val": r.get::<_, Option<String>>(6),
        "max_val": r.get::<_, Option<String>>(7),
        "enumvals": r.get::<_, Option<Vec<String>>>(8),
        "context": r.get::<_, Option<String>>(10),
        "desc": r.get::<_, Option<String>>(11),
        "boot_val": r.get::<_, Option<String>>(12),
        "reset_val": r.get::<_, Option<String>>(13),
        "pending_restart": r.get::<_, Option<bool>>(14).unwrap_or(false),
        "sources": sources.remove(&name).unwrap_or_default(),
    })
}

/// A row of the deprecated routes (facts 6.2; `enumvals` as the array's
/// text, as 9.0.1 sends it).
fn deprecated_row(r: &postgres::Row) -> Value {
    json!({
        "name": r.get::<_, String>(1),
        "setting": r.get::<_, Option<String>>(2),
        "setting_raw": r.get::<_, Option<String>>(3),
        "unit": r.get::<_, Option<String>>(4),
        "vartype": r.get::<_, Option<String>>(5),
        "min_val": r.get::<_, Option<String>>(6),
        "max_val": r.get::<_, Option<String>>(7),
        "boot_val": r.get::<_, Option<String>>(12),
        "reset_val": r.get::<_, Option<String>>(13),
        "enumvals": r.get::<_, Option<String>>(9),
        "context": r.get::<_, Option<String>>(10),
        "desc": r.get::<_, Option<String>>(11),
        "pending_restart": r.get::<_, Option<bool>>(14).unwrap_or(false),
    })
}

/// `[{"category", "rows"}]` in category order.
fn grouped(list: &[postgres::Row]) -> Value {
    let mut out: Vec<Value> = vec![];
    for r in list {
        let category: String = r.get(0);
        let row = deprecated_row(r);
        match out.last_mut() {
            Some(Value::Object(m)) if m.get("category") == Some(&json!(category)) => {
                if let Some(Value::Array(rows)) = m.get_mut("rows") {
                    rows.push(row);
                }
            }
            _ => {
                let mut m = Map::new();
                m.insert("category".into(), json!(category));
                m.insert("rows".into(), json!([row]));
                out.push(Value::Object(m));
            }
        }
    }
    Value::Array(out)
}

/// PostgreSQL's message for a refused statement, as 9.x shows it: libpq's
/// text of the error (psycopg2's `pgerror`), `ERROR:  <message>` with its
/// `DETAIL:` and `HINT:` lines, each ending with a line break.
fn refusal(e: &postgres::Error) -> String {
    let Some(d) = e.as_db_error() else {
        return crate::pg::describe(e);
    };
    let mut text = format!("{}:  {}\n", d.severity(), d.message());
    if let Some(detail) = d.detail() {
        text.push_str(&format!("DETAIL:  {detail}\n"));
    }
    if let Some(hint) = d.hint() {
        text.push_str(&format!("HINT:  {hint}\n"));
    }
    text
}

/// Runs one `ALTER SYSTEM`; `Err` carries PostgreSQL's refusal, `Ok(Err)`
/// a connection-level failure.
fn alter(conn: &mut Conn, name: &str, change: &Change) -> Result<Result<(), String>, postgres::Error> {
    let sql = match alter_sql(conn, name, change) {
        Ok(s) => s,
        Err(e) if e.as_db_error().is_some() => return Ok(Err(refusal(&e))),
        Err(e) => return Err(e),
    };
    match conn.client.batch_execute(&sql) {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.as_db_error().is_some() => Ok(Err(refusal(&e))),
        Err(e) => Err(e),
    }
}

fn apply(conn: &mut Conn, resets: &[String], sets: &[(String, String)]) -> Result<Applied, postgres::Error> {
    let mut notes = vec![];
    let stop = |notifications: Vec<String>, error: String| Applied {
        notifications,
        error: Some(error),
    };
    for name in resets {
        if let Err(e) = alter(conn, name, &Change::Reset)? {
            return Ok(stop(notes, e));
        }
        notes.push(change::note_reset(name));
    }
    for (name, value) in sets {
        let current = match conn
            .client
            .query_one("SELECT current_setting($1)", &[name])
        {
            Ok(r) => r.get::<_, String>(0),
            Err(e) if e.as_db_error().is_some() => return Ok(stop(notes, refusal(&e))),
            Err(e) => return Err(e),
        };
        if current == *value {
            continue;
        }
        if let Err(e) = alter(conn, name, &Change::Set(value.clone()))? {
            return Ok(stop(notes, e));
        }
        notes.push(change::note_changed(name, &current, value));
    }
    conn.client.batch_execute("SELECT pg_reload_conf()")?;
    notes.push(change::NOTE_RELOAD.into());
    Ok(Applied {
        notifications: notes,
        error: None,
    })
}

/// A connection-level failure during a change.
fn failed(e: postgres::Error) -> WorkerError {
    WorkerError::Postgres(crate::pg::describe(&e))
}

fn to_value<T: Serialize>(v: T) -> Result<Value, WorkerError> {
    serde_json::to_value(v).map_err(|e| WorkerError::Internal(e.to_string()))
}

/// Answers a 9.x pgconf call.
pub(super) fn handle(host: &ProbeHost, call: Pgconf9Call) -> Result<Value, WorkerError> {
    match call {
        Pgconf9Call::Settings => host.with_new(|c| {
            let list = rows(c, None, None, false)?;
            let mut src = sources(c);
            Ok(Value::Array(
                list.iter().map(|r| current_row(r, &mut src)).collect(),
            ))
        }),
        Pgconf9Call::Configuration { filter, category } => host.with_new(|c| {
            Ok(grouped(&rows(
                c,
                filter.as_deref(),
                category.as_deref(),
                false,
            )?))
        }),
        Pgconf9Call::Status => host.with_new(|c| {
            let list = rows(c, None, None, true)?;
            Ok(json!({
                "restart_pending": !list.is_empty(),
                "restart_changes": list.iter().map(deprecated_row).collect::<Vec<_>>(),
            }))
        }),
        Pgconf9Call::Apply { resets, sets } => {
            // Every item checked before any is applied.
            for name in &resets {
                change::check_v9(name, None)?;
            }
            for (name, value) in &sets {
                change::check_v9(name, Some(value))?;
            }
            to_value(host.with_once(|c| apply(c, &resets, &sets))?.map_err(failed)?)
        }
        Pgconf9Call::Unset { name, to_default } => {
            change::check_v9(&name, None)?;
            let change = if to_default {
                Change::Default
            } else {
                Change::Reset
            };
            let done = host.with_once(|c| {
                if let Err(e) = alter(c, &name, &change)? {
                    return Ok(Applied {
                        notifications: vec![],
                        error: Some(e),
                    });
                }
                c.client.batch_execute("SELECT pg_reload_conf()")?;
                Ok(Applied {
                    notifications: vec![
                        change::note_reset(&name),
                        change::NOTE_RELOAD.into(),
                    ],
                    error: None,
                })
            })?
            .map_err(failed)?;
            to_value(done)
        }
        Pgconf9Call::Reload => {
            host.with(|c| c.client.batch_execute("SELECT pg_reload_conf()"))?;
            to_value(Applied {
                notifications: vec![change::NOTE_RELOAD.into()],
                error: None,
            })
        }
    }
}
