//! The `/metrics` families of the risks plugin beyond its findings: what
//! postgres_exporter has by default and the monitoring collection does not
//! (docs/metrics.md, family by family), read with the checks so a scrape
//! still runs no query. Names under `temboard_`, base units (bytes,
//! seconds), cumulative counters `_total`; version-gated views on the
//! majors that have them (`pg_stat_wal` 14+, `pg_stat_io` 16+ with 18's
//! byte columns, `pg_stat_checkpointer` 17+). Per-table families come from
//! the per-database scans, for the `[risks] tables_per_database` largest
//! tables of each database only, so a 10,000-table database cannot explode
//! a scrape.

use postgres::Transaction as Tx;

pub use super::calls::Sample;
use super::calls::Instance;

/// Family, type, help: every fixed family (the `temboard_pg_settings_*`
/// gauges are named after the settings).
pub const FAMILIES: &[(&str, &str, &str)] = &[
    ("temboard_pg_postmaster_start_time_seconds", "gauge", "When PostgreSQL started, Unix time."),
    ("temboard_pg_stat_database_numbackends", "gauge", "Backends connected to the database."),
    ("temboard_pg_stat_database_tup_returned_total", "counter", "Rows returned by scans (pg_stat_database)."),
    ("temboard_pg_stat_database_tup_fetched_total", "counter", "Rows fetched by index scans (pg_stat_database)."),
    ("temboard_pg_stat_database_tup_inserted_total", "counter", "Rows inserted (pg_stat_database)."),
    ("temboard_pg_stat_database_tup_updated_total", "counter", "Rows updated (pg_stat_database)."),
    ("temboard_pg_stat_database_tup_deleted_total", "counter", "Rows deleted (pg_stat_database)."),
    ("temboard_pg_stat_database_conflicts_total", "counter", "Queries cancelled by recovery conflicts (pg_stat_database)."),
    ("temboard_pg_stat_database_temp_files_total", "counter", "Temporary files created (pg_stat_database)."),
    ("temboard_pg_stat_database_deadlocks_total", "counter", "Deadlocks detected (pg_stat_database)."),
    ("temboard_pg_stat_database_blk_read_time_seconds_total", "counter", "Time spent reading blocks, with track_io_timing (pg_stat_database)."),
    ("temboard_pg_stat_database_blk_write_time_seconds_total", "counter", "Time spent writing blocks, with track_io_timing (pg_stat_database)."),
    ("temboard_pg_stat_database_session_time_seconds_total", "counter", "Time sessions spent connected (pg_stat_database, 14+)."),
    ("temboard_pg_stat_database_active_time_seconds_total", "counter", "Time sessions spent running queries (pg_stat_database, 14+)."),
    ("temboard_pg_stat_database_idle_in_transaction_time_seconds_total", "counter", "Time sessions spent idle in a transaction (pg_stat_database, 14+)."),
    ("temboard_pg_stat_database_sessions_total", "counter", "Sessions established (pg_stat_database, 14+)."),
    ("temboard_pg_stat_database_sessions_abandoned_total", "counter", "Sessions ended by the client going away (pg_stat_database, 14+)."),
    ("temboard_pg_stat_database_sessions_fatal_total", "counter", "Sessions ended by a fatal error (pg_stat_database, 14+)."),
    ("temboard_pg_stat_database_sessions_killed_total", "counter", "Sessions ended by an operator (pg_stat_database, 14+)."),
    ("temboard_pg_stat_replication_lag_bytes", "gauge", "WAL a standby has not written, flushed or replayed yet, seen from the primary (pg_stat_replication)."),
    ("temboard_pg_stat_replication_lag_seconds", "gauge", "write_lag, flush_lag, replay_lag of a standby (pg_stat_replication)."),
    ("temboard_pg_replication_slot_active", "gauge", "1 while a client streams from the slot."),
    ("temboard_pg_replication_slot_retained_bytes", "gauge", "WAL kept for the slot, from its restart_lsn."),
    ("temboard_pg_replication_slot_safe_wal_size_bytes", "gauge", "WAL that may still be written before the slot is lost (max_slot_wal_keep_size)."),
    ("temboard_pg_replication_slot_xmin_age", "gauge", "Age of the slot's xmin, transactions."),
    ("temboard_pg_replication_slot_catalog_xmin_age", "gauge", "Age of the slot's catalog_xmin, transactions."),
    ("temboard_pg_stat_archiver_archived_total", "counter", "WAL files archived (pg_stat_archiver)."),
    ("temboard_pg_stat_archiver_failed_total", "counter", "Failed attempts to archive WAL files (pg_stat_archiver)."),
    ("temboard_pg_stat_archiver_last_archive_age_seconds", "gauge", "Time since the last WAL file was archived."),
    ("temboard_pg_database_xid_age", "gauge", "age(datfrozenxid): transactions since the database was last frozen whole."),
    ("temboard_pg_database_mxid_age", "gauge", "mxid_age(datminmxid): multixacts since the database was last frozen whole."),
    ("temboard_pg_oldest_transaction_seconds", "gauge", "Age of the oldest open client transaction."),
    ("temboard_pg_prepared_transactions", "gauge", "Prepared transactions waiting for COMMIT or ROLLBACK PREPARED."),
    ("temboard_pg_stat_wal_records_total", "counter", "WAL records written (pg_stat_wal, 14+)."),
    ("temboard_pg_stat_wal_fpi_total", "counter", "Full page images written to WAL (pg_stat_wal, 14+)."),
    ("temboard_pg_stat_wal_bytes_total", "counter", "WAL bytes written (pg_stat_wal, 14+)."),
    ("temboard_pg_stat_wal_buffers_full_total", "counter", "Times WAL was written because the WAL buffers were full (pg_stat_wal, 14+)."),
    ("temboard_pg_stat_checkpointer_checkpoints_total", "counter", "Checkpoints by kind, timed or requested (pg_stat_checkpointer, 17+)."),
    ("temboard_pg_stat_checkpointer_restartpoints_total", "counter", "Restartpoints by kind, timed, requested or done (pg_stat_checkpointer, 17+)."),
    ("temboard_pg_stat_checkpointer_write_time_seconds_total", "counter", "Time checkpoints spent writing files (pg_stat_checkpointer, 17+)."),
    ("temboard_pg_stat_checkpointer_sync_time_seconds_total", "counter", "Time checkpoints spent syncing files (pg_stat_checkpointer, 17+)."),
    ("temboard_pg_stat_checkpointer_buffers_written_total", "counter", "Buffers written by checkpoints (pg_stat_checkpointer, 17+)."),
    ("temboard_pg_stat_io_operations_total", "counter", "I/O operations by backend type, object, context and operation (pg_stat_io, 16+)."),
    ("temboard_pg_stat_io_bytes_total", "counter", "Bytes read, written and extended by backend type, object and context (pg_stat_io, 16+; 18's byte columns, op_bytes times the count before)."),
    ("temboard_pg_stat_user_tables_seq_scan_total", "counter", "Sequential scans of the table (largest tables_per_database tables of each database)."),
    ("temboard_pg_stat_user_tables_seq_tup_read_total", "counter", "Rows read by sequential scans of the table."),
    ("temboard_pg_stat_user_tables_idx_scan_total", "counter", "Index scans on the table."),
    ("temboard_pg_stat_user_tables_idx_tup_fetch_total", "counter", "Rows fetched by index scans on the table."),
    ("temboard_pg_stat_user_tables_n_tup_ins_total", "counter", "Rows inserted into the table."),
    ("temboard_pg_stat_user_tables_n_tup_upd_total", "counter", "Rows updated in the table."),
    ("temboard_pg_stat_user_tables_n_tup_del_total", "counter", "Rows deleted from the table."),
    ("temboard_pg_stat_user_tables_n_tup_hot_upd_total", "counter", "Rows HOT-updated in the table."),
    ("temboard_pg_stat_user_tables_n_live_tup", "gauge", "Estimated live rows of the table."),
    ("temboard_pg_stat_user_tables_n_dead_tup", "gauge", "Estimated dead rows of the table."),
    ("temboard_pg_stat_user_tables_vacuum_count_total", "counter", "Manual VACUUMs of the table."),
    ("temboard_pg_stat_user_tables_autovacuum_count_total", "counter", "Autovacuum runs on the table."),
    ("temboard_pg_stat_user_tables_analyze_count_total", "counter", "Manual ANALYZEs of the table."),
    ("temboard_pg_stat_user_tables_autoanalyze_count_total", "counter", "Autoanalyze runs on the table."),
    ("temboard_pg_stat_user_tables_last_vacuum_age_seconds", "gauge", "Time since the table was last vacuumed, by hand or autovacuum."),
    ("temboard_pg_stat_user_tables_last_analyze_age_seconds", "gauge", "Time since the table was last analyzed, by hand or autoanalyze."),
    ("temboard_pg_stat_user_tables_size_bytes", "gauge", "pg_total_relation_size of the table."),
    ("temboard_pg_statio_user_tables_heap_blks_read_total", "counter", "Heap blocks of the table read from outside shared buffers."),
    ("temboard_pg_statio_user_tables_heap_blks_hit_total", "counter", "Heap blocks of the table found in shared buffers."),
    ("temboard_pg_statio_user_tables_idx_blks_read_total", "counter", "Index blocks of the table read from outside shared buffers."),
    ("temboard_pg_statio_user_tables_idx_blks_hit_total", "counter", "Index blocks of the table found in shared buffers."),
    ("temboard_patroni_up", "gauge", "1 when Patroni's REST API ([patroni] url) answered the last check."),
    ("temboard_patroni_primary", "gauge", "1 when Patroni says this member is the primary."),
    ("temboard_patroni_running", "gauge", "1 when Patroni says PostgreSQL is running."),
    ("temboard_patroni_pending_restart", "gauge", "1 when settings wait for a restart (patronictl restart)."),
    ("temboard_patroni_cluster_unlocked", "gauge", "1 when no member holds the leader lock."),
    ("temboard_patroni_timeline", "gauge", "The timeline Patroni reports for this member."),
    ("temboard_patroni_lag_bytes", "gauge", "This replica's lag as Patroni reports it (GET /cluster)."),
];

