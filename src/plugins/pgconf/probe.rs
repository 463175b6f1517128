//! The pgconf plugin's work in the probe worker (facts 11): settings read
//! from `pg_settings` and the configuration files at each request (no stale
//! cache), `ALTER SYSTEM` with the name and value quoted by the server
//! (`format('%I', '%L')`), and pg_hba.conf / pg_ident.conf reads and atomic
//! writes. Filters and names are always bound parameters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::change::{self, alter_sql, Change, Kind};
use super::calls::PgconfCall;
use super::{files, hba, settings as conv};
use crate::ipc::messages::WorkerError;
use crate::pg::Conn;
use crate::api::ProbeHost;

/// One row of pg_settings with what the files say.
struct Setting {
    row: Map<String, Value>,
    category: String,
    vartype: String,
    unit: Option<String>,
    setting_raw: Option<String>,
    context: String,
    min: Option<f64>,
    max: Option<f64>,
    enumvals: Vec<String>,
}

impl Setting {
    /// What the 2.x validation needs of the setting.
    fn kind(&self) -> Kind<'_> {
        Kind {
            vartype: &self.vartype,
            unit: self.unit.as_deref(),
            min: self.min,
            max: self.max,
            enumvals: &self.enumvals,
        }
    }
}

const SETTINGS_SQL: &str = "
SELECT name, setting, current_setting(name), unit, vartype, min_val, max_val, boot_val, category,
       enumvals::text, context, short_desc || ' ' || coalesce(extra_desc, ''),
       current_setting('data_directory'), current_setting('config_file')
FROM pg_settings
WHERE ($1::text IS NULL OR name ILIKE '%' || $1 || '%' OR short_desc ILIKE '%' || $1 || '%' OR extra_desc ILIKE '%' || $1 || '%')
  AND ($2::text IS NULL OR category = $2)
  AND ($3::text IS NULL OR name = $3)
ORDER BY category, name";

