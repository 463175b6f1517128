//! The scheduler worker: runs periodic jobs and asks the probe worker for data;
//! it never connects to PostgreSQL itself and holds no database password.
//!
//! Jobs today:
//! - `pg_check`: is PostgreSQL reachable (through the probe worker); logged once
//!   per change of state, not at every tick;
//! - `session_purge`: expired API sessions removed with a `Session expired`
//!   notification each;
//! - `dashboard`: the dashboard set (host metrics read here, PostgreSQL ones
//!   from the probe worker) stored in the history every
//!   `[dashboard] scheduler_interval`, when the plugin is loaded. A failed
//!   collection stores nothing and is logged once per change of state.
//!
//! - `monitoring`: every `[monitoring] scheduler_interval`, the SQL probes
//!   (probe worker) and host probes, deltas kept in SQLite, the payload stored
//!   in the durable queue; the sender thread ([`sender`]) pushes it.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use tracing::{error, info, warn};

use crate::ipc::client::SyncClient;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};
use crate::store::sessions;

use super::{Event, WorkerCtx};

pub mod sender;

#[derive(Debug, Clone, PartialEq, Eq)]
enum PgState {
    Unknown,
    Up,
    Down(String),
}

struct Scheduler {
    ctx: WorkerCtx,
    probe: SyncClient<ProbeCall, ProbeReply>,
    db: Connection,
    pg: PgState,
    db_failing: bool,
    dashboard_error: Option<String>,
    last_cpu: Option<crate::dashboard::CpuTimes>,
    hostname: Option<String>,
    wake_sender: crossbeam_channel::Sender<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    PgCheck,
    SessionPurge,
    Dashboard,
    Monitoring,
}

impl Scheduler {
    fn every(&self, job: Job) -> Duration {
        match job {
            Job::PgCheck => Duration::from_secs(10),
            Job::SessionPurge => {
                let ttl = self.ctx.settings().config.temboard.session_ttl as f64;
                Duration::from_secs_f64((ttl / 10.0).clamp(1.0, 5.0))
            }
            Job::Dashboard => {
                Duration::from_secs(self.ctx.settings().config.dashboard.scheduler_interval)
            }
            Job::Monitoring => {
                Duration::from_secs(self.ctx.settings().config.monitoring.scheduler_interval)
            }
        }
    }

    fn run(&mut self, job: Job) {
        match job {
            Job::PgCheck => self.pg_check(),
            Job::SessionPurge => self.session_purge(),
            Job::Dashboard => self.dashboard(),
            Job::Monitoring => self.monitoring(),
        }
    }

    fn pg_check(&mut self) {
        let now = match self.probe.call(ProbeCall::PgCheck, Duration::from_secs(15)) {
            Ok(Ok(_)) => PgState::Up,
            Ok(Err(WorkerError::PostgresUnavailable(e))) => PgState::Down(e),
            Ok(Err(e)) => PgState::Down(e.to_string()),
            Err(e) => PgState::Down(format!("probe worker unavailable: {e}")),
        };
        if now != self.pg {
            match &now {
                PgState::Up => info!("PostgreSQL is reachable"),
                PgState::Down(e) => warn!("PostgreSQL is not reachable: {e}"),
                PgState::Unknown => {}
            }
            self.pg = now;
        }
    }