fn lab(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Samples of the facts the checks already read (no query).
pub fn from_instance(i: &Instance) -> Vec<Sample> {
    let mut out = vec![];
    let mut push = |name: &str, labels: Vec<(String, String)>, v: Option<f64>| {
        if let Some(v) = v {
            out.push(Sample(name.to_string(), labels, v));
        }
    };
    for d in &i.databases {
        push("temboard_pg_database_xid_age", lab(&[("datname", &d.datname)]), Some(d.xid_age as f64));
        push("temboard_pg_database_mxid_age", lab(&[("datname", &d.datname)]), Some(d.mxid_age as f64));
    }
    for st in &i.standbys {
        let base = [
            ("application_name", st.application_name.as_str()),
            ("client_addr", st.client_addr.as_deref().unwrap_or("")),
        ];
        for (kind, bytes, secs) in [
            ("write", st.write_lag_bytes, st.write_lag_seconds),
            ("flush", st.flush_lag_bytes, st.flush_lag_seconds),
            ("replay", st.replay_lag_bytes, st.replay_lag_seconds),
        ] {
            let mut l = lab(&base);
            l.push(("kind".into(), kind.into()));
            push("temboard_pg_stat_replication_lag_bytes", l.clone(), bytes.map(|b| b as f64));
            push("temboard_pg_stat_replication_lag_seconds", l, secs);
        }
    }
    for s in &i.slots {
        let l = lab(&[("slot_name", &s.slot_name), ("slot_type", &s.slot_type)]);
        push("temboard_pg_replication_slot_active", l.clone(), Some(if s.active { 1.0 } else { 0.0 }));
        push("temboard_pg_replication_slot_retained_bytes", l.clone(), s.retained_bytes.map(|b| b as f64));
        push("temboard_pg_replication_slot_safe_wal_size_bytes", l.clone(), s.safe_wal_size.map(|b| b as f64));
        push("temboard_pg_replication_slot_xmin_age", l.clone(), s.xmin_age.map(|b| b as f64));
        push("temboard_pg_replication_slot_catalog_xmin_age", l, s.catalog_xmin_age.map(|b| b as f64));
    }
    if let Some(a) = &i.archiver {
        push("temboard_pg_stat_archiver_archived_total", vec![], Some(a.archived_count as f64));
        push("temboard_pg_stat_archiver_failed_total", vec![], Some(a.failed_count as f64));
        push("temboard_pg_stat_archiver_last_archive_age_seconds", vec![], a.last_archived_seconds);
    }
    push(
        "temboard_pg_oldest_transaction_seconds",
        vec![],
        Some(i.transactions.first().and_then(|t| t.xact_seconds).unwrap_or(0.0)),
    );
    push("temboard_pg_prepared_transactions", vec![], Some(i.prepared.len() as f64));
    out
}

/// Reads rows of `sql` as samples: the first `labels` columns are the
/// labels (named as the columns), each other column a family (named
/// `prefix` + column name + `suffix`), nulls left out.
fn rows(
    tx: &mut Tx<'_>,
    sql: &str,
    labels: usize,
    prefix: &str,
    extra: &[(String, String)],
) -> Result<Vec<Sample>, postgres::Error> {
    let mut out = vec![];
    for r in tx.query(sql, &[])? {
        let cols = r.columns();
        let mut l: Vec<(String, String)> = extra.to_vec();
        for (i, c) in cols.iter().enumerate().take(labels) {
            l.push((c.name().to_string(), r.get::<_, Option<String>>(i).unwrap_or_default()));
        }
        for (i, c) in cols.iter().enumerate().skip(labels) {
            if let Some(v) = r.get::<_, Option<f64>>(i) {
                out.push(Sample(format!("{prefix}{}", c.name()), l.clone(), v));
            }
        }
    }
    Ok(out)
}

/// The instance's statistics views, by major.
pub fn read(tx: &mut Tx<'_>, version: i32) -> Result<Vec<Sample>, postgres::Error> {
    let mut out = vec![];
    let sessions = if version >= 140_000 {
        ", session_time::float8 / 1000 AS session_time_seconds_total,
           active_time::float8 / 1000 AS active_time_seconds_total,
           idle_in_transaction_time::float8 / 1000 AS idle_in_transaction_time_seconds_total,
           sessions::float8 AS sessions_total, sessions_abandoned::float8 AS sessions_abandoned_total,
           sessions_fatal::float8 AS sessions_fatal_total, sessions_killed::float8 AS sessions_killed_total"
    } else {
        ""
    };
    out.extend(rows(
        tx,
        &format!(
            "SELECT datname::text, numbackends::float8 AS numbackends,
                    tup_returned::float8 AS tup_returned_total, tup_fetched::float8 AS tup_fetched_total,
                    tup_inserted::float8 AS tup_inserted_total, tup_updated::float8 AS tup_updated_total,
                    tup_deleted::float8 AS tup_deleted_total, conflicts::float8 AS conflicts_total,
                    temp_files::float8 AS temp_files_total, deadlocks::float8 AS deadlocks_total,
                    blk_read_time / 1000 AS blk_read_time_seconds_total,
                    blk_write_time / 1000 AS blk_write_time_seconds_total{sessions}
             FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname"
        ),
        1,
        "temboard_pg_stat_database_",
        &[],
    )?);
    let start: f64 = tx
        .query_one("SELECT extract(epoch FROM pg_postmaster_start_time())::float8", &[])?
        .get(0);
    out.push(Sample("temboard_pg_postmaster_start_time_seconds".into(), vec![], start));
    // Numeric settings in base units, as postgres_exporter names them.
    for r in tx.query(
        "SELECT name, vartype, unit, setting FROM pg_settings
         WHERE vartype IN ('integer', 'real', 'bool') ORDER BY name",
        &[],
    )? {
        let (name, vartype, unit, setting): (String, String, Option<String>, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let value = if vartype == "bool" {
            Some(if setting == "on" { 1.0 } else { 0.0 })
        } else {
            setting.parse::<f64>().ok()
        };
        let Some(value) = value else { continue };
        let (factor, suffix) = match unit.as_deref() {
            Some("B") => (1.0, "_bytes"),
            Some("kB") => (1024.0, "_bytes"),
            Some("8kB") => (8192.0, "_bytes"),
            Some("16kB") => (16384.0, "_bytes"),
            Some("MB") => (1024.0 * 1024.0, "_bytes"),
            Some("GB") => (1024.0 * 1024.0 * 1024.0, "_bytes"),
            Some("ms") => (0.001, "_seconds"),
            Some("s") => (1.0, "_seconds"),
            Some("min") => (60.0, "_seconds"),
            _ => (1.0, ""),
        };
        // -1 means "off" or "default" for many settings: kept as is.
        let v = if value < 0.0 { value } else { value * factor };
        let mut family: String = format!("temboard_pg_settings_{}{suffix}", name.replace(['.', '-'], "_"));
        // promtool reserves these suffixes for histograms and summaries
        // (tcp_keepalives_count), and type names in a name
        // (wal_summary_keep_time: `_summaries_`).
        if ["_count", "_sum", "_bucket", "_total"].iter().any(|x| family.ends_with(x)) {
            family.push_str("_value");
        }
        for t in ["counter", "gauge", "histogram", "summary"] {
            let plural = if t == "summary" { "summaries" } else { &format!("{t}s") };
            if family.contains(&format!("_{t}_")) || family.ends_with(&format!("_{t}")) {
                family = family.replace(&format!("_{t}"), &format!("_{plural}"));
            }
        }
        if family.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(Sample(family, vec![], v));
        }
    }
    if version >= 140_000 {
        out.extend(rows(
            tx,
            "SELECT wal_records::float8 AS records_total, wal_fpi::float8 AS fpi_total,
                    wal_bytes::float8 AS bytes_total, wal_buffers_full::float8 AS buffers_full_total
             FROM pg_stat_wal",
            0,
            "temboard_pg_stat_wal_",
            &[],
        )?);
    }
    if version >= 170_000 {
        let r = tx.query_one(
            "SELECT num_timed::float8, num_requested::float8, restartpoints_timed::float8,
                    restartpoints_req::float8, restartpoints_done::float8, write_time / 1000,
                    sync_time / 1000, buffers_written::float8
             FROM pg_stat_checkpointer",
            &[],
        )?;
        let c = "temboard_pg_stat_checkpointer_";
        for (family, kind, i) in [
            ("checkpoints_total", Some("timed"), 0),
            ("checkpoints_total", Some("requested"), 1),
            ("restartpoints_total", Some("timed"), 2),
            ("restartpoints_total", Some("requested"), 3),
            ("restartpoints_total", Some("done"), 4),
            ("write_time_seconds_total", None, 5),
            ("sync_time_seconds_total", None, 6),
            ("buffers_written_total", None, 7),
        ] {
            let labels = kind.map_or(vec![], |k| lab(&[("kind", k)]));
            out.push(Sample(format!("{c}{family}"), labels, r.get::<_, f64>(i)));
        }
    }
    if version >= 160_000 {
        let bytes = if version >= 180_000 {
            "read_bytes::float8, write_bytes::float8, extend_bytes::float8"
        } else {
            "(reads * op_bytes)::float8, (writes * op_bytes)::float8, (extends * op_bytes)::float8"
        };
        let sql = format!(
            "SELECT backend_type, object, context, reads::float8, writes::float8, extends::float8,
                    hits::float8, evictions::float8, reuses::float8, fsyncs::float8, {bytes}
             FROM pg_stat_io ORDER BY 1, 2, 3"
        );
        for r in tx.query(&sql, &[])? {
            let base = [
                ("backend_type", r.get::<_, String>(0)),
                ("object", r.get::<_, String>(1)),
                ("context", r.get::<_, String>(2)),
            ];
            let with = |op: &str| {
                let mut l: Vec<(String, String)> =
                    base.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                l.push(("operation".into(), op.into()));
                l
            };
            for (i, op) in ["read", "write", "extend", "hit", "eviction", "reuse", "fsync"].iter().enumerate() {
                if let Some(v) = r.get::<_, Option<f64>>(i + 3) {
                    out.push(Sample("temboard_pg_stat_io_operations_total".into(), with(op), v));
                }
            }
            for (i, op) in ["read", "write", "extend"].iter().enumerate() {
                if let Some(v) = r.get::<_, Option<f64>>(i + 10) {
                    out.push(Sample("temboard_pg_stat_io_bytes_total".into(), with(op), v));
                }
            }
        }
    }
    Ok(out)
}

/// The largest `n` tables of the connected database, per-table families.
pub fn tables(tx: &mut Tx<'_>, datname: &str, n: i64) -> Result<Vec<Sample>, postgres::Error> {
    let sql = format!(
        "SELECT s.schemaname::text, s.relname::text,
                s.seq_scan::float8 AS seq_scan_total, s.seq_tup_read::float8 AS seq_tup_read_total,
                s.idx_scan::float8 AS idx_scan_total, s.idx_tup_fetch::float8 AS idx_tup_fetch_total,
                s.n_tup_ins::float8 AS n_tup_ins_total, s.n_tup_upd::float8 AS n_tup_upd_total,
                s.n_tup_del::float8 AS n_tup_del_total, s.n_tup_hot_upd::float8 AS n_tup_hot_upd_total,
                s.n_live_tup::float8 AS n_live_tup, s.n_dead_tup::float8 AS n_dead_tup,
                s.vacuum_count::float8 AS vacuum_count_total, s.autovacuum_count::float8 AS autovacuum_count_total,
                s.analyze_count::float8 AS analyze_count_total, s.autoanalyze_count::float8 AS autoanalyze_count_total,
                extract(epoch FROM clock_timestamp() - greatest(s.last_vacuum, s.last_autovacuum))::float8
                  AS last_vacuum_age_seconds,
                extract(epoch FROM clock_timestamp() - greatest(s.last_analyze, s.last_autoanalyze))::float8
                  AS last_analyze_age_seconds,
                t.size::float8 AS size_bytes,
                io.heap_blks_read::float8 AS io_heap_blks_read_total, io.heap_blks_hit::float8 AS io_heap_blks_hit_total,
                io.idx_blks_read::float8 AS io_idx_blks_read_total, io.idx_blks_hit::float8 AS io_idx_blks_hit_total
         FROM (SELECT c.oid, pg_total_relation_size(c.oid) AS size FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND n.nspname !~ '^pg_toast' AND c.relpersistence <> 't'
               ORDER BY c.relpages DESC LIMIT {n}) t
         JOIN pg_stat_user_tables s ON s.relid = t.oid
         JOIN pg_statio_user_tables io ON io.relid = t.oid
         ORDER BY t.size DESC"
    );
    let raw = rows(tx, &sql, 2, "", &[("datname".to_string(), datname.to_string())])?;
    Ok(raw
        .into_iter()
        .map(|Sample(col, labels, v)| {
            let family = match col.strip_prefix("io_") {
                Some(rest) => format!("temboard_pg_statio_user_tables_{rest}"),
                None => format!("temboard_pg_stat_user_tables_{col}"),
            };
            Sample(family, labels, v)
        })
        .collect())
}

/// Type and help of a family (settings are gauges named after themselves).
pub fn describe(family: &str) -> (&'static str, String) {
    match FAMILIES.iter().find(|(n, ..)| *n == family) {
        Some((_, kind, help)) => (kind, help.to_string()),
        None => (
            "gauge",
            format!(
                "Server setting {} in base units (pg_settings).",
                family.trim_start_matches("temboard_pg_settings_")
            ),
        ),
    }
}
