//! The probe worker's side: the facts each check needs, read from the
//! catalog views (one short transaction per part, under the section's
//! `statement_timeout` and `lock_timeout`: a part that fails or times out
//! is reported and the others still read) and from the file systems.
//! Version-gated views are chosen by `server_version_num` (13 to 18).

use std::os::unix::fs::MetadataExt;

use postgres::Transaction as Tx;

use super::calls::*;
use crate::api::ProbeHost;
use crate::ipc::messages::WorkerError;
use crate::pg::{self, Conn};

/// Databases scanned, at most, per run: a cluster with more has the first
/// ones by name scanned, said in the log.
const MAX_DATABASES: i64 = 1_000;

/// Seconds since a timestamp column, as a float (null stays null).
macro_rules! since {
    ($col:literal) => {
        concat!("extract(epoch FROM clock_timestamp() - ", $col, ")::float8")
    };
}

/// Runs one part in a bounded transaction; a failure is recorded under
/// `check` and the part left empty.
fn part<T: Default>(
    c: &mut Conn,
    bounds: (u64, u64),
    failed: &mut Vec<Failed>,
    check: &str,
    f: impl FnOnce(&mut Tx<'_>) -> Result<T, postgres::Error>,
) -> T {
    match pg::bounded(c, bounds.0 * 1000, bounds.1 * 1000, f) {
        Ok(v) => v,
        Err(e) => {
            failed.push(Failed {
                check: check.to_string(),
                database: None,
                error: pg::describe(&e),
            });
            T::default()
        }
    }
}

/// The instance-wide facts.
pub fn instance(host: &ProbeHost, bounds: (u64, u64)) -> Result<Instance, WorkerError> {
    // The pool's own connections are never the long transaction: left out
    // in the query, and again after it for those opened meanwhile (the
    // per-database scans run beside this).
    let own = host.own_pids();
    let mut i = host.with(|c| Ok(read_instance(c, bounds, &own)))?;
    let own = host.own_pids();
    i.transactions.retain(|t| !own.contains(&t.pid));
    i.idle.retain(|t| !own.contains(&t.pid));
    if i.oldest_xmin.as_ref().is_some_and(|t| own.contains(&t.pid)) {
        i.oldest_xmin = None;
    }
    Ok(i)
}

fn read_instance(c: &mut Conn, bounds: (u64, u64), own: &[i32]) -> Instance {
    let mut failed = vec![];
    let mut i = Instance::default();
    let facts = pg::bounded(c, bounds.0 * 1000, bounds.1 * 1000, |tx| {
        tx.query_one(
            "SELECT current_setting('server_version_num')::int, pg_is_in_recovery(),
                    current_setting('autovacuum_freeze_max_age')::bigint,
                    current_setting('autovacuum_multixact_freeze_max_age')::bigint,
                    current_setting('max_connections')::bigint,
                    current_setting('superuser_reserved_connections')::bigint
                      + coalesce(current_setting('reserved_connections', true)::bigint, 0),
                    current_setting('archive_mode'),
                    (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
            &[],
        )
    });
    let data_directory: Option<String> = match facts {
        Ok(r) => {
            i.version_num = r.get(0);
            i.in_recovery = r.get(1);
            i.freeze_max_age = r.get(2);
            i.multixact_freeze_max_age = r.get(3);
            i.max_connections = r.get(4);
            i.reserved_connections = r.get(5);
            i.archive_mode = r.get(6);
            i.client_backends = r.get(8);
            r.get(7)
        }
        Err(e) => {
            i.failed.push(Failed {
                check: "settings".into(),
                database: None,
                error: pg::describe(&e),
            });
            return i;
        }
    };
    let v = i.version_num;
    let recovery = i.in_recovery;

    i.databases = part(c, bounds, &mut failed, "wraparound", |tx| {
        Ok(tx
            .query(
                "SELECT datname::text, age(datfrozenxid)::bigint, mxid_age(datminmxid)::bigint
                 FROM pg_database ORDER BY age(datfrozenxid) DESC, datname",
                &[],
            )?
            .iter()
            .map(|r| DatabaseAge {
                datname: r.get(0),
                xid_age: r.get(1),
                mxid_age: r.get(2),
            })
            .collect())
    });

    let inactive = if v >= 170_000 {
        since!("inactive_since")
    } else {
        "NULL::float8"
    };
    let slots_sql = format!(
        "SELECT slot_name::text, slot_type, database::text, active, wal_status, safe_wal_size,
                pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                     ELSE pg_current_wal_lsn() END, restart_lsn)::bigint,
                age(xmin)::bigint, age(catalog_xmin)::bigint, {inactive}
         FROM pg_replication_slots ORDER BY slot_name"
    );
    i.slots = part(c, bounds, &mut failed, "replication_slots", |tx| {
        Ok(tx
            .query(&slots_sql, &[])?
            .iter()
            .map(|r| Slot {
                slot_name: r.get(0),
                slot_type: r.get(1),
                database: r.get(2),
                active: r.get(3),
                wal_status: r.get(4),
                safe_wal_size: r.get(5),
                retained_bytes: r.get(6),
                xmin_age: r.get(7),
                catalog_xmin_age: r.get(8),
                inactive_seconds: r.get(9),
            })
            .collect())
    });

    let archiving = i.archive_mode == "always" || (i.archive_mode == "on" && !recovery);
    if archiving {
        i.archiver = part(c, bounds, &mut failed, "archiving", |tx| {
            // Listing the status directory needs superuser or pg_monitor:
            // asked first, so a role without it still gets the counters.
            let may_list: bool = tx
                .query_one(
                    "SELECT has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE')",
                    &[],
                )?
                .get(0);
            let ready: Option<i64> = if may_list {
                Some(
                    tx.query_one(
                        "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
                        &[],
                    )?
                    .get(0),
                )
            } else {
                None
            };
            let r = tx.query_one(
                concat!(
                    "SELECT archived_count, last_archived_wal, ",
                    since!("last_archived_time"),
                    ", failed_count, last_failed_wal, ",
                    since!("last_failed_time"),
                    " FROM pg_stat_archiver"
                ),
                &[],
            )?;
            Ok(Some(Archiver {
                archived_count: r.get(0),
                last_archived_wal: r.get(1),
                last_archived_seconds: r.get(2),
                failed_count: r.get(3),
                last_failed_wal: r.get(4),
                last_failed_seconds: r.get(5),
                ready,
            }))
        });
    }

    if recovery {
        i.receiver = part(c, bounds, &mut failed, "replication", |tx| {
            // One row whether a receiver runs or not; its columns are null
            // for a role without pg_read_all_stats, and primary_conninfo
            // is hidden from one without pg_read_all_settings.
            let r = tx.query_one(
                concat!(
                    "SELECT r.status, ",
                    since!("r.last_msg_receipt_time"),
                    ", ",
                    since!("pg_last_xact_replay_timestamp()"),
                    ", (SELECT setting <> '' FROM pg_settings WHERE name = 'primary_conninfo'), r.pid IS NOT NULL",
                    " FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true"
                ),
                &[],
            )?;
            Ok(Some(Receiver {
                running: r.get(4),
                status: r.get(0),
                last_message_seconds: r.get(1),
                replay_delay_seconds: r.get(2),
                primary_conninfo_set: r.get(3),
            }))
        });
    } else {
        i.standbys = part(c, bounds, &mut failed, "replication", |tx| {
            Ok(tx
                .query(
                    "SELECT application_name, client_addr::text, state, sync_state,
                            pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::bigint,
                            pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint,
                            pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
                            extract(epoch FROM write_lag)::float8,
                            extract(epoch FROM flush_lag)::float8,
                            extract(epoch FROM replay_lag)::float8
                     FROM pg_stat_replication
                     -- pg_basebackup's walsenders are backups, not standbys.
                     WHERE state IS DISTINCT FROM 'backup' AND application_name <> 'pg_basebackup'
                     ORDER BY application_name, client_addr",
                    &[],
                )?
                .iter()
                .map(|r| Standby {
                    application_name: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    client_addr: r.get(1),
                    state: r.get(2),
                    sync_state: r.get(3),
                    write_lag_bytes: r.get(4),
                    flush_lag_bytes: r.get(5),
                    replay_lag_bytes: r.get(6),
                    write_lag_seconds: r.get(7),
                    flush_lag_seconds: r.get(8),
                    replay_lag_seconds: r.get(9),
                })
                .collect())
        });
    }

    let (transactions, idle, oldest_xmin) = part(c, bounds, &mut failed, "transactions", |tx| {
        let backends = |sql: &str, tx: &mut Tx<'_>| -> Result<Vec<Transaction>, postgres::Error> {
            Ok(tx.query(sql, &[&own])?.iter().map(backend).collect())
        };
        let columns = concat!(
            "pid, datname::text, usename::text, application_name, state, backend_type, ",
            since!("xact_start"),
            ", ",
            since!("state_change"),
            ", greatest(age(backend_xmin), age(backend_xid))::bigint FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND pid <> ALL($1::int4[])"
        );
        // The agent's own sessions (its per-database scans open and close
        // connections while this reads, too fast for the pid lists; its
        // maintenance tasks show in the maintenance pages) are not the
        // long transaction; they still count for the horizon below.
        let not_ours = "AND application_name IS DISTINCT FROM 'temboard-agent'";
        let oldest = backends(
            &format!(
                "SELECT {columns} AND backend_type = 'client backend' AND xact_start IS NOT NULL {not_ours}
                 ORDER BY xact_start LIMIT 10"
            ),
            tx,
        )?;
        let idle = backends(
            &format!(
                "SELECT {columns} AND state IN ('idle in transaction', 'idle in transaction (aborted)') {not_ours}
                 ORDER BY state_change LIMIT 10"
            ),
            tx,
        )?;
        let xmin = backends(
            &format!(
                "SELECT {columns} AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
                 ORDER BY greatest(age(backend_xmin), age(backend_xid)) DESC LIMIT 1"
            ),
            tx,
        )?;
        Ok((oldest, idle, xmin.into_iter().next()))
    });
    i.transactions = transactions;
    i.idle = idle;
    i.oldest_xmin = oldest_xmin;

    i.prepared = part(c, bounds, &mut failed, "prepared_transactions", |tx| {
        Ok(tx
            .query(
                concat!(
                    "SELECT gid, database::text, owner::text, ",
                    since!("prepared"),
                    ", age(transaction)::bigint FROM pg_prepared_xacts ORDER BY prepared LIMIT 10"
                ),
                &[],
            )?
            .iter()
            .map(|r| Prepared {
                gid: r.get(0),
                database: r.get(1),
                owner: r.get(2),
                seconds: r.get::<_, Option<f64>>(3).unwrap_or(0.0),
                xid_age: r.get(4),
            })
            .collect())
    });

    let checkpoints_sql = if v >= 170_000 {
        "SELECT num_timed, num_requested, 'pg_stat_checkpointer' FROM pg_stat_checkpointer"
    } else {
        "SELECT checkpoints_timed, checkpoints_req, 'pg_stat_bgwriter' FROM pg_stat_bgwriter"
    };
    i.checkpoints = part(c, bounds, &mut failed, "checkpoints", |tx| {
        let r = tx.query_one(checkpoints_sql, &[])?;
        Ok(Some(Checkpoints {
            timed: r.get(0),
            requested: r.get(1),
            source: r.get(2),
        }))
    });

    let tablespaces: Vec<(String, String)> = part(c, bounds, &mut failed, "disk", |tx| {
        Ok(tx
            .query(
                "SELECT spcname::text, pg_tablespace_location(oid) FROM pg_tablespace
                 WHERE pg_tablespace_location(oid) <> '' ORDER BY spcname",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    });
    match data_directory {
        Some(dir) => i.disks = disks(&dir, &tablespaces, &mut failed),
        None => failed.push(Failed {
            check: "disk".into(),
            database: None,
            error: "the role may not read data_directory (needs superuser or pg_read_all_settings)"
                .into(),
        }),
    }
    i.samples = part(c, bounds, &mut failed, "metrics", |tx| super::families::read(tx, v));
    i.failed = failed;
    i
}

fn backend(r: &postgres::Row) -> Transaction {
    Transaction {
        pid: r.get(0),
        datname: r.get(1),
        usename: r.get(2),
        application_name: r.get(3),
        state: r.get(4),
        backend_type: r.get(5),
        xact_seconds: r.get(6),
        state_seconds: r.get(7),
        xmin_age: r.get(8),
    }
}

/// Free space of each file system holding the data directory, `pg_wal`
/// (often a link to another disk: followed) and the tablespaces, one entry
/// per file system.
fn disks(data_directory: &str, tablespaces: &[(String, String)], failed: &mut Vec<Failed>) -> Vec<Disk> {
    let mut places = vec![
        ("data_directory".to_string(), data_directory.to_string()),
        ("pg_wal".to_string(), format!("{data_directory}/pg_wal")),
    ];
    places.extend(
        tablespaces
            .iter()
            .map(|(name, path)| (format!("tablespace {name}"), path.clone())),
    );
    let mut out: Vec<(u64, Disk)> = vec![];
    for (what, path) in places {
        let read = std::fs::metadata(&path).map_err(|e| e.to_string()).and_then(|m| {
            let s = nix::sys::statvfs::statvfs(path.as_str()).map_err(|e| e.to_string())?;
            Ok((m.dev(), s))
        });
        match read {
            Ok((dev, s)) => {
                if let Some((_, d)) = out.iter_mut().find(|(d, _)| *d == dev) {
                    d.holds.push(what);
                    continue;
                }
                let frag = s.fragment_size() as i64;
                out.push((
                    dev,
                    Disk {
                        holds: vec![what],
                        path,
                        total_bytes: s.blocks() as i64 * frag,
                        free_bytes: s.blocks_available() as i64 * frag,
                    },
                ));
            }
            Err(e) => failed.push(Failed {
                check: "disk".into(),
                database: None,
                error: format!("{what} ({path}): {e}"),
            }),
        }
    }
    out.into_iter().map(|(_, d)| d).collect()
}

/// Each database's scan, one at a time on a connection of its own.
pub fn databases(
    host: &ProbeHost,
    bounds: (u64, u64),
    (per_database, in_all): (u64, u64),
) -> Result<Observed, WorkerError> {
    let names: Vec<String> = host.with(|c| {
        Ok(c.client
            .query(
                "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY datname LIMIT $1",
                &[&MAX_DATABASES],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    })?;
    if names.len() as i64 == MAX_DATABASES {
        tracing::warn!("risks: only the first {MAX_DATABASES} databases are scanned");
    }
    let mut scans = vec![];
    let mut failed = vec![];
    // The per-table families' budget: whatever the number of databases,
    // `in_all` tables at most (about 21 series each).
    let mut left = in_all;
    for datname in names {
        let tables = per_database.min(left);
        let read = host.with_database(&datname, |c| {
            pg::bounded(c, bounds.0 * 1000, bounds.1 * 1000, |tx| {
                let mut s = scan(tx, &datname)?;
                if tables > 0 {
                    s.samples = super::families::tables(tx, &datname, tables as i64)?;
                }
                Ok(s)
            })
        });
        match read {
            Ok(s) => {
                // Tables, not series: (schema, table) of each sample.
                let sampled: std::collections::HashSet<Vec<&(String, String)>> = s
                    .samples
                    .iter()
                    .map(|x| x.1.iter().filter(|(k, _)| k == "schemaname" || k == "relname").collect())
                    .collect();
                left = left.saturating_sub(sampled.len() as u64);
                scans.push(s)
            }
            Err(e) => failed.push(Failed {
                check: "databases".into(),
                database: Some(datname),
                error: e.to_string(),
            }),
        }
    }
    Ok(Observed::Databases { scans, failed })
}

/// A sequence's share used: from its start toward the end it moves to
/// (descending sequences count down to their minimum).
const SEQUENCES: &str = "
SELECT format('%I.%I', s.schemaname, s.sequencename), s.last_value, s.min_value, s.max_value,
       s.increment_by, col.name,
       CASE col.typ WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647 END
FROM pg_sequences s
LEFT JOIN LATERAL (
  SELECT format('%I.%I.%I', n.nspname, t.relname, a.attname) AS name, a.atttypid AS typ
  FROM pg_depend d
  JOIN pg_class t ON t.oid = d.refobjid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
    AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
  LIMIT 1) col ON true
WHERE NOT s.cycle";

fn scan(tx: &mut Tx<'_>, datname: &str) -> Result<DatabaseScan, postgres::Error> {
    let oldest_tables = tx
        .query(
            "SELECT c.oid::regclass::text, age(c.relfrozenxid)::bigint, mxid_age(c.relminmxid)::bigint
             FROM pg_class c
             WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'::xid
             ORDER BY age(c.relfrozenxid) DESC LIMIT 5",
            &[],
        )?
        .iter()
        .map(|r| OldTable {
            name: r.get(0),
            xid_age: r.get(1),
            mxid_age: r.get(2),
        })
        .collect();
    let mut sequences = vec![];
    let mut unreadable = 0;
    for r in tx.query(SEQUENCES, &[])? {
        let last: Option<i64> = r.get(1);
        let (min, max, inc): (i64, i64, i64) = (r.get(2), r.get(3), r.get(4));
        let column_max: Option<i32> = r.get(6);
        let Some(last) = last else {
            // Never used, or the role may not read it (`pg_sequences`
            // hides both the same way).
            unreadable += 1;
            continue;
        };
        let (limit, percent) = if inc > 0 {
            let limit = column_max.map_or(max, |m| max.min(i64::from(m)));
            let range = (limit as f64 - min as f64).max(1.0);
            (limit, (last as f64 - min as f64) / range * 100.0)
        } else {
            let range = (max as f64 - min as f64).max(1.0);
            (min, (max as f64 - last as f64) / range * 100.0)
        };
        sequences.push(Sequence {
            name: r.get(0),
            last_value: last,
            limit,
            column: r.get(5),
            percent: (percent * 100.0).round() / 100.0,
        });
    }
    sequences.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    sequences.truncate(10);
    let invalid = tx.query(
        "SELECT format('%I.%I', n.nspname, c.relname), count(*) OVER ()
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT i.indisvalid ORDER BY 1 LIMIT 20",
        &[],
    )?;
    Ok(DatabaseScan {
        datname: datname.to_string(),
        oldest_tables,
        sequences,
        sequences_without_value: unreadable,
        invalid_count: invalid.first().map_or(0, |r| r.get(1)),
        invalid_indexes: invalid.iter().map(|r| r.get(0)).collect(),
        samples: vec![],
    })
}
