//! temBoard 9.x facts about PostgreSQL: the `postgres` section of the
//! discover document (facts 9.x 3.1) and the PostgreSQL part of `GET
//! /status` (3.3). Read by the probe worker, which alone connects.

use serde_json::{json, Map, Value};

/// Settings every discover document names (when the server has them).
const NAMED: &[&str] = &[
    "config_file",
    "cluster_name",
    "data_directory",
    "external_pid_file",
    "hba_file",
    "ident_file",
    "lc_collate",
    "lc_ctype",
    "listen_addresses",
    "server_encoding",
    "syslog_ident",
    "unix_socket_directories",
    "max_connections",
    "port",
];

/// A setting typed as 9.x does: integers scaled to bytes for `8kB` and
/// `MB` units, booleans as JSON booleans, everything else as text.
fn typed(setting: &str, vartype: &str, unit: Option<&str>) -> Value {
    match vartype {
        "integer" => match setting.parse::<i64>() {
            Ok(n) => json!(match unit {
                Some("8kB") => n * 8192,
                Some("MB") => n * 1_048_576,
                Some("kB") => n * 1024,
                _ => n,
            }),
            Err(_) => json!(setting),
        },
        "bool" => json!(setting == "on"),
        _ => json!(setting),
    }
}

/// The `postgres` section of the discover document.
pub fn postgres(client: &mut postgres::Client) -> Result<Value, postgres::Error> {
    let mut out = Map::new();
    let rows = client.query(
        "SELECT name, setting, vartype, unit, context FROM pg_settings \
         WHERE context = 'internal' OR name = ANY($1) ORDER BY name",
        &[&NAMED],
    )?;
    for r in rows {
        let name: String = r.get(0);
        let setting: Option<String> = r.get(1);
        let vartype: String = r.get(2);
        let unit: Option<String> = r.get(3);
        let context: String = r.get(4);
        let setting = setting.unwrap_or_default();
        let v = if context == "internal" || matches!(name.as_str(), "max_connections" | "port") {
            typed(&setting, &vartype, unit.as_deref())
        } else {
            json!(setting)
        };
        out.insert(name, v);
    }
    let row = client.query_one(
        "SELECT version(), current_setting('server_version'), \
         current_setting('server_version_num')::int, \
         to_json(pg_postmaster_start_time()) #>> '{}'",
        &[],
    )?;
    let version: String = row.get(0);
    let server_version: String = row.get(1);
    let first = version.split(' ').next().unwrap_or("PostgreSQL");
    out.insert("version".into(), json!(version));
    out.insert(
        "version_summary".into(),
        json!(format!("{first} {server_version}")),
    );
    out.insert("version_num".into(), json!(row.get::<_, i32>(2)));
    out.insert("start_time".into(), json!(row.get::<_, String>(3)));
    out.insert("pid".into(), json!(postmaster_pid(&out)));
    Ok(Value::Object(out))
}

/// First token of `external_pid_file` when set, else of
/// `<data_directory>/postmaster.pid` (read as the cluster owner).
fn postmaster_pid(settings: &Map<String, Value>) -> Option<i64> {
    let external = settings
        .get("external_pid_file")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let path = match external {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            std::path::Path::new(settings.get("data_directory")?.as_str()?).join("postmaster.pid")
        }
    };
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `host=`/`port=` pairs of a `primary_conninfo` (never a password).
fn primary_pairs(conninfo: &str) -> Vec<(String, String)> {
    conninfo
        .split(' ')
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| matches!(*k, "host" | "port"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The PostgreSQL facts of `GET /status`: standby or not, pending restart,
/// the primary's host and port.
pub fn status(client: &mut postgres::Client) -> Result<Value, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_is_in_recovery(), \
         EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart), \
         (SELECT setting FROM pg_settings WHERE name = 'primary_conninfo')",
        &[],
    )?;
    let conninfo: Option<String> = row.get(2);
    let pairs = primary_pairs(conninfo.as_deref().unwrap_or(""));
    let primary: Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(json!({
        "is_standby": row.get::<_, bool>(0),
        "pending_restart": row.get::<_, bool>(1),
        "primary_conninfo": joined.join(" "),
        "primary": primary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_and_primary_pairs() {
        assert_eq!(typed("16", "integer", Some("8kB")), json!(131072));
        assert_eq!(typed("142", "integer", Some("MB")), json!(148897792));
        assert_eq!(typed("16777216", "integer", Some("B")), json!(16777216));
        assert_eq!(typed("on", "bool", None), json!(true));
        assert_eq!(typed("0700", "integer", None), json!(700));
        assert_eq!(typed("C", "string", None), json!("C"));
        assert_eq!(
            primary_pairs("user=rep password=s3cret host=10.0.0.1 port=5432 sslmode=require"),
            vec![
                ("host".to_string(), "10.0.0.1".to_string()),
                ("port".to_string(), "5432".to_string())
            ]
        );
    }
}
