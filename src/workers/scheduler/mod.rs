//! The scheduler worker: runs periodic jobs and asks the probe worker for data;
//! it never connects to PostgreSQL itself and holds no database password.
//!
//! Jobs today:
//! - `pg_check`: is PostgreSQL reachable (through the probe worker); logged once
//!   per change of state, not at every tick;
//! - `session_purge`: expired API sessions removed with a `Session expired`
//!   notification each.
//!
//! Dashboard collection, monitoring and the collector push join this table
//! with their issues.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use tracing::{error, info, warn};

use crate::ipc::client::SyncClient;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};
use crate::store::sessions;

use super::{Event, WorkerCtx};

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    PgCheck,
    SessionPurge,
}

impl Scheduler {
    fn every(&self, job: Job) -> Duration {
        match job {
            Job::PgCheck => Duration::from_secs(10),
            Job::SessionPurge => {
                let ttl = self.ctx.settings().config.temboard.session_ttl as f64;
                Duration::from_secs_f64((ttl / 10.0).clamp(1.0, 5.0))
            }
        }
    }

    fn run(&mut self, job: Job) {
        match job {
            Job::PgCheck => self.pg_check(),
            Job::SessionPurge => self.session_purge(),
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

    fn session_purge(&mut self) {
        let ttl = self.ctx.settings().config.temboard.session_ttl as f64;
        tracing::debug!("purging sessions idle for {ttl} s");
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
    let mut s = Scheduler {
        probe: SyncClient::new(settings.runtime.run_dir.join("probe.sock")),
        ctx: ctx.clone(),
        db,
        pg: PgState::Unknown,
        db_failing: false,
    };
    let start = Instant::now();
    let mut due: Vec<(Job, Instant)> = vec![(Job::PgCheck, start), (Job::SessionPurge, start)];
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
