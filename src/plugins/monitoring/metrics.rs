//! The monitoring plugin's `/metrics` families: the newest collection and
//! the collector queue, read from what is stored (a scrape runs no
//! PostgreSQL query).

use rusqlite::Connection;
use serde_json::Value;

use crate::api::Exposition;

/// Adds the families (the plugin's `metrics` hook).
pub fn add(c: &Connection, out: &mut Exposition) -> rusqlite::Result<()> {
    let newest = super::store::newest9(c)?;
    let duration = crate::store::meta::get(c, "monitoring_last_duration")?;
    let backlog = super::store::backlog(c)?;
    let dropped = super::store::dropped(c)?;
    if let Some((doc, raw)) = newest {
        let doc: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        let raw: Value = raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or(Value::Null);
        from_document(out, &doc, &raw);
    }
    out.add(
        "temboard_agent_monitoring_queue_length",
        "gauge",
        "Monitoring payloads waiting for the 2.x collector.",
        &[],
        backlog as f64,
    );
    out.add(
        "temboard_agent_monitoring_dropped_total",
        "counter",
        "Monitoring payloads dropped by the queue bounds.",
        &[],
        dropped as f64,
    );
    if let Some(d) = duration {
        out.add(
            "temboard_agent_monitoring_collection_duration_seconds",
            "gauge",
            "How long the last monitoring collection took.",
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

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The families of the newest collection, named as Debian's
/// `prometheus-postgres-exporter` and `prometheus-node-exporter` name
/// theirs, under `temboard_`: counters (`_total`) from the raw cumulative
/// values stored with the document, base units (`_bytes`, `_seconds`, ratios
/// in 0..1), `datname`/`state`/`mode` labels. docs/metrics.md lists them.
fn from_document(out: &mut Exposition, doc: &Value, raw: &Value) {
    let data = &doc["data"];
    let up = doc["instances"][0]["available"] == Value::Bool(true);
    out.add(
        "temboard_postgresql_up",
        "gauge",
        "Whether PostgreSQL answered the last monitoring collection (1) or not (0).",
        &[],
        if up { 1.0 } else { 0.0 },
    );
    if let Some(m) = num(&doc["instances"][0]["max_connections"]) {
        out.add("temboard_pg_settings_max_connections", "gauge", "The max_connections setting.", &[], m);
    }
    for r in rows(data, "sessions") {
        for (col, state) in [
            ("active", "active"),
            ("waiting", "waiting"),
            ("idle", "idle"),
            ("idle_in_xact", "idle in transaction"),
            ("idle_in_xact_aborted", "idle in transaction (aborted)"),
            ("fastpath", "fastpath function call"),
            ("disabled", "disabled"),
        ] {
            if let Some(v) = num(&r[col]) {
                out.add(
                    "temboard_pg_stat_activity_backends",
                    "gauge",
                    "Backends by database and state (waiting: active and waiting for a lock).",
                    &[("datname", text(&r["dbname"])), ("state", state)],
                    v,
                );
            }
        }
    }
    for r in rows(data, "locks") {
        let Some(m) = r.as_object() else { continue };
        for (k, v) in m {
            let (granted, mode) = match k.strip_prefix("waiting_") {
                Some(mode) => ("false", mode),
                None => ("true", k.as_str()),
            };
            if matches!(mode, "dbname" | "datetime" | "port") {
                continue;
            }
            if let Some(v) = num(v) {
                out.add(
                    "temboard_pg_locks",
                    "gauge",
                    "Locks by database, mode and whether granted.",
                    &[("datname", text(&r["dbname"])), ("mode", mode), ("granted", granted)],
                    v,
                );
            }
        }
    }
    for (probe, cols) in [
        (
            "xacts",
            &[
                ("n_commit", "temboard_pg_stat_database_xact_commit_total", "Transactions committed."),
                ("n_rollback", "temboard_pg_stat_database_xact_rollback_total", "Transactions rolled back."),
            ][..],
        ),
        (
            "blocks",
            &[
                ("blks_read", "temboard_pg_stat_database_blks_read_total", "Blocks read from disk (or the OS cache)."),
                ("blks_hit", "temboard_pg_stat_database_blks_hit_total", "Blocks found in shared buffers."),
            ][..],
        ),
        (
            "temp_files_size_delta",
            &[("size", "temboard_pg_stat_database_temp_bytes_total", "Bytes written to temporary files.")][..],
        ),
    ] {
        for r in rows(raw, probe) {
            for (col, name, help) in cols {
                if let Some(v) = num(&r[*col]) {
                    out.add(name, "counter", help, &[("datname", text(&r["dbname"]))], v);
                }
            }
        }
    }
    for r in rows(data, "db_size") {
        if let Some(v) = num(&r["size"]) {
            out.add("temboard_pg_database_size_bytes", "gauge", "Database size.", &[("datname", text(&r["dbname"]))], v);
        }
    }
    for r in rows(data, "tblspc_size") {
        if let Some(v) = num(&r["size"]) {
            out.add("temboard_pg_tablespace_size_bytes", "gauge", "Tablespace size.", &[("spcname", text(&r["spcname"]))], v);
        }
    }
    for r in rows(raw, "bgwriter") {
        for (col, name, help, scale) in [
            ("checkpoints_timed", "temboard_pg_stat_bgwriter_checkpoints_timed_total", "Scheduled checkpoints.", 1.0),
            ("checkpoints_req", "temboard_pg_stat_bgwriter_checkpoints_req_total", "Requested checkpoints.", 1.0),
            ("checkpoint_write_time", "temboard_pg_stat_bgwriter_checkpoint_write_time_seconds_total", "Time spent writing checkpoint files.", 0.001),
            ("checkpoint_sync_time", "temboard_pg_stat_bgwriter_checkpoint_sync_time_seconds_total", "Time spent syncing checkpoint files.", 0.001),
            ("buffers_checkpoint", "temboard_pg_stat_bgwriter_buffers_checkpoint_total", "Buffers written by checkpoints.", 1.0),
            ("buffers_clean", "temboard_pg_stat_bgwriter_buffers_clean_total", "Buffers written by the background writer.", 1.0),
            ("maxwritten_clean", "temboard_pg_stat_bgwriter_maxwritten_clean_total", "Background writer stops for writing too many buffers.", 1.0),
            ("buffers_backend", "temboard_pg_stat_bgwriter_buffers_backend_total", "Buffers written by backends.", 1.0),
            ("buffers_backend_fsync", "temboard_pg_stat_bgwriter_buffers_backend_fsync_total", "fsync calls made by backends.", 1.0),
            ("buffers_alloc", "temboard_pg_stat_bgwriter_buffers_alloc_total", "Buffers allocated.", 1.0),
        ] {
            if let Some(v) = num(&r[col]) {
                out.add(name, "counter", help, &[], v * scale);
            }
        }
    }
    for r in rows(raw, "wal_files") {
        if let Some(v) = num(&r["total"]) {
            out.add("temboard_pg_wal_segments", "gauge", "WAL segment files in pg_wal.", &[], v);
        }
        if let Some(v) = num(&r["total_size"]) {
            out.add("temboard_pg_wal_size_bytes", "gauge", "Size of the WAL segment files in pg_wal.", &[], v);
        }
        if let Some(v) = num(&r["archive_ready"]) {
            out.add("temboard_pg_wal_archive_ready_segments", "gauge", "WAL segments waiting for archiving.", &[], v);
        }
        if let Some(v) = num(&r["written_size"]) {
            out.add("temboard_pg_wal_written_bytes_total", "counter", "WAL written since the cluster was created (its position).", &[], v);
        }
    }
    for (probe, name) in [("heap_bloat", "temboard_pg_heap_bloat_ratio"), ("btree_bloat", "temboard_pg_btree_bloat_ratio")] {
        for r in rows(data, probe) {
            if let Some(v) = num(&r["ratio"]) {
                out.add(
                    name,
                    "gauge",
                    "Estimated share of the database's pages beyond what their rows need (0 to 1; statistics-based).",
                    &[("datname", text(&r["dbname"]))],
                    v / 100.0,
                );
            }
        }
    }
    for r in rows(data, "replication_lag") {
        if let Some(v) = num(&r["lag"]) {
            out.add("temboard_pg_replication_lag_bytes", "gauge", "On a standby: WAL received from the primary and not replayed yet.", &[], v);
        }
    }
    for r in rows(data, "replication_connection") {
        if let Some(v) = num(&r["connected"]) {
            out.add("temboard_pg_replication_connected", "gauge", "On a standby: whether the WAL receiver streams from its upstream.", &[("upstream", text(&r["upstream"]))], v);
        }
    }
    // The host.
    for r in rows(raw, "cpu") {
        for (col, mode) in [("time_user", "user"), ("time_system", "system"), ("time_idle", "idle"), ("time_iowait", "iowait"), ("time_steal", "steal")] {
            if let Some(v) = num(&r[col]) {
                out.add("temboard_node_cpu_seconds_total", "counter", "CPU time of the host, all CPUs, by mode.", &[("mode", mode)], v / 1000.0);
            }
        }
    }
    for r in rows(raw, "process") {
        if let Some(v) = num(&r["context_switches"]) {
            out.add("temboard_node_context_switches_total", "counter", "Context switches of the host.", &[], v);
        }
        if let Some(v) = num(&r["forks"]) {
            out.add("temboard_node_forks_total", "counter", "Processes created on the host.", &[], v);
        }
        for (col, name, help) in [
            ("procs_running", "temboard_node_procs_running", "Processes running."),
            ("procs_blocked", "temboard_node_procs_blocked", "Processes blocked on I/O."),
            ("procs_total", "temboard_node_procs", "Processes."),
        ] {
            if let Some(v) = num(&r[col]) {
                out.add(name, "gauge", help, &[], v);
            }
        }
    }
    for r in rows(data, "memory") {
        for (col, name) in [
            ("mem_total", "temboard_node_memory_size_bytes"),
            ("mem_used", "temboard_node_memory_used_bytes"),
            ("mem_free", "temboard_node_memory_free_bytes"),
            ("mem_buffers", "temboard_node_memory_buffers_bytes"),
            ("mem_cached", "temboard_node_memory_cached_bytes"),
            ("swap_total", "temboard_node_swap_size_bytes"),
            ("swap_used", "temboard_node_swap_used_bytes"),
        ] {
            if let Some(v) = num(&r[col]) {
                out.add(name, "gauge", "Memory of the host (/proc/meminfo).", &[], v);
            }
        }
    }
    for r in rows(data, "loadavg") {
        for k in ["load1", "load5", "load15"] {
            if let Some(v) = num(&r[k]) {
                out.add(&format!("temboard_node_{k}"), "gauge", "Load average of the host.", &[], v);
            }
        }
    }
    for r in rows(data, "filesystems_size") {
        let labels = [("mountpoint", text(&r["mount_point"])), ("device", text(&r["device"]))];
        if let Some(v) = num(&r["total"]) {
            out.add("temboard_node_filesystem_size_bytes", "gauge", "File system size.", &labels, v);
        }
        if let Some(v) = num(&r["used"]) {
            out.add("temboard_node_filesystem_used_bytes", "gauge", "File system space used.", &labels, v);
        }
    }
}
