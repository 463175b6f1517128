//! The dispatcher, in the scheduler: every second, the tasks whose time
//! has come are handed to the task worker, at most one per database and
//! `[maintenance] max_tasks` in all; the others wait their turn. A task the
//! task worker cannot take now goes back to `todo` for the next round.

use std::time::Duration;

use tracing::warn;

use super::calls::RunnerCall;
use super::store;
use crate::config::Config;
use crate::api::Job;
use crate::api::JobHost;

/// The plugin's jobs.
pub fn jobs() -> Vec<Box<dyn Job>> {
    vec![Box::new(Dispatch { failing: false })]
}

struct Dispatch {
    /// Whether the last round could not reach the task worker (logged once).
    failing: bool,
}

impl Job for Dispatch {
    fn name(&self) -> &'static str {
        "maintenance_dispatch"
    }

    fn every(&self, _config: &Config) -> Duration {
        Duration::from_secs(1)
    }

    fn run(&mut self, host: &mut JobHost) {
        let cap = super::config::settings(&host.settings().config).max_tasks as usize;
        let now = store::now() as i64;
        let due = match store::claim_due(host.db(), now, cap) {
            Ok(d) => d,
            Err(e) => {
                warn!("maintenance: cannot read the tasks: {e}");
                return;
            }
        };
        let mut due = due.into_iter();
        while let Some(id) = due.next() {
            match host.call(RunnerCall::Run { id: id.clone() }, Duration::from_secs(10)) {
                Ok(_) => self.failing = false,
                Err(e) => {
                    if !self.failing {
                        warn!("maintenance: task {id} not started, retrying: {e}");
                        self.failing = true;
                    }
                    // The task worker is away: this one and the rest wait
                    // for the next round (the scheduler's other jobs do
                    // not wait behind ten-second timeouts).
                    for id in std::iter::once(id).chain(due.by_ref()) {
                        let _ = store::unclaim(host.db(), &id);
                    }
                }
            }
        }
    }
}