fn load(
    conn: &mut Conn,
    filter: Option<&str>,
    category: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<Setting>, postgres::Error> {
    // PostgreSQL text cannot hold NUL: no setting, category or filter can
    // match one, and binding it would fail with an encoding error.
    if [filter, category, name]
        .iter()
        .flatten()
        .any(|v| v.contains('\0'))
    {
        return Ok(vec![]);
    }
    let rows = conn
        .client
        .query(SETTINGS_SQL, &[&filter, &category, &name])?;
    let Some(first) = rows.first() else {
        return Ok(vec![]);
    };
    let data_dir: String = first.get(12);
    let config_file: String = first.get(13);
    let auto = conv::parse_conf(
        &std::fs::read_to_string(Path::new(&data_dir).join("postgresql.auto.conf"))
            .unwrap_or_default(),
    )
    .0;
    let file = conv::file_values(Path::new(&config_file));
    Ok(rows.iter().map(|r| build(r, &auto, &file)).collect())
}

fn build(
    r: &postgres::Row,
    auto: &HashMap<String, conv::Assignment>,
    file: &HashMap<String, conv::Assignment>,
) -> Setting {
    let name: String = r.get(0);
    let setting: Option<String> = r.get(1);
    let setting_raw: Option<String> = r.get::<_, Option<String>>(2).filter(|s| !s.is_empty());
    let unit: Option<String> = r.get(3);
    let vartype: String = r.get(4);
    let min: Option<String> = r.get(5);
    let max: Option<String> = r.get(6);
    let boot: Option<String> = r.get(7);
    let enumvals: Option<String> = r.get(9);
    let context: String = r.get(10);
    let typed = |v: Option<&str>| conv::typed(&name, &vartype, unit.as_deref(), v);
    let from_file = |m: &HashMap<String, conv::Assignment>| {
        m.get(&name).map(|a| {
            if vartype == "bool" {
                conv::normalize_bool(&a.value)
                    .map(str::to_string)
                    .unwrap_or_else(|| a.value.clone())
            } else {
                a.value.clone()
            }
        })
    };
    let auto_raw = from_file(auto);
    let file_raw = from_file(file);
    let mut row = Map::new();
    row.insert("name".into(), json!(name));
    row.insert("setting".into(), typed(setting.as_deref()));
    row.insert("setting_raw".into(), json!(setting_raw));
    row.insert("unit".into(), json!(unit));
    row.insert("vartype".into(), json!(vartype));
    row.insert("min_val".into(), typed(min.as_deref()));
    row.insert("max_val".into(), typed(max.as_deref()));
    row.insert("boot_val".into(), typed(boot.as_deref()));
    row.insert("auto_val".into(), typed(auto_raw.as_deref()));
    row.insert(
        "auto_val_raw".into(),
        json!(auto_raw.filter(|s| !s.is_empty())),
    );
    row.insert("file_val".into(), typed(file_raw.as_deref()));
    row.insert(
        "file_val_raw".into(),
        json!(file_raw.filter(|s| !s.is_empty())),
    );
    row.insert("enumvals".into(), json!(enumvals));
    row.insert("context".into(), json!(context));
    row.insert("desc".into(), json!(r.get::<_, String>(11)));
    let parse_num = |v: &Option<String>| v.as_deref().and_then(|x| x.parse::<f64>().ok());
    Setting {
        category: r.get(8),
        min: parse_num(&min),
        max: parse_num(&max),
        enumvals: enumvals
            .as_deref()
            .map(|e| {
                e.trim_matches(|c| c == '{' || c == '}')
                    .split(',')
                    .map(|v| v.trim_matches('"').to_string())
                    .collect()
            })
            .unwrap_or_default(),
        setting_raw,
        vartype,
        unit,
        context,
        row,
    }
}

fn grouped(list: Vec<Setting>) -> Value {
    let mut out: Vec<Value> = vec![];
    let mut current: Option<(String, Vec<Value>)> = None;
    for s in list {
        match &mut current {
            Some((cat, rows)) if *cat == s.category => rows.push(Value::Object(s.row)),
            _ => {
                if let Some((cat, rows)) = current.take() {
                    out.push(json!({ "category": cat, "rows": rows }));
                }
                current = Some((s.category.clone(), vec![Value::Object(s.row)]));
            }
        }
    }
    if let Some((cat, rows)) = current {
        out.push(json!({ "category": cat, "rows": rows }));
    }
    Value::Array(out)
}

fn status(list: Vec<Setting>) -> Value {
    let (mut reload, mut restart) = (vec![], vec![]);
    for s in list {
        let mut row = s.row;
        let setting = row["setting"].clone();
        let auto = row["auto_val"].clone();
        let file = row["file_val"].clone();
        let pending = if !auto.is_null() {
            (auto != setting).then(|| row["auto_val_raw"].clone())
        } else if !file.is_null() && file != json!("") && file != setting {
            Some(row["file_val_raw"].clone())
        } else {
            None
        };
        let Some(p) = pending else { continue };
        row.insert("pending_val".into(), p);
        match s.context.as_str() {
            "backend" | "user" | "superuser" | "sighup" | "superuser-backend" => {
                reload.push(Value::Object(row))
            }
            "postmaster" => restart.push(Value::Object(row)),
            _ => {}
        }
    }
    json!({
        "restart_pending": !restart.is_empty(),
        "reload_pending": !reload.is_empty(),
        "restart_changes": restart,
        "reload_changes": reload,
    })
}

fn changed(s: &Setting, change: &Change) -> bool {
    match change {
        Change::Reset | Change::Default => true,
        Change::Set(v) => match s.vartype.as_str() {
            "integer" => Some(v.as_str()) != s.setting_raw.as_deref(),
            "real" => conv::to_unit(v, s.unit.as_deref()) != s.row["setting"].as_f64(),
            _ => s.row["setting"].as_str() != Some(v.as_str()),
        },
    }
}

fn update(conn: &mut Conn, items: &Value, filter: Option<&str>) -> Result<Value, WorkerError> {
    let items = items
        .as_array()
        .ok_or_else(|| WorkerError::Invalid("Parameter 'settings' is malformed.".into()))?;
    let mut applied = vec![];
    let mut notes = vec![];
    let pg = |e: postgres::Error| WorkerError::Postgres(crate::pg::describe(&e));
    for item in items {
        let (Some(name), Some(value)) = (
            item.get("name").and_then(Value::as_str),
            item.get("setting"),
        ) else {
            return Ok(partial(
                applied,
                notes,
                Some(WorkerError::Invalid("setting item malformed.".into())),
            ));
        };
        let found = load(conn, filter, None, Some(name)).map_err(pg)?;
        let (Some(s), Some(value)) = (found.into_iter().next(), value.as_str()) else {
            return Ok(partial(
                applied,
                notes,
                Some(WorkerError::Invalid(format!(
                    "Parameter {name} can't be checked."
                ))),
            ));
        };
        let change = match change::validate_v2(&s.kind(), name, value) {
            Ok(c) => c,
            Err(e @ WorkerError::Invalid(_)) => return Ok(partial(applied, notes, Some(e))),
            Err(e) => return Err(e),
        };
        let force = item.get("force").and_then(Value::as_str) == Some("true");
        if !changed(&s, &change) && !force {
            continue;
        }
        let sql = alter_sql(conn, name, &change).map_err(pg)?;
        if let Err(e) = conn.client.batch_execute(&sql) {
            let msg = crate::pg::describe(&e);
            return Ok(partial(
                applied,
                notes,
                Some(WorkerError::PostgresRefused(format!("{name}: {msg}"))),
            ));
        }
        let previous = s.setting_raw.clone().unwrap_or_default();
        let (shown, new_setting) = match &change {
            Change::Set(v) if s.vartype == "real" => {
                (v.clone(), json!(conv::to_unit(v, s.unit.as_deref())))
            }
            Change::Set(v) => (v.clone(), json!(v)),
            Change::Reset | Change::Default => ("None".to_string(), Value::Null),
        };
        notes.push(change::note_changed(name, &previous, &shown));
        applied.push(json!({
            "name": name,
            "setting": new_setting,
            "previous_setting": s.setting_raw,
            "restart": matches!(s.context.as_str(), "internal" | "postmaster"),
        }));
    }
    conn.client
        .batch_execute("SELECT pg_reload_conf()")
        .map_err(pg)?;
    notes.push(change::NOTE_RELOAD.to_string());
    Ok(partial(applied, notes, None))
}

/// An update's outcome: what was applied (and its notifications) even when a
/// later item failed.
/// `failure` is the error the request gets once the applied part is
/// recorded (its kind, mapped to HTTP by the http worker).
fn partial(applied: Vec<Value>, notes: Vec<String>, failure: Option<WorkerError>) -> Value {
    json!({
        "settings": applied,
        "notifications": notes,
        "failure": failure,
    })
}

fn file_setting(conn: &mut Conn, which: &str) -> Result<PathBuf, postgres::Error> {
    let path: String = conn
        .client
        .query_one("SELECT current_setting($1)", &[&which])?
        .get(0);
    Ok(PathBuf::from(path))
}

fn version_checked(v: &str) -> Result<(), WorkerError> {
    files::check_version(v).map_err(|valid_shape| {
        if valid_shape {
            WorkerError::Invalid("Bad version format, should be 'YYYY-MM-DDTHH:mm:ss'".into())
        } else {
            WorkerError::Invalid("Parameter 'version' is malformed.".into())
        }
    })
}

fn read_file_or_version(path: &Path, version: Option<&str>) -> Result<String, WorkerError> {
    match version {
        Some(v) => {
            version_checked(v)?;
            std::fs::read_to_string(files::version_path(path, v)).map_err(|_| {
                WorkerError::NotFound(format!("Version {v} of file {} does not exist.", path.display()),
                )
            })
        }
        None => std::fs::read_to_string(path)
            .map_err(|_| WorkerError::NotFound(format!("File {} does not exist.", path.display()))),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> WorkerError {
    WorkerError::Internal(format!("{}: {e}", path.display()))
}

/// Answers a pgconf call.
pub(super) fn handle(host: &ProbeHost, call: PgconfCall) -> Result<Value, WorkerError> {
    {
        let doc = |value: Value| Ok(value);
        match call {
            // Settings and status are read on a backend opened for the
            // purpose: a pooled one may have re-read the files lazily and
            // show values PostgreSQL does not run with (see Pool::with_new).
            PgconfCall::Settings { filter, category } => {
                let list =
                    host.with_new(|c| load(c, filter.as_deref(), category.as_deref(), None))?;
                doc(grouped(list))
            }
            PgconfCall::Categories => {
                let cats: Vec<String> = host.with(|c| {
                    Ok(c.client
                        .query("SELECT DISTINCT category FROM pg_settings ORDER BY category", &[])?
                        .iter()
                        .map(|r| r.get(0))
                        .collect())
                })?;
                doc(json!({ "categories": cats }))
            }
            PgconfCall::Status => {
                doc(status(host.with_new(|c| load(c, None, None, None))?))
            }
            PgconfCall::Update { settings, filter } => {
                host.with_once(|c| update(c, &settings, filter.as_deref()))?.and_then(doc)
            }
            PgconfCall::HbaRead { version, raw } => {
                let path = host.with(|c| file_setting(c, "hba_file"))?;
                let text = read_file_or_version(&path, version.as_deref())?;
                let mut v = json!({ "filepath": path.display().to_string(), "version": version });
                if raw {
                    v["content"] = json!(text);
                } else {
                    v["entries"] = json!(hba::parse(&text));
                }
                doc(v)
            }
            PgconfCall::HbaWrite { entries, content, new_version } => {
                let path = host.with(|c| file_setting(c, "hba_file"))?;
                let text = match (entries, content) {
                    (Some(e), _) => hba::write(&e).map_err(|e| WorkerError::Invalid(e.to_string()))?,
                    (None, Some(c)) => c,
                    (None, None) => return Err(WorkerError::Invalid("Parameter 'content' not sent.".into())),
                };
                let mut last = None;
                if new_version {
                    let v = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
                    let target = files::version_path(&path, &v);
                    files::copy_new(&path, &target).map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => WorkerError::Conflict(format!("Unable to create a new version, file {} already exists.", target.display()),
                        ),
                        _ => io_error(&target, e),
                    })?;
                    last = Some(v);
                }
                files::atomic_write(&path, text.as_bytes()).map_err(|e| io_error(&path, e))?;
                if last.is_none() {
                    last = files::versions(&path).ok().and_then(|v| v.into_iter().next());
                }
                // PostgreSQL 10+ can say what it thinks of the new file.
                let errors: Vec<Value> = host
                    .with(|c| {
                        if c.version_num < 100000 {
                            return Ok(vec![]);
                        }
                        Ok(c.client
                            .query("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL", &[])?
                            .iter()
                            .map(|r| json!({ "line_number": r.get::<_, Option<i32>>(0), "error": r.get::<_, String>(1) }))
                            .collect())
                    })
                    .unwrap_or_default();
                doc(json!({ "last_version": last, "filepath": path.display().to_string(), "errors": errors }))
            }
            PgconfCall::HbaVersions => {
                let path = host.with(|c| file_setting(c, "hba_file"))?;
                if !path.exists() {
                    return Err(WorkerError::NotFound(format!("File {} does not exist.", path.display())));
                }
                let versions = files::versions(&path).map_err(|_| {
                    let dir = path.parent().map(|d| d.display().to_string()).unwrap_or_default();
                    WorkerError::Failed(format!("Unable to list content from directory: {dir}"))
                })?;
                doc(json!({ "filepath": path.display().to_string(), "versions": versions }))
            }
            PgconfCall::HbaDelete { version } => {
                version_checked(&version)?;
                let path = host.with(|c| file_setting(c, "hba_file"))?;
                let target = files::version_path(&path, &version);
                std::fs::remove_file(&target)
                    .map_err(|_| WorkerError::NotFound(format!("Version {version} of file {} does not exist.", path.display())))?;
                doc(json!({ "version": version, "deleted": true }))
            }
            PgconfCall::HbaOptions => host.with(|c| {
                let dbs: Vec<String> = c
                    .client
                    .query("SELECT datname::text FROM pg_database WHERE NOT datistemplate ORDER BY 1", &[])?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let users: Vec<String> = c.client.query("SELECT usename::text FROM pg_user ORDER BY 1", &[])?.iter().map(|r| r.get(0)).collect();
                let groups: Vec<String> = c
                    .client
                    .query("SELECT '+' || r.rolname FROM pg_roles r WHERE EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid) ORDER BY 1", &[])?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let mut databases = vec!["all".to_string(), "sameuser".into(), "samerole".into(), "replication".into()];
                databases.extend(dbs);
                let mut u = vec!["all".to_string()];
                u.extend(users);
                u.extend(groups);
                Ok(json!({
                    "connections": ["local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"],
                    "databases": databases,
                    "users": u,
                    "auth_methods": ["cert", "gss", "ident", "ldap", "md5", "pam", "password", "peer", "radius", "reject", "scram-sha-256", "sspi", "trust"],
                }))
            }),
            PgconfCall::V9(call) => super::probe9::handle(host, call),
            PgconfCall::IdentRead => {
                let path = host.with(|c| file_setting(c, "ident_file"))?;
                let text = read_file_or_version(&path, None)?;
                doc(json!({ "filepath": path.display().to_string(), "content": text }))
            }
            PgconfCall::IdentWrite { content } => {
                let path = host.with(|c| file_setting(c, "ident_file"))?;
                if let Ok(current) = std::fs::read(&path) {
                    let previous = path.with_file_name(format!(
                        "{}.previous",
                        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                    ));
                    files::atomic_write(&previous, &current).map_err(|e| io_error(&previous, e))?;
                }
                files::atomic_write(&path, content.as_bytes()).map_err(|e| io_error(&path, e))?;
                doc(json!({ "update": true }))
            }
        }
    }
}
