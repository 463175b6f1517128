//! Delta state of the monitoring probes (facts 10.2): counters turned into
//! differences since the previous run, with `measure_interval`. The first run
//! of a key yields no row; a negative difference (a counter reset) discards the
//! sample. The collector keeps its state in SQLite (it survives restarts); the
//! API routes keep their own in memory, so they never disturb the collector.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

/// Where previous measures are kept.
pub trait DeltaStore {
    /// Stores `measure` for `key` and returns the previous one.
    fn swap(
        &mut self,
        key: &str,
        now: f64,
        measure: &Map<String, Value>,
    ) -> Option<(f64, Map<String, Value>)>;
}

/// In-memory store (API routes).
#[derive(Debug, Default)]
pub struct MemoryDeltas(HashMap<String, (f64, Map<String, Value>)>);

impl DeltaStore for MemoryDeltas {
    fn swap(
        &mut self,
        key: &str,
        now: f64,
        measure: &Map<String, Value>,
    ) -> Option<(f64, Map<String, Value>)> {
        self.0.insert(key.to_string(), (now, measure.clone()))
    }
}

/// SQLite store (the collector), table `monitoring_deltas`.
pub struct SqliteDeltas<'a>(pub &'a Connection);

impl DeltaStore for SqliteDeltas<'_> {
    fn swap(
        &mut self,
        key: &str,
        now: f64,
        measure: &Map<String, Value>,
    ) -> Option<(f64, Map<String, Value>)> {
        let prev: Option<(f64, String)> = self
            .0
            .query_row(
                "SELECT measure_time, measure FROM monitoring_deltas WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()
            .flatten();
        let _ = self.0.execute(
            "INSERT INTO monitoring_deltas (key, measure_time, measure) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET measure_time = excluded.measure_time, measure = excluded.measure",
            params![key, now, Value::Object(measure.clone()).to_string()],
        );
        prev.and_then(|(t, m)| match serde_json::from_str(&m) {
            Ok(Value::Object(map)) => Some((t, map)),
            _ => None,
        })
    }
}

/// Counters of a probe and the field that tells rows apart.
pub fn spec(probe: &str) -> Option<(&'static [&'static str], Option<&'static str>)> {
    Some(match probe {
        "xacts" => (&["n_commit", "n_rollback"], Some("dbname")),
        "blocks" => (&["blks_read", "blks_hit"], Some("dbname")),
        "bgwriter" => (
            &[
                "checkpoints_timed",
                "checkpoints_req",
                "checkpoint_write_time",
                "checkpoint_sync_time",
                "buffers_checkpoint",
                "buffers_clean",
                "maxwritten_clean",
                "buffers_backend",
                "buffers_backend_fsync",
                "buffers_alloc",
            ],
            None,
        ),
        "wal_files" => (&["written_size"], None),
        "cpu" => (
            &[
                "time_user",
                "time_system",
                "time_idle",
                "time_iowait",
                "time_steal",
            ],
            Some("cpu"),
        ),
        "process" => (&["context_switches", "forks"], None),
        "temp_files_size_delta" => (&["size"], Some("dbname")),
        _ => return None,
    })
}

/// Turns raw rows of `probe` into delta rows (probes without deltas pass through).
pub fn apply(
    probe: &str,
    instance: &str,
    rows: Vec<Value>,
    now: f64,
    store: &mut dyn DeltaStore,
) -> Vec<Value> {
    let Some((cols, key_field)) = spec(probe) else {
        return rows;
    };
    let mut out = vec![];
    for row in rows {
        let Value::Object(mut m) = row else { continue };
        let tag = key_field
            .and_then(|k| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = format!("{probe}/{instance}/{tag}");
        let measure: Map<String, Value> = cols
            .iter()
            .filter_map(|c| m.get(*c).map(|v| (c.to_string(), v.clone())))
            .collect();
        let Some((then, prev)) = store.swap(&key, now, &measure) else {
            continue;
        };
        let mut ok = true;
        for c in cols.iter() {
            let (Some(cur), Some(old)) = (m.get(*c), prev.get(*c)) else {
                continue;
            };
            let delta = if let (Some(a), Some(b)) = (cur.as_i64(), old.as_i64()) {
                json!(a - b)
            } else {
                json!(cur.as_f64().unwrap_or(0.0) - old.as_f64().unwrap_or(0.0))
            };
            if delta.as_f64().unwrap_or(0.0) < 0.0 {
                ok = false;
            }
            m.insert(c.to_string(), delta);
        }
        if ok {
            m.insert("measure_interval".into(), json!(now - then));
            out.push(Value::Object(m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_nothing_then_deltas_and_resets_discarded() {
        let mut s = MemoryDeltas::default();
        let row =
            |c: i64| vec![json!({"dbname": "db1", "n_commit": c, "n_rollback": 1, "port": 5432})];
        assert!(apply("xacts", "main", row(10), 100.0, &mut s).is_empty());
        let r = apply("xacts", "main", row(25), 160.0, &mut s);
        assert_eq!(
            r,
            vec![
                json!({"dbname": "db1", "n_commit": 15, "n_rollback": 0, "port": 5432, "measure_interval": 60.0})
            ]
        );
        assert!(
            apply("xacts", "main", row(3), 220.0, &mut s).is_empty(),
            "counter reset discarded"
        );
        assert_eq!(
            apply("xacts", "main", row(4), 280.0, &mut s)[0]["n_commit"],
            1
        );
        let wal = |w: f64| vec![json!({"written_size": w})];
        apply("wal_files", "main", wal(1000.0), 1.0, &mut s);
        assert_eq!(
            apply("wal_files", "main", wal(4096.5), 2.0, &mut s)[0]["written_size"],
            3096.5
        );
        let raw = vec![json!({"dbname": "x", "size": 1})];
        assert_eq!(apply("db_size", "main", raw.clone(), 1.0, &mut s), raw);
    }

    #[test]
    fn sqlite_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = crate::store::open(dir.path()).unwrap();
            assert!(apply(
                "process",
                "main",
                vec![json!({"context_switches": 5, "forks": 1})],
                1.0,
                &mut SqliteDeltas(&c)
            )
            .is_empty());
        }
        let c = crate::store::open(dir.path()).unwrap();
        let r = apply(
            "process",
            "main",
            vec![json!({"context_switches": 9, "forks": 3})],
            3.0,
            &mut SqliteDeltas(&c),
        );
        assert_eq!(r[0]["context_switches"], 4);
        assert_eq!(r[0]["measure_interval"], 2.0);
    }
}
