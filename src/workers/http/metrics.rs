//! `GET /metrics`: Prometheus text exposition of the last monitoring
//! collection and of the agent itself, so a fleet of agents plugs into an
//! existing Prometheus. Built from what is already stored: a scrape costs a
//! few SQLite reads, no PostgreSQL query.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::error::ApiError;
use super::routes::{Call, Handled, Reply};
use super::AppState;

/// Escapes a label value (backslash, double quote, line feed).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Accumulates metric families in exposition order.
#[derive(Default)]
struct Out {
    families: BTreeMap<String, (String, String, Vec<String>)>,
}

impl Out {
    fn add(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        if !value.is_finite() {
            return;
        }
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let sample = if l.is_empty() {
            format!("{name} {value}")
        } else {
            format!("{name}{{{}}} {value}", l.join(","))
        };
        self.families
            .entry(name.to_string())
            .or_insert_with(|| (kind.to_string(), help.to_string(), vec![]))
            .2
            .push(sample);
    }

    fn render(self) -> String {
        let mut s = String::new();
        for (name, (kind, help, samples)) in self.families {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {kind}");
            for x in samples {
                let _ = writeln!(s, "{x}");
            }
        }
        s
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn rows<'a>(data: &'a Value, probe: &str) -> impl Iterator<Item = &'a Value> {
    data[probe].as_array().into_iter().flatten()
}

fn from_payload(out: &mut Out, p: &Value) {
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

/// Renders the exposition.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let (payload, backlog, dropped, duration) = state
        .db
        .read(|c| {
            use rusqlite::OptionalExtension;
            let p: Option<String> = c
                .query_row(
                    "SELECT payload FROM monitoring_payloads ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let d = crate::store::meta::get(c, "monitoring_last_duration")?;
            Ok((
                p,
                crate::plugins::monitoring::store::backlog(c)?,
                crate::plugins::monitoring::store::dropped(c)?,
                d,
            ))
        })
        .await?;
    let mut out = Out::default();
    if let Some(p) = payload.and_then(|p| serde_json::from_str::<Value>(&p).ok()) {
        from_payload(&mut out, &p);
    }
    out.add(
        "temboard_agent_info",
        "gauge",
        "Agent version.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
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
    for w in state.ctx.supervision().workers {
        out.add(
            "temboard_agent_worker_restarts_total",
            "counter",
            "Worker restarts after a failure.",
            &[("role", w.role.as_str())],
            w.restarts as f64,
        );
    }
    let counts = state.requests.lock().map(|m| m.clone()).unwrap_or_default();
    for ((route, status), n) in counts {
        out.add(
            "temboard_agent_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
            &[("route", &route), ("status", &status.to_string())],
            n as f64,
        );
    }
    Ok(out.render())
}

/// `GET /metrics` route.
pub fn route(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { render(c.state).await.map(Reply::Text) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut o = Out::default();
        o.add("x_total", "counter", "An x.", &[("a", "q\"u\\o\nte")], 3.0);
        o.add("x_total", "counter", "An x.", &[("a", "b")], 4.5);
        o.add("y", "gauge", "A y.", &[], f64::NAN);
        let text = o.render();
        assert_eq!(text, "# HELP x_total An x.\n# TYPE x_total counter\nx_total{a=\"q\\\"u\\\\o\\nte\"} 3\nx_total{a=\"b\"} 4.5\n");
    }
}
