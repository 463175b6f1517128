//! The scheduler worker: runs periodic jobs and asks the probe worker for data;
//! it never connects to PostgreSQL itself and holds no database password.
//!
//! A host: its own jobs are the agent's (`pg_check`: is PostgreSQL reachable,
//! logged once per change of state; `session_purge`: expired API sessions
//! removed, and the heartbeat `/health` reads); plugins' jobs
//! ([`crate::api::Job`]) run here too, only while their plugin is
//! loaded, each with a [`JobHost`].

pub mod host;

use host::JobHost;

use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::api::Job;
use crate::ipc::client::SyncClient;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};
use crate::plugins::REGISTRY;
use crate::store::sessions;

use super::ctx::{Event, WorkerCtx};

#[derive(Debug, Clone, PartialEq, Eq)]
enum PgState {
    Unknown,
    Up,
    Down(String),
}

struct Scheduler {
    host: JobHost,
    pg: PgState,
    /// PostgreSQL's start and configuration load times, and whether it
    /// was a standby, last recorded.
    stamp: Option<(i64, i64, bool)>,
    db_failing: bool,
}

/// What runs: one of the agent's own jobs, or a plugin's.
enum Task {
    PgCheck,
    SessionPurge,
    Plugin(&'static str, Box<dyn Job>),
}

impl Scheduler {
    fn every(&self, task: &Task) -> Duration {
        let settings = self.host.ctx.settings();
        match task {
            Task::PgCheck => Duration::from_secs(10),
            Task::SessionPurge => {
                let ttl = settings.config.temboard.session_ttl as f64;
                Duration::from_secs_f64((ttl / 10.0).clamp(1.0, 5.0))
            }
            Task::Plugin(_, job) => job.every(&settings.config),
        }
    }

    fn run(&mut self, task: &mut Task) {
        match task {
            Task::PgCheck => self.pg_check(),
            Task::SessionPurge => self.session_purge(),
            Task::Plugin(plugin, job) => {
                if self.host.ctx.settings().config.has_plugin(plugin) {
                    tracing::trace!("job {}", job.name());
                    job.run(&mut self.host);
                }
            }
        }
    }

    fn pg_check(&mut self) {
        let now = match self
            .host
            .probe
            .call(ProbeCall::PgStamp, Duration::from_secs(15))
        {
            Ok(Ok(ProbeReply::PgStamp {
                started,
                conf_loaded,
                in_recovery,
                timeline,
            })) => {
                self.role_check(in_recovery, timeline);
                // Read by the http worker: its discover documents are kept
                // until PostgreSQL restarts, reloads its configuration or
                // is promoted.
                let stamp = Some((started, conf_loaded, in_recovery));
                if stamp != self.stamp {
                    let db = &self.host.db;
                    let written = crate::store::meta::set(db, "pg_started", started as f64)
                        .and_then(|_| {
                            crate::store::meta::set(db, "pg_conf_loaded", conf_loaded as f64)
                        })
                        .and_then(|_| {
                            let standby = if in_recovery { 1.0 } else { 0.0 };
                            crate::store::meta::set(db, "pg_in_recovery", standby)
                        });
                    match written {
                        Ok(()) => self.stamp = stamp,
                        Err(e) => warn!("cannot record when PostgreSQL started: {e}"),
                    }
                }
                PgState::Up
            }
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

    /// Notices a promotion or a demotion (against the role last recorded,
    /// so one that happened while the agent was stopped counts too): a
    /// notification for the operators, a log line, and for `/metrics` the
    /// role, the timeline and the number of changes. The probes follow by
    /// themselves: each asks `pg_is_in_recovery()` as it runs.
    fn role_check(&mut self, in_recovery: bool, timeline: Option<i64>) {
        let db = &self.host.db;
        let recorded = crate::store::meta::get(db, "pg_in_recovery").ok().flatten();
        let standby = if in_recovery { 1.0 } else { 0.0 };
        if let Some(t) = timeline {
            let _ = crate::store::meta::set(db, "pg_timeline", t as f64);
        }
        match recorded {
            Some(was) if was != standby => {}
            _ => return,
        }
        let on = timeline.map_or(String::new(), |t| format!(" on timeline {t}"));
        let message = if in_recovery {
            format!("PostgreSQL is now a standby{on} (it was a primary)")
        } else {
            format!("PostgreSQL was promoted: now a primary{on}")
        };
        warn!("{message}");
        let changes = crate::store::meta::get(db, "pg_role_changes")
            .ok()
            .flatten()
            .unwrap_or(0.0);
        let written = crate::store::meta::set(db, "pg_role_changes", changes + 1.0)
            .and_then(|_| crate::store::notifications::push_audit(db, "temboard-agent", &message))
            .and_then(|_| crate::store::meta::set(db, "pg_in_recovery", standby));
        if let Err(e) = written {
            warn!("cannot record the role change: {e}");
        }
    }

    fn session_purge(&mut self) {
        let ttl = self.host.ctx.settings().config.temboard.session_ttl as f64;
        tracing::debug!("purging sessions idle for {ttl} s");
        // Heartbeat read by /health: this job runs every few seconds.
        let _ = crate::store::meta::set(&self.host.db, "scheduler_heartbeat", sessions::now());
        match sessions::purge_expired(&mut self.host.db, ttl) {
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
    let Some(db) = super::ctx::open_store(&ctx) else {
        return 1;
    };
    let mut s = Scheduler {
        host: JobHost {
            probe: SyncClient::new(settings.runtime.run_dir.join("probe.sock")),
            task: SyncClient::new(settings.runtime.run_dir.join("task.sock")),
            ctx: ctx.clone(),
            db,
            hostname: None,
        },
        pg: PgState::Unknown,
        stamp: None,
        db_failing: false,
    };
    let start = Instant::now();
    let mut due: Vec<(Task, Instant)> = vec![(Task::PgCheck, start), (Task::SessionPurge, start)];
    for p in REGISTRY {
        for job in (p.jobs)() {
            due.push((Task::Plugin(p.name, job), start));
        }
    }
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
        for (task, at) in due.iter_mut() {
            if *at <= now {
                s.run(task);
                *at = Instant::now() + s.every(task);
            }
        }
    }
}
