//! SQL probes of the monitoring plugin (facts 10.1), run by the probe worker
//! through its pool (statement and lock timeouts, connection cap). Each probe
//! returns raw rows (cumulative counters); deltas are computed by the caller,
//! which owns the delta state. A probe that fails or does not apply (e.g.
//! wal_files on a standby) yields `[]`, never an error for the whole run.

use crate::pgbloat::ratio_query;
use postgres::types::Type;
use postgres::Row;
use serde_json::{json, Map, Value};

use crate::pg::Conn;

/// A row as JSON, each column by its PostgreSQL type (ints, floats, bools,
/// text; anything else as text).
pub fn row_json(row: &Row) -> Map<String, Value> {
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT2 {
            json!(row.get::<_, Option<i16>>(i))
        } else if *t == Type::INT4 {
            json!(row.get::<_, Option<i32>>(i))
        } else if *t == Type::INT8 {
            json!(row.get::<_, Option<i64>>(i))
        } else if *t == Type::FLOAT4 {
            json!(row.get::<_, Option<f32>>(i))
        } else if *t == Type::FLOAT8 {
            json!(row.get::<_, Option<f64>>(i))
        } else if *t == Type::BOOL {
            json!(row.get::<_, Option<bool>>(i))
        } else {
            json!(row.try_get::<_, Option<String>>(i).ok().flatten())
        };
        m.insert(col.name().to_string(), v);
    }
    m
}

const LOCK_MODES: [(&str, &str); 8] = [
    ("access_share", "AccessShareLock"),
    ("row_share", "RowShareLock"),
    ("row_exclusive", "RowExclusiveLock"),
    ("share_update_exclusive", "ShareUpdateExclusiveLock"),
    ("share", "ShareLock"),
    ("share_row_exclusive", "ShareRowExclusiveLock"),
    ("exclusive", "ExclusiveLock"),
    ("access_exclusive", "AccessExclusiveLock"),
];

/// Whether the probe has SQL for a current PostgreSQL (test support).
#[cfg(test)]
pub fn has_sql(probe: &str) -> bool {
    sql(probe, 150_000).is_some() || super::probes::PER_DATABASE.contains(&probe)
}


