//! 9.x `GET /monitoring/metrics` (facts 9.x 7.4): the newest stored
//! document in the Prometheus text format the temBoard UI proxies to
//! Prometheus, with the 9.x family names. Counters come from the raw
//! measures stored beside the document (the document itself has only the
//! deltas). A null value is left out (9.0.1 answered 500).
//!
//! This is the 9.x contract's own family set; the agent's `/metrics` (2.x
//! side) is documented in docs/metrics.md.

use serde_json::Value;

use crate::api::Exposition;

/// The 9.x exposition: the agent's [`Exposition`], labels sorted, a
/// missing (null) value left out.
#[derive(Default)]
struct Families(Exposition);

impl Families {
    fn add(
        &mut self,
        name: &str,
        help: &'static str,
        kind: Option<&'static str>,
        mut labels: Vec<(&'static str, String)>,
        value: Option<f64>,
    ) {
        let Some(v) = value else { return };
        labels.sort();
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.0.add(name, kind.unwrap_or(""), help, &refs, v);
    }

    fn render(self) -> String {
        self.0.render_9x()
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn rows<'a>(v: &'a Value, probe: &str) -> &'a [Value] {
    v[probe].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The text of `document` (the newest stored) with `raw` (its raw
/// counters: `{probe: [rows as measured]}`).
pub fn render(document: &Value, raw: &Value) -> String {
    let mut f = Families::default();
    let data = &document["data"];
    let host = &document["hostinfo"];
    let inst = &document["instances"][0];
    const GAUGE: Option<&str> = Some("gauge");
    const COUNTER: Option<&str> = Some("counter");

    f.add("node_os_info", "Operating system.", GAUGE, vec![("pretty_name", text(&host["os_flavor"]))], Some(1.0));
    let fqdn = text(&host["hostname"]);
    let (node, domain) = match fqdn.split_once('.') {
        Some((n, d)) => (n.to_string(), d.to_string()),
        None => (fqdn.clone(), "(none)".to_string()),
    };
    f.add(
        "node_uname_info",
        "Kernel and host names.",
        GAUGE,
        vec![
            ("domainname", domain),
            ("machine", text(&host["cpu_arch"])),
            ("nodename", node),
            ("release", text(&host["os_version"])),
            ("sysname", text(&host["os"])),
        ],
        Some(1.0),
    );
    let up = inst["available"] == Value::Bool(true);
    f.add("pg_up", "Whether PostgreSQL answered the last collection.", GAUGE, vec![], Some(if up { 1.0 } else { 0.0 }));
    if up {
        let start = inst["start_time"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp_micros() as f64 / 1e6);
        f.add("pg_postmaster_start_time_seconds", "PostgreSQL start time, epoch seconds.", GAUGE, vec![], start);
        f.add("pg_settings_max_connections", "max_connections.", GAUGE, vec![], num(&inst["max_connections"]));
        f.add(
            "pg_static",
            "PostgreSQL and agent versions.",
            None,
            vec![
                ("cluster_name", text(&inst["local_name"])),
                ("short_version", text(&inst["version"])),
                ("temboard_agent_version", text(&document["version"])),
            ],
            Some(1.0),
        );
    }
    for r in rows(data, "loadavg") {
        for k in ["load1", "load5", "load15"] {
            f.add(&format!("node_{k}"), "Load average.", GAUGE, vec![], num(&r[k]));
        }
    }
    let cpus = num(&host["cpu_count"]).unwrap_or(1.0).max(1.0);
    for r in rows(raw, "cpu") {
        for (col, mode) in [
            ("time_idle", "idle"),
            ("time_iowait", "iowait"),
            ("time_steal", "steal"),
            ("time_system", "system"),
            ("time_user", "user"),
        ] {
            for cpu in 0..cpus as usize {
                f.add(
                    "node_cpu_seconds_total",
                    "CPU time by mode (the host's total shared evenly, as 9.x does).",
                    COUNTER,
                    vec![("cpu", cpu.to_string()), ("mode", mode.to_string())],
                    num(&r[col]).map(|ms| ms / 1000.0 / cpus),
                );
            }
        }
    }
    for r in rows(data, "memory") {
        for (col, name) in [
            ("mem_buffers", "Buffers"),
            ("mem_cached", "Cached"),
            ("mem_free", "MemFree"),
            ("mem_total", "MemTotal"),
        ] {
            f.add(&format!("node_memory_{name}_bytes"), "Memory, bytes.", GAUGE, vec![], num(&r[col]));
        }
        let swap_total = num(&r["swap_total"]);
        f.add("node_memory_SwapTotal_bytes", "Memory, bytes.", GAUGE, vec![], swap_total);
        f.add(
            "node_memory_SwapFree_bytes",
            "Memory, bytes.",
            GAUGE,
            vec![],
            swap_total.zip(num(&r["swap_used"])).map(|(t, u)| t - u),
        );
    }
    for r in rows(raw, "process") {
        f.add("node_context_switches_total", "Context switches.", COUNTER, vec![], num(&r["context_switches"]));
        f.add("node_fork_total", "Processes created.", COUNTER, vec![], num(&r["forks"]));
        f.add("node_procs_running", "Processes running.", GAUGE, vec![], num(&r["procs_running"]));
        f.add("node_procs_blocked", "Processes blocked.", GAUGE, vec![], num(&r["procs_blocked"]));
        f.add("xnode_procs_total", "Processes.", GAUGE, vec![], num(&r["procs_total"]));
    }
    for r in rows(data, "filesystems_size") {
        let labels = || vec![("device", text(&r["device"])), ("mountpoint", text(&r["mount_point"]))];
        let total = num(&r["total"]);
        f.add("node_filesystem_size_bytes", "File system size, bytes.", GAUGE, labels(), total);
        f.add(
            "node_filesystem_free_bytes",
            "File system free space, bytes.",
            GAUGE,
            labels(),
            total.zip(num(&r["used"])).map(|(t, u)| t - u),
        );
    }
    for r in rows(data, "locks") {
        if let Some(m) = r.as_object() {
            for (k, v) in m {
                if k == "dbname" || k == "datetime" || k == "port" {
                    continue;
                }
                f.add(
                    "pg_locks_count",
                    "Locks by database and mode.",
                    GAUGE,
                    vec![("datname", text(&r["dbname"])), ("mode", k.replace('_', ""))],
                    num(v),
                );
            }
        }
    }
    for r in rows(data, "sessions") {
        for (col, state) in [
            ("active", "active"),
            ("disabled", "disabled"),
            ("fastpath", "fastpath function call"),
            ("idle", "idle"),
            ("idle_in_xact", "idle in transaction"),
            ("idle_in_xact_aborted", "idle in transaction (aborted)"),
        ] {
            f.add(
                "pg_stat_activity_count",
                "Sessions by database and state.",
                GAUGE,
                vec![("datname", text(&r["dbname"])), ("state", state.to_string())],
                num(&r[col]),
            );
        }
    }
    let bgwriter = super::deltas::spec("bgwriter").map(|(cols, _)| cols).unwrap_or(&[]);
    for r in rows(raw, "bgwriter") {
        for col in bgwriter {
            f.add(&format!("pg_stat_bgwriter_{col}"), "pg_stat_bgwriter counter.", COUNTER, vec![], num(&r[*col]));
        }
    }
    for r in rows(data, "bgwriter") {
        let reset = r["stats_reset"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z").ok())
            .map(|d| d.timestamp() as f64);
        f.add("pg_stat_bgwriter_stats_reset", "pg_stat_bgwriter reset time, epoch seconds.", GAUGE, vec![], reset);
    }
    for (probe, cols) in [
        ("xacts", &[("n_commit", "xact_commit"), ("n_rollback", "xact_rollback")][..]),
        ("blocks", &[("blks_hit", "blks_hit"), ("blks_read", "blks_read")][..]),
        ("temp_files_size_delta", &[("size", "temp_bytes")][..]),
    ] {
        for r in rows(raw, probe) {
            for (col, name) in cols {
                f.add(
                    &format!("pg_stat_database_{name}"),
                    "pg_stat_database counter.",
                    COUNTER,
                    vec![("datname", text(&r["dbname"]))],
                    num(&r[*col]),
                );
            }
        }
    }
    for r in rows(data, "db_size") {
        f.add("xpg_database_size_bytes", "Database size, bytes.", GAUGE, vec![("datname", text(&r["dbname"]))], num(&r["size"]));
    }
    for r in rows(data, "tblspc_size") {
        f.add("xpg_tablespace_size_bytes", "Tablespace size, bytes.", GAUGE, vec![("spcname", text(&r["spcname"]))], num(&r["size"]));
    }
    for r in rows(raw, "wal_files") {
        f.add("xpg_wal_files_total", "WAL files.", GAUGE, vec![], num(&r["total"]));
        f.add("xpg_wal_files_bytes_total", "WAL files size, bytes.", GAUGE, vec![], num(&r["total_size"]));
        f.add("xpg_wal_files_archive_ready_total", "WAL files ready to archive.", GAUGE, vec![], num(&r["archive_ready"]));
        f.add(
            "xpg_wal_files_written_size_bytes",
            "WAL written, bytes.",
            COUNTER,
            vec![("current_wal_lsn", text(&r["current_location"]))],
            num(&r["written_size"]),
        );
    }
    for (probe, name) in [("heap_bloat", "xpg_heap_bloat_ratio"), ("btree_bloat", "xpg_btree_bloat_ratio")] {
        for r in rows(data, probe) {
            f.add(name, "Estimated bloat, percent.", GAUGE, vec![("datname", text(&r["dbname"]))], num(&r["ratio"]));
        }
    }
    for r in rows(data, "replication_lag") {
        f.add("xpg_replication_lag_bytes", "Replay lag behind the primary, bytes.", GAUGE, vec![], num(&r["lag"]));
    }
    for r in rows(data, "replication_connection") {
        f.add("xpg_replication_up", "Whether the WAL receiver streams.", GAUGE, vec![("upstream", text(&r["upstream"]))], num(&r["connected"]));
    }
    f.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn families_sorted_nulls_skipped_labels_escaped() {
        let doc = json!({
            "version": "9.0.1+rs",
            "hostinfo": {"hostname": "db1.example.org", "os": "Linux", "os_version": "6", "cpu_arch": "x86_64", "os_flavor": "Debian \"12\"", "cpu_count": 2},
            "instances": [{"available": true, "max_connections": 100, "start_time": "2026-11-29T20:10:23.349107+00:00", "local_name": "main", "version": "PostgreSQL 15"}],
            "data": {"heap_bloat": [{"dbname": "a", "ratio": null}, {"dbname": "b", "ratio": 12.5}],
                     "loadavg": [{"load1": "0.50", "load5": "0.25", "load15": "0.10"}]}
        });
        let raw = json!({"cpu": [{"time_user": 4000, "time_system": 2000, "time_idle": 10000, "time_iowait": 0, "time_steal": 0}]});
        let text = render(&doc, &raw);
        assert!(text.ends_with("\n# EOF\n"));
        assert!(text.contains("xpg_heap_bloat_ratio{datname=\"b\"} 12.5\n"));
        assert!(!text.contains("datname=\"a\""), "null skipped");
        assert!(text.contains("node_load1 0.5\n"));
        assert!(text.contains("node_cpu_seconds_total{cpu=\"1\",mode=\"user\"} 2\n"));
        assert!(text.contains("pretty_name=\"Debian \\\"12\\\"\""));
        assert!(text.contains("nodename=\"db1\""));
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}
