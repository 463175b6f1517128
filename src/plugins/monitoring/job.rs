//! The periodic collection: SQL probes (probe worker) and host probes, deltas
//! kept in SQLite, the payload stored in the durable queue; the sender thread
//! ([`super::sender`]), started with the first collection, pushes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{error, info, warn};

use super::{deltas, payload, store};
use super::calls::MonitoringCall;
use super::probes::{HOST_PROBES, PER_DATABASE, V9_ONLY};
use crate::ipc::messages::{ProbeCall, ProbeReply};
use crate::config::Config;
use crate::api::Job;
use crate::store::sessions;
use crate::api::JobHost;

/// The collection job.
#[derive(Default)]
pub struct Collect {
    /// Wakes the sender after each collection (`None` until it started).
    wake_sender: Option<crossbeam_channel::Sender<()>>,
    /// Collections in a row without the SQL probes (logged when the run
    /// starts and ends, not at every collection).
    sql_failures: u64,
    /// When each probe last ran (for `probe_intervals`).
    last_run: HashMap<String, Instant>,
    /// The per-database probes' run, apart from the collection.
    slow: Arc<Mutex<Slow>>,
    /// The last rows of each per-database probe (the bloat estimates), dated
    /// by the run that measured them: repeated in every document until the
    /// next run, so the UI's alerting checks always have a value (UI 10.0
    /// shows a check `UNDEF` after a document without its metric, and the
    /// estimates run hourly).
    last_slow: serde_json::Map<String, Value>,
}

/// The state of the per-database probes: at most one run at a time; its
/// rows wait for the next collection's document.
#[derive(Default)]
struct Slow {
    running: bool,
    /// (run start, ISO; rows by probe) of a finished run not yet stored.
    done: Option<(String, serde_json::Map<String, Value>)>,
}

/// Longest the per-database probes may take in all (each query has its own
/// `statement_timeout`; this bounds a worker that stopped answering).
const SLOW_WAIT: Duration = Duration::from_secs(3600);

impl Collect {
    /// Whether `probe` is due now; records the run if so. A probe is due a
    /// little early (half a scheduler interval) rather than a whole
    /// interval late.
    fn due(&mut self, probe: &str, section: &super::config::Settings) -> bool {
        let every = Duration::from_secs(section.interval_of(probe));
        let slack = Duration::from_secs(section.scheduler_interval) / 2;
        let due = self
            .last_run
            .get(probe)
            .is_none_or(|at| at.elapsed() + slack >= every);
        if due {
            self.last_run.insert(probe.to_string(), Instant::now());
        }
        due
    }

    /// Starts the per-database probes in a thread of their own, unless a
    /// run is still going: a stuck estimate on a big database costs one
    /// connection and its own samples, never the collection's.
    fn start_slow(&self, jobs: &JobHost, probes: Vec<String>, dbnames: Option<Vec<String>>) {
        let mut slow = self.slow.lock().unwrap_or_else(|p| p.into_inner());
        if slow.running {
            warn!("per-database probes ({}) still running: this run skipped", probes.join(", "));
            return;
        }
        slow.running = true;
        drop(slow);
        let state = Arc::clone(&self.slow);
        let ctx = jobs.ctx();
        let spawned = std::thread::Builder::new()
            .name("per-database".into())
            .spawn(move || {
                let settings = ctx.settings();
                let limits = super::calls::Limits::of(&settings.config);
                let run_start = chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
                    .to_string();
                let client: crate::ipc::client::SyncClient<ProbeCall, ProbeReply> =
                    crate::ipc::client::SyncClient::new(settings.runtime.run_dir.join("probe.sock"));
                let began = Instant::now();
                let call = MonitoringCall::PerDatabase { probes, dbnames, limits };
                let reply = serde_json::to_value(call)
                    .ok()
                    .map(|call| client.call(ProbeCall::Plugin { plugin: "monitoring".into(), call }, SLOW_WAIT));
                let rows = match reply {
                    Some(Ok(Ok(ProbeReply::Plugin { value: Value::Object(m) }))) => {
                        tracing::debug!(
                            "per-database probes took {:.1} ms ({} databases)",
                            began.elapsed().as_secs_f64() * 1000.0,
                            m.values()
                                .filter_map(serde_json::Value::as_array)
                                .map(Vec::len)
                                .max()
                                .unwrap_or(0)
                        );
                        Some(m)
                    }
                    other => {
                        warn!("per-database probes failed: {other:?}");
                        None
                    }
                };
                let mut slow = state.lock().unwrap_or_else(|p| p.into_inner());
                slow.running = false;
                slow.done = rows.map(|r| (run_start, r));
            });
        if let Err(e) = spawned {
            error!("cannot start the per-database probes: {e}");
            self.slow.lock().unwrap_or_else(|p| p.into_inner()).running = false;
        }
    }

    fn wake_sender(&mut self, jobs: &JobHost) {
        if self.wake_sender.is_none() {
            let (tx, wakes) = crossbeam_channel::bounded(1);
            let ctx = jobs.ctx();
            let spawned = std::thread::Builder::new()
                .name("sender".into())
                .spawn(move || super::sender::run(ctx, wakes));
            match spawned {
                Ok(_) => self.wake_sender = Some(tx),
                Err(e) => error!("cannot start the collector sender: {e}"),
            }
        }
        if let Some(tx) = &self.wake_sender {
            let _ = tx.try_send(());
        }
    }
}