fn sql(probe: &str, version: i32) -> Option<String> {
    let now = "current_timestamp::text AS datetime";
    Some(match probe {
        "sessions" => {
            let waiting = if version >= 90600 { "a.wait_event_type = 'Lock'" } else { "a.waiting" };
            format!(
                "SELECT {now}, d.datname::text AS dbname,
                   count(a.pid) FILTER (WHERE a.state = 'active' AND NOT coalesce({waiting}, false))::int AS active,
                   count(a.pid) FILTER (WHERE a.state = 'active' AND coalesce({waiting}, false))::int AS waiting,
                   count(a.pid) FILTER (WHERE a.state = 'idle')::int AS idle,
                   count(a.pid) FILTER (WHERE a.state = 'idle in transaction')::int AS idle_in_xact,
                   count(a.pid) FILTER (WHERE a.state = 'idle in transaction (aborted)')::int AS idle_in_xact_aborted,
                   count(a.pid) FILTER (WHERE a.state = 'fastpath function call')::int AS fastpath,
                   count(a.pid) FILTER (WHERE a.state = 'disabled')::int AS disabled,
                   count(a.pid) FILTER (WHERE a.query = '<insufficient privilege>')::int AS no_priv
                 FROM pg_database d LEFT JOIN pg_stat_activity a ON a.datid = d.oid
                 WHERE d.datallowconn GROUP BY d.datname ORDER BY d.datname"
            )
        }
        "xacts" => format!(
            "SELECT {now}, d.datname::text AS dbname, s.xact_commit::bigint AS n_commit, s.xact_rollback::bigint AS n_rollback
             FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid WHERE d.datallowconn ORDER BY d.datname"
        ),
        "locks" => {
            let mut cols = vec![];
            for (k, mode) in LOCK_MODES {
                cols.push(format!("count(l.pid) FILTER (WHERE l.mode = '{mode}' AND l.granted)::int AS {k}"));
            }
            cols.push("count(l.pid) FILTER (WHERE l.mode = 'SIReadLock' AND l.granted)::int AS siread".into());
            for (k, mode) in LOCK_MODES {
                cols.push(format!("count(l.pid) FILTER (WHERE l.mode = '{mode}' AND NOT l.granted)::int AS waiting_{k}"));
            }
            format!(
                "SELECT {now}, d.datname::text AS dbname, {}
                 FROM pg_database d LEFT JOIN pg_locks l ON l.database = d.oid
                 WHERE d.datallowconn GROUP BY d.datname ORDER BY d.datname",
                cols.join(", ")
            )
        }
        "blocks" => format!(
            "SELECT {now}, d.datname::text AS dbname, s.blks_read::bigint, s.blks_hit::bigint,
               CASE WHEN s.blks_read + s.blks_hit = 0 THEN 0 ELSE 100.0 * s.blks_hit / (s.blks_read + s.blks_hit) END::float8 AS hitmiss_ratio
             FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid WHERE d.datallowconn ORDER BY d.datname"
        ),
        "bgwriter" if version >= 170000 => format!(
            "SELECT {now}, c.num_timed::bigint AS checkpoints_timed, c.num_requested::bigint AS checkpoints_req,
               c.write_time::float8 AS checkpoint_write_time, c.sync_time::float8 AS checkpoint_sync_time,
               c.buffers_written::bigint AS buffers_checkpoint, b.buffers_clean::bigint, b.maxwritten_clean::bigint,
               0::bigint AS buffers_backend, 0::bigint AS buffers_backend_fsync, b.buffers_alloc::bigint,
               b.stats_reset::text
             FROM pg_stat_bgwriter b, pg_stat_checkpointer c"
        ),
        "bgwriter" => format!(
            "SELECT {now}, checkpoints_timed::bigint, checkpoints_req::bigint, checkpoint_write_time::float8,
               checkpoint_sync_time::float8, buffers_checkpoint::bigint, buffers_clean::bigint, maxwritten_clean::bigint,
               buffers_backend::bigint, buffers_backend_fsync::bigint, buffers_alloc::bigint, stats_reset::text
             FROM pg_stat_bgwriter"
        ),
        "db_size" => format!(
            "SELECT {now}, datname::text AS dbname, pg_database_size(oid)::bigint AS size
             FROM pg_database WHERE datallowconn ORDER BY datname"
        ),
        "tblspc_size" => format!(
            "SELECT {now}, spcname::text, pg_tablespace_size(oid)::bigint AS size FROM pg_tablespace ORDER BY spcname"
        ),
        "wal_files" => {
            let (dir, lsn, diff) = if version >= 100000 {
                ("pg_wal", "pg_current_wal_lsn()", "pg_wal_lsn_diff")
            } else {
                ("pg_xlog", "pg_current_xlog_location()", "pg_xlog_location_diff")
            };
            format!(
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' +0000' AS datetime,
                   (SELECT count(*) FROM pg_ls_dir('{dir}') f WHERE f ~ '^[0-9A-F]{{24}}$')::int AS total,
                   ((SELECT count(*) FROM pg_ls_dir('{dir}') f WHERE f ~ '^[0-9A-F]{{24}}$')
                     * (SELECT setting::float8 * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END
                        FROM pg_settings WHERE name = 'wal_segment_size'))::float8 AS total_size,
                   {lsn}::text AS current_location,
                   (SELECT count(*) FROM pg_ls_dir('{dir}/archive_status') f WHERE f ~ '\\.ready$')::int AS archive_ready,
                   {diff}({lsn}, '0/0')::float8 AS written_size
                 WHERE NOT pg_is_in_recovery()"
            )
        }
        "replication" if version >= 100000 => format!(
            "SELECT {now}, 'primary' AS role, application_name::text, host(client_addr) AS client_addr, state::text,
               sync_state::text, sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
               pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS replay_lag_bytes,
               extract(epoch FROM write_lag)::float8 AS write_lag, extract(epoch FROM flush_lag)::float8 AS flush_lag,
               extract(epoch FROM replay_lag)::float8 AS replay_lag
             FROM pg_stat_replication WHERE NOT pg_is_in_recovery()
             UNION ALL
             SELECT {now}, 'standby', NULL, NULL, NULL, NULL, pg_last_wal_receive_lsn()::text, NULL, NULL,
               pg_last_wal_replay_lsn()::text,
               pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8,
               NULL, NULL, extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
             WHERE pg_is_in_recovery()"
        ),
        "replication" => format!(
            "SELECT {now}, 'primary' AS role, application_name::text, host(client_addr) AS client_addr, state::text,
               sync_state::text, sent_location::text AS sent_lsn, write_location::text AS write_lsn,
               flush_location::text AS flush_lsn, replay_location::text AS replay_lsn,
               pg_xlog_location_diff(pg_current_xlog_location(), replay_location)::float8 AS replay_lag_bytes,
               NULL::float8 AS write_lag, NULL::float8 AS flush_lag, NULL::float8 AS replay_lag
             FROM pg_stat_replication WHERE NOT pg_is_in_recovery()
             UNION ALL
             SELECT {now}, 'standby', NULL, NULL, NULL, NULL, pg_last_xlog_receive_location()::text, NULL, NULL,
               pg_last_xlog_replay_location()::text,
               pg_xlog_location_diff(pg_last_xlog_receive_location(), pg_last_xlog_replay_location())::float8,
               NULL, NULL, extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
             WHERE pg_is_in_recovery()"
        ),
        // Standby only (else no row): how far replay is behind what the
        // primary last reported to the WAL receiver (`latest_end_lsn`, its
        // position at its last message). 9.0.1 opened a replication
        // connection to the primary with the standby's credentials for
        // this; the WAL receiver already knows it, and the agent needs no
        // replication access to the primary.
        "replication_lag" if version >= 100000 => format!(
            "SELECT {now}, greatest(pg_wal_lsn_diff(r.latest_end_lsn, pg_last_wal_replay_lsn()), 0)::bigint AS lag
             FROM pg_stat_wal_receiver r
             WHERE pg_is_in_recovery() AND r.latest_end_lsn IS NOT NULL"
        ),
        "replication_lag" if version >= 90600 => format!(
            "SELECT {now}, greatest(pg_xlog_location_diff(r.latest_end_lsn, pg_last_xlog_replay_location()), 0)::bigint AS lag
             FROM pg_stat_wal_receiver r
             WHERE pg_is_in_recovery() AND r.latest_end_lsn IS NOT NULL"
        ),
        // Standby only: the upstream of primary_conninfo and whether the
        // WAL receiver streams from it (gated at 9.6, where 9.0.1's
        // `96000` left 9.6 out, facts 14.26).
        "replication_connection" if version >= 90600 => format!(
            "SELECT {now}, coalesce(substring(coalesce(r.conninfo, c.v) FROM 'host=''?([^'' ]+)'), '') AS upstream,
                    (coalesce(r.status, '') = 'streaming')::int AS connected
             FROM (SELECT current_setting('primary_conninfo', true) AS v) c
             LEFT JOIN pg_stat_wal_receiver r ON true
             WHERE pg_is_in_recovery() AND coalesce(r.conninfo, c.v, '') <> ''"
        ),
        "temp_files_size_delta" => format!(
            "SELECT {now}, d.datname::text AS dbname, s.temp_bytes::bigint AS size
             FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid
             WHERE d.datallowconn ORDER BY d.datname"
        ),
        _ => return None,
    })
}

