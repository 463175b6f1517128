//! The scheduler worker: runs periodic jobs and asks the probe worker for data;
//! it never connects to PostgreSQL itself and holds no database password.
//!
//! Jobs today: a PostgreSQL availability check whose result is logged once per
//! change of state (not at every tick). Dashboard collection, monitoring and
//! purges join this loop with their issues.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::ipc::client::SyncClient;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};

use super::{Event, WorkerCtx};

/// Interval of the availability check.
const CHECK_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
enum PgState {
    Unknown,
    Up,
    Down(String),
}

/// Runs the scheduler until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let probe: SyncClient<ProbeCall, ProbeReply> =
        SyncClient::new(ctx.settings().runtime.run_dir.join("probe.sock"));
    ctx.ready();
    let mut state = PgState::Unknown;
    let mut next = Instant::now();
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match ctx.events.recv_timeout(wait) {
            Ok(Event::Stop) => return 0,
            Ok(Event::Reloaded) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return 0,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        next = Instant::now() + CHECK_EVERY;
        let now = match probe.call(ProbeCall::PgCheck, Duration::from_secs(15)) {
            Ok(Ok(_)) => PgState::Up,
            Ok(Err(WorkerError::PostgresUnavailable(e))) => PgState::Down(e),
            Ok(Err(e)) => PgState::Down(e.to_string()),
            Err(e) => PgState::Down(format!("probe worker unavailable: {e}")),
        };
        if now != state {
            match &now {
                PgState::Up => info!("PostgreSQL is reachable"),
                PgState::Down(e) => warn!("PostgreSQL is not reachable: {e}"),
                PgState::Unknown => {}
            }
            state = now;
        }
    }
}
