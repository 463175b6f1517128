//! The periodic collection: SQL probes (probe worker) and host probes, deltas
//! kept in SQLite, the payload stored in the durable queue; the sender thread
//! ([`super::sender`]), started with the first collection, pushes it.

use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{error, info, warn};

use super::{deltas, payload, store, MonitoringCall, HOST_PROBES, V9_ONLY};
use crate::config::Config;
use crate::plugins::Job;
use crate::store::sessions;
use crate::workers::scheduler::JobHost;

/// The collection job.
#[derive(Default)]
pub struct Collect {
    /// Wakes the sender after each collection (`None` until it started).
    wake_sender: Option<crossbeam_channel::Sender<()>>,
    /// Collections in a row without the SQL probes (logged when the run
    /// starts and ends, not at every collection).
    sql_failures: u64,
}

impl Collect {
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
        let probes = payload::probe_list(config);
        let section = super::config::settings(config);
        let dbnames = section.dbnames.clone();
        let sql: Vec<String> = probes
            .iter()
            .filter(|p| !HOST_PROBES.contains(&p.as_str()))
            .cloned()
            .collect();
        let call = MonitoringCall::Run {
            probes: sql,
            dbnames: dbnames.clone(),
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
        let instance_name = config.postgresql.instance.clone();
        match jobs.db().transaction() {
            Ok(tx) => {
                let mut deltas_store = deltas::SqliteDeltas(&tx);
                for p in &probes {
                    let rows = if HOST_PROBES.contains(&p.as_str()) {
                        payload::host_probe(p)
                    } else {
                        match sql_rows.remove(p) {
                            Some(Value::Array(r)) => r,
                            _ => vec![],
                        }
                    };
                    let rows = deltas::apply(p, &instance_name, rows, now, &mut deltas_store);
                    data.insert(p.clone(), Value::Array(rows));
                }
                if let Err(e) = tx.commit() {
                    error!("cannot store monitoring deltas: {e}");
                }
            }
            Err(e) => error!("cannot store monitoring deltas: {e}"),
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
            &doc9.to_string(),
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
        match store::push(jobs.db(), &text, now, keep) {
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