/// Runs `sql` bounded by `limits` (`SET LOCAL` in a transaction of its
/// own, so a pooled connection keeps its settings).
pub fn bounded_query(
    conn: &mut Conn,
    sql: &str,
    limits: Option<super::calls::Limits>,
) -> Result<Vec<Row>, postgres::Error> {
    match limits {
        None => conn.client.query(sql, &[]),
        Some(l) => crate::pg::bounded(conn, l.statement_ms, l.lock_ms, |tx| {
            tx.query(sql, &[])
        }),
    }
}

/// Runs one SQL probe; rows with `port` added; `dbnames` filters per-database probes.
pub fn run(
    conn: &mut Conn,
    probe: &str,
    port: u16,
    dbnames: Option<&[String]>,
    limits: Option<super::calls::Limits>,
) -> Result<Vec<Value>, postgres::Error> {
    let Some(q) = sql(probe, conn.version_num) else {
        return Ok(vec![]);
    };
    let rows = bounded_query(conn, &q, limits)?;
    Ok(rows
        .iter()
        .map(row_json)
        .filter(
            |m| match (dbnames, m.get("dbname").and_then(Value::as_str)) {
                (Some(list), Some(db)) => list.iter().any(|n| n == db),
                _ => true,
            },
        )
        .map(|mut m| {
            m.insert("port".into(), json!(port));
            Value::Object(m)
        })
        .collect())
}

