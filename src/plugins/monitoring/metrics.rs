//! The monitoring plugin's `/metrics` families: the last collected payload
//! and the collector queue, read from what is stored (a scrape runs no
//! PostgreSQL query).

use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use crate::workers::http::metrics::Exposition;

/// Adds the families (the plugin's `metrics` hook).
pub fn add(c: &Connection, out: &mut Exposition) -> rusqlite::Result<()> {
    let payload: Option<String> = c
        .query_row(
            "SELECT payload FROM monitoring_payloads ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let duration = crate::store::meta::get(c, "monitoring_last_duration")?;
    let backlog = super::store::backlog(c)?;
    let dropped = super::store::dropped(c)?;
    if let Some(p) = payload.and_then(|p| serde_json::from_str::<Value>(&p).ok()) {
        from_payload(out, &p);
    }
    out.add(
        "temboard_agent_monitoring_queue_length",
        "gauge",
        "Payloads waiting for the collector.",
        &[],
        backlog as f64,
    );
    out.add(
        "temboard_agent_monitoring_dropped_total",
        "counter",
        "Payloads dropped by the queue bounds.",
        &[],
        dropped as f64,
    );
    if let Some(d) = duration {
        out.add(
            "temboard_agent_monitoring_collection_seconds",
            "gauge",
            "Duration of the last monitoring collection.",
            &[],
            d,
        );
    }
    Ok(())
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn rows<'a>(data: &'a Value, probe: &str) -> impl Iterator<Item = &'a Value> {
    data[probe].as_array().into_iter().flatten()
}

fn from_payload(out: &mut Exposition, p: &Value) {
    let data = &p["data"];
    for r in rows(data, "sessions") {
        let db = r["dbname"].as_str().unwrap_or("");
        for st in [
            "active",
            "waiting",
            "idle",
            "idle_in_xact",
            "idle_in_xact_aborted",
            "fastpath",
            "disabled",
            "no_priv",
        ] {
            if let Some(v) = num(&r[st]) {
                out.add(
                    "temboard_sessions",
                    "gauge",
                    "Backends per database and state.",
                    &[("dbname", db), ("state", st)],
                    v,
                );
            }
        }
    }
    for (probe, cols) in [
        ("xacts", &["n_commit", "n_rollback"][..]),
        ("blocks", &["blks_read", "blks_hit", "hitmiss_ratio"][..]),
        ("db_size", &["size"][..]),
    ] {
        for r in rows(data, probe) {
            let db = r["dbname"].as_str().unwrap_or("");
            for c in cols {
                if let Some(v) = num(&r[*c]) {
                    let name = match (probe, *c) {
                        ("db_size", _) => "temboard_database_size_bytes".to_string(),
                        _ => format!("temboard_{probe}_{c}"),
                    };
                    out.add(&name, "gauge", &format!("{probe}.{c} of the last collection (deltas per interval for counters)."), &[("dbname", db)], v);
                }
            }
        }
    }
    for r in rows(data, "tblspc_size") {
        if let Some(v) = num(&r["size"]) {
            out.add(
                "temboard_tablespace_size_bytes",
                "gauge",
                "Tablespace size.",
                &[("spcname", r["spcname"].as_str().unwrap_or(""))],
                v,
            );
        }
    }
    for (probe, labels_from) in [
        ("bgwriter", None),
        ("wal_files", None),
        ("process", None),
        ("memory", None),
        ("loadavg", None),
        ("cpu", Some("cpu")),
    ] {
        for r in rows(data, probe) {
            let Some(m) = r.as_object() else { continue };
            let label = labels_from.and_then(|k| r[k].as_str()).unwrap_or("");
            for (k, v) in m {
                if matches!(
                    k.as_str(),
                    "datetime"
                        | "port"
                        | "measure_interval"
                        | "cpu"
                        | "current_location"
                        | "stats_reset"
                ) {
                    continue;
                }
                if let Some(x) = num(v) {
                    let name = format!("temboard_{probe}_{k}");
                    let labels: Vec<(&str, &str)> = if label.is_empty() {
                        vec![]
                    } else {
                        vec![("cpu", label)]
                    };
                    out.add(
                        &name,
                        "gauge",
                        &format!("{probe}.{k} of the last collection."),
                        &labels,
                        x,
                    );
                }
            }
        }
    }
    for r in rows(data, "filesystems_size") {
        let mp = r["mount_point"].as_str().unwrap_or("");
        for c in ["total", "used"] {
            if let Some(v) = num(&r[c]) {
                out.add(
                    &format!("temboard_filesystem_{c}_bytes"),
                    "gauge",
                    &format!("Filesystem {c} bytes."),
                    &[("mount_point", mp)],
                    v,
                );
            }
        }
    }
    for r in rows(data, "replication") {
        let role = r["role"].as_str().unwrap_or("");
        let app = r["application_name"].as_str().unwrap_or("");
        for (c, name) in [
            ("replay_lag_bytes", "temboard_replication_lag_bytes"),
            ("replay_lag", "temboard_replication_lag_seconds"),
        ] {
            if let Some(v) = num(&r[c]) {
                out.add(
                    name,
                    "gauge",
                    "Replication lag.",
                    &[("role", role), ("application_name", app)],
                    v,
                );
            }
        }
    }
}