impl Job for Collect {
    fn name(&self) -> &'static str {
        "monitoring"
    }

    fn every(&self, config: &Config) -> Duration {
        Duration::from_secs(super::config::settings(config).scheduler_interval)
    }

    fn run(&mut self, jobs: &mut JobHost) {
        let settings = jobs.settings();
        let config = &settings.config;
        let started = Instant::now();
        let run_start = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
            .to_string();
        let section = super::config::settings(config);
        let probes: Vec<String> = payload::probe_list(config)
            .into_iter()
            .filter(|p| self.due(p, &section))
            .collect();
        let dbnames = section.dbnames.clone();
        let per_database: Vec<String> = probes
            .iter()
            .filter(|p| PER_DATABASE.contains(&p.as_str()))
            .cloned()
            .collect();
        if !per_database.is_empty() {
            self.start_slow(jobs, per_database, dbnames.clone());
        }
        let sql: Vec<String> = probes
            .iter()
            .filter(|p| !HOST_PROBES.contains(&p.as_str()) && !PER_DATABASE.contains(&p.as_str()))
            .cloned()
            .collect();
        let call = MonitoringCall::Run {
            probes: sql,
            dbnames: dbnames.clone(),
            limits: Some(super::calls::Limits::of(config)),
        };
        let mut sql_rows = match jobs.call(call, Duration::from_secs(120)) {
            Ok(Value::Object(m)) => {
                if self.sql_failures > 0 {
                    info!(
                        "monitoring SQL probes available again after {} collection(s) without them",
                        self.sql_failures
                    );
                    self.sql_failures = 0;
                }
                m
            }
            other => {
                if self.sql_failures == 0 {
                    warn!("monitoring SQL probes unavailable: {other:?}; collecting host probes only until they answer");
                }
                self.sql_failures += 1;
                serde_json::Map::new()
            }
        };
        let now = sessions::now();
        let mut data = serde_json::Map::new();
        // Raw counters of the delta probes (the 9.x metrics' counters).
        let mut raw = serde_json::Map::new();
        let instance_name = config.postgresql.instance.clone();
        match jobs.db().transaction() {
            Ok(tx) => {
                let mut deltas_store = deltas::SqliteDeltas(&tx);
                for p in &probes {
                    if PER_DATABASE.contains(&p.as_str()) {
                        continue; // from their own run, below
                    }
                    let rows = if HOST_PROBES.contains(&p.as_str()) {
                        payload::host_probe(p)
                    } else {
                        match sql_rows.remove(p) {
                            Some(Value::Array(r)) => r,
                            _ => vec![],
                        }
                    };
                    if deltas::spec(p).is_some() {
                        raw.insert(p.clone(), Value::Array(rows.clone()));
                    }
                    let rows = deltas::apply(p, &instance_name, rows, now, &mut deltas_store);
                    data.insert(p.clone(), Value::Array(rows));
                }
                if let Err(e) = tx.commit() {
                    error!("cannot store monitoring deltas: {e}");
                }
            }
            Err(e) => error!("cannot store monitoring deltas: {e}"),
        }
        // A finished per-database run goes into this document, its records
        // dated by their own run.
        let finished = self
            .slow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .done
            .take();
        if let Some((started_at, rows)) = finished {
            for (probe, list) in rows {
                let list: Vec<Value> = match list {
                    Value::Array(l) => l
                        .into_iter()
                        .map(|mut r| {
                            if let Value::Object(m) = &mut r {
                                m.insert("datetime".into(), Value::from(started_at.clone()));
                            }
                            r
                        })
                        .collect(),
                    _ => vec![],
                };
                self.last_slow.insert(probe, Value::Array(list));
            }
        }
        for probe in payload::probe_list(config) {
            if PER_DATABASE.contains(&probe.as_str()) {
                if let Some(rows) = self.last_slow.get(&probe) {
                    data.insert(probe, rows.clone());
                }
            }
        }
        let mut instance = jobs
            .call(MonitoringCall::Instance { dbnames }, Duration::from_secs(60))
            .unwrap_or_else(|_| serde_json::json!({ "available": false }));
        let v9 = match &mut instance {
            Value::Object(m) => m.remove("v9").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let hostname = jobs.hostname();
        // The 2.x payload keeps exactly the 2.x probes.
        let data2: serde_json::Map<String, Value> = data
            .iter()
            .filter(|(k, _)| !V9_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let doc = payload::build(config, &hostname, instance.clone(), data2);
        let end = chrono::Utc::now();
        let doc9 = payload::build9(
            config,
            &hostname,
            doc["hostinfo"].clone(),
            &instance,
            &v9,
            &data,
            (
                &run_start,
                &end.format("%Y-%m-%d %H:%M:%S +0000").to_string(),
            ),
        );
        if let Err(e) = store::push9(
            jobs.db(),
            end.timestamp(),
            (&doc9.to_string(), &Value::Object(raw).to_string()),
            now,
            section.history_retention,
        ) {
            error!("cannot store the monitoring document: {e}");
        }
        let keep = store::Retention {
            max_rows: section.queue_max_messages as i64,
            max_age: section.queue_max_age as f64,
        };
        let text = doc.to_string();
        let queued = section.collector_url.is_some();
        match store::push(jobs.db(), &text, now, keep, queued) {
            Ok(0) => {}
            Ok(n) => {
                warn!("monitoring queue over its bounds: {n} oldest unsent payload(s) dropped")
            }
            Err(e) => error!("cannot queue the monitoring payload: {e}"),
        }
        self.wake_sender(jobs);
        let _ = crate::store::meta::set(
            jobs.db(),
            "monitoring_last_duration",
            started.elapsed().as_secs_f64(),
        );
        tracing::debug!(
            "monitoring collection took {:.1} ms ({} probes, payload {} bytes)",
            started.elapsed().as_secs_f64() * 1000.0,
            probes.len(),
            text.len()
        );
    }
}