/// The bloat ratio of the database `conn` is connected to, for a
/// per-database probe (`None` for another name).
pub fn per_database(
    conn: &mut Conn,
    probe: &str,
    limits: super::calls::Limits,
) -> Result<Option<Option<f64>>, postgres::Error> {
    // The per-relation estimates are `crate::pgbloat`'s (the maintenance
    // pages show the same ones per table and index); the ratio is over
    // every estimable relation of the database, catalogs included.
    let relation = match probe {
        "heap_bloat" => "heap_need",
        "btree_bloat" => "btree_need",
        _ => return Ok(None),
    };
    let ctes = crate::pgbloat::ctes(&mut conn.client, conn.version_num)?;
    let sql = ratio_query(&ctes, relation);
    let rows = bounded_query(conn, &sql, Some(limits))?;
    Ok(Some(rows.first().and_then(|r| r.get::<_, Option<f64>>(0))))
}

/// Databases that accept connections, by name.
pub fn connectable(conn: &mut Conn) -> Result<Vec<String>, postgres::Error> {
    Ok(conn
        .client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The `instances[0]` facts of the payload (facts 10.4), tablespaces included.
pub fn instance(conn: &mut Conn, dbnames: Option<&[String]>) -> Result<Value, postgres::Error> {
    let r = conn.client.query_one(
        "SELECT current_setting('server_version'), current_setting('data_directory'), pg_is_in_recovery(),
                current_setting('max_connections'), to_json(pg_postmaster_start_time()) #>> '{}',
                current_setting('cluster_name'), version()",
        &[],
    )?;
    let server_version: String = r.get(0);
    let data_directory: String = r.get(1);
    let dbs: Vec<Value> = conn
        .client
        .query(
            "SELECT datname::text, pg_encoding_to_char(encoding), pg_database_size(oid)::bigint FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )?
        .iter()
        .filter(|row| dbnames.is_none_or(|l| l.iter().any(|n| *n == row.get::<_, String>(0))))
        .map(|row| json!({ "dbname": row.get::<_, String>(0), "encoding": row.get::<_, String>(1), "size": row.get::<_, i64>(2) }))
        .collect();
    let tablespaces: Vec<Value> = conn
        .client
        .query("SELECT spcname::text, pg_tablespace_location(oid), pg_tablespace_size(oid)::bigint FROM pg_tablespace ORDER BY spcname", &[])?
        .iter()
        .map(|row| json!({ "spcname": row.get::<_, String>(0), "path": row.get::<_, Option<String>>(1), "size": row.get::<_, i64>(2) }))
        .collect();
    let sysuser = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&data_directory)
            .ok()
            .and_then(|m| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid()))
                    .ok()
                    .flatten()
            })
            .map(|u| u.name)
    };
    Ok(json!({
        "available": true,
        "version_num": crate::pgversion::numeric_version(&server_version),
        "version": server_version,
        "data_directory": data_directory,
        "standby": r.get::<_, bool>(2),
        "max_connections": r.get::<_, String>(3),
        "tablespaces": tablespaces,
        "dbnames": dbs,
        "sysuser": sysuser,
        // 9.x only: the job takes it out of the 2.x payload.
        "v9": {
            "start_time": r.get::<_, Option<String>>(4),
            "cluster_name": r.get::<_, String>(5),
            "version": r.get::<_, String>(6),
        },
    }))
}

#[cfg(test)]
mod version_gates {
    use super::sql;

    #[test]
    fn replication_probes_are_gated_at_9_6() {
        for p in ["replication_lag", "replication_connection"] {
            assert!(sql(p, 90500).is_none(), "{p} on 9.5");
            assert!(sql(p, 90600).is_some(), "{p} on 9.6");
            assert!(sql(p, 170000).is_some(), "{p} on 17");
        }
        assert!(sql("replication_lag", 90600).unwrap().contains("xlog"));
        assert!(sql("replication_lag", 100000).unwrap().contains("pg_wal_lsn_diff"));
    }
}