    fn dashboard(&mut self) {
        let settings = self.ctx.settings();
        if !settings.config.has_plugin("dashboard") {
            return;
        }
        let now = crate::dashboard::read_cpu();
        let cpu = match (self.last_cpu, now) {
            (Some(a), Some(b)) if a != b => crate::dashboard::cpu_percent(&a, &b),
            _ => crate::dashboard::cpu_sampled(),
        };
        self.last_cpu = now;
        let hostname = self.hostname();
        let mut set = crate::dashboard::host_set(&hostname, cpu);
        let result = match self
            .probe
            .call(ProbeCall::Dashboard, Duration::from_secs(15))
        {
            Ok(Ok(ProbeReply::Document {
                value: serde_json::Value::Object(pg),
            })) => {
                set.extend(pg);
                let value = serde_json::Value::Object(set);
                crate::store::dashboard::push(
                    &mut self.db,
                    &value,
                    settings.config.dashboard.history_length,
                )
                .map_err(|e| format!("cannot store it: {e}"))
            }
            Ok(Ok(other)) => Err(format!("unexpected probe reply {other:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("probe worker unavailable: {e}")),
        };
        match (result, &self.dashboard_error) {
            (Ok(()), Some(_)) => {
                info!("dashboard collection works again");
                self.dashboard_error = None;
            }
            (Err(e), previous) if previous.as_deref() != Some(e.as_str()) => {
                warn!("dashboard collection failed, nothing stored: {e}");
                self.dashboard_error = Some(e);
            }
            _ => {}
        }
    }

    fn hostname(&mut self) -> String {
        match &self.ctx.settings().config.temboard.hostname {
            Some(h) => h.clone(),
            None => self
                .hostname
                .get_or_insert_with(crate::host::system_fqdn)
                .clone(),
        }
    }

    fn monitoring(&mut self) {
        use crate::monitoring::{deltas, payload, HOST_PROBES};
        let settings = self.ctx.settings();
        let config = &settings.config;
        if !config.has_plugin("monitoring") {
            return;
        }
        let started = Instant::now();
        let probes = payload::probe_list(config);
        let dbnames = config.monitoring.dbnames.clone();
        let sql: Vec<String> = probes
            .iter()
            .filter(|p| !HOST_PROBES.contains(&p.as_str()))
            .cloned()
            .collect();
        let call = ProbeCall::Monitoring {
            probes: sql,
            dbnames: dbnames.clone(),
        };
        let mut sql_rows = match self.probe.call(call, Duration::from_secs(120)) {
            Ok(Ok(ProbeReply::Document {
                value: serde_json::Value::Object(m),
            })) => m,
            other => {
                warn!("monitoring SQL probes unavailable: {other:?}");
                serde_json::Map::new()
            }
        };
        let now = sessions::now();
        let mut data = serde_json::Map::new();
        let instance_name = config.postgresql.instance.clone();
        match self.db.transaction() {
            Ok(tx) => {
                let mut store = deltas::SqliteDeltas(&tx);
                for p in &probes {
                    let rows = if HOST_PROBES.contains(&p.as_str()) {
                        payload::host_probe(p)
                    } else {
                        match sql_rows.remove(p) {
                            Some(serde_json::Value::Array(r)) => r,
                            _ => vec![],
                        }
                    };
                    let rows = deltas::apply(p, &instance_name, rows, now, &mut store);
                    data.insert(p.clone(), serde_json::Value::Array(rows));
                }
                if let Err(e) = tx.commit() {
                    error!("cannot store monitoring deltas: {e}");
                }
            }
            Err(e) => error!("cannot store monitoring deltas: {e}"),
        }
        let instance = match self.probe.call(
            ProbeCall::MonitoringInstance { dbnames },
            Duration::from_secs(60),
        ) {
            Ok(Ok(ProbeReply::Document { value })) => value,
            _ => serde_json::json!({ "available": false }),
        };
        let hostname = self.hostname();
        let doc = payload::build(config, &hostname, instance, data);
        let keep = crate::store::monitoring::Retention {
            max_rows: config.monitoring.queue_max_messages as i64,
            max_age: config.monitoring.queue_max_age as f64,
        };
        match crate::store::monitoring::push(&mut self.db, &doc.to_string(), now, keep) {
            Ok(0) => {}
            Ok(n) => {
                warn!("monitoring queue over its bounds: {n} oldest unsent payload(s) dropped")
            }
            Err(e) => error!("cannot queue the monitoring payload: {e}"),
        }
        let _ = self.wake_sender.try_send(());
        let _ = crate::store::meta::set(
            &self.db,
            "monitoring_last_duration",
            started.elapsed().as_secs_f64(),
        );
        tracing::debug!(
            "monitoring collection took {:.1} ms ({} probes, payload {} bytes)",
            started.elapsed().as_secs_f64() * 1000.0,
            probes.len(),
            doc.to_string().len()
        );
    }

    fn session_purge(&mut self) {
        let ttl = self.ctx.settings().config.temboard.session_ttl as f64;
        tracing::debug!("purging sessions idle for {ttl} s");
        // Heartbeat read by /health: this job runs every few seconds.
        let _ = crate::store::meta::set(&self.db, "scheduler_heartbeat", sessions::now());
        match sessions::purge_expired(&mut self.db, ttl) {
            Ok(users) => {
                for u in users {
                    info!("session of user '{u}' expired");
                }
                if self.db_failing {
                    info!("state database writable again");
                    self.db_failing = false;
                }
            }
            Err(e) => {
                if !self.db_failing {
                    error!("session purge failed: {e}");
                    self.db_failing = true;
                }
            }
        }
    }
}

/// Runs the scheduler until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let settings = ctx.settings();
    let db = match crate::store::open(&settings.config.temboard.home) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    let (wake_sender, wakes) = crossbeam_channel::bounded(1);
    let sender_ctx = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("sender".into())
        .spawn(move || sender::run(sender_ctx, wakes));
    if let Err(e) = spawned {
        error!("cannot start the collector sender: {e}");
    }
    let mut s = Scheduler {
        probe: SyncClient::new(settings.runtime.run_dir.join("probe.sock")),
        ctx: ctx.clone(),
        db,
        pg: PgState::Unknown,
        db_failing: false,
        dashboard_error: None,
        last_cpu: None,
        hostname: None,
        wake_sender,
    };
    let start = Instant::now();
    let mut due: Vec<(Job, Instant)> = vec![
        (Job::PgCheck, start),
        (Job::SessionPurge, start),
        (Job::Dashboard, start),
        (Job::Monitoring, start),
    ];
    ctx.ready();
    loop {
        let next = due.iter().map(|(_, at)| *at).min().unwrap_or(start);
        match ctx
            .events
            .recv_timeout(next.saturating_duration_since(Instant::now()))
        {
            Ok(Event::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return 0,
            Ok(Event::Reloaded) => {
                // Intervals may have changed: run everything soon with the new ones.
                let now = Instant::now();
                for (_, at) in due.iter_mut() {
                    *at = (*at).min(now + Duration::from_millis(100));
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        for (job, at) in due.iter_mut() {
            if *at <= now {
                s.run(*job);
                *at = Instant::now() + s.every(*job);
            }
        }
    }
}
