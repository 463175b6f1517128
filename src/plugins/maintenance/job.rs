//! The dispatcher, in the scheduler: every second, the tasks whose time
//! has come are handed to the task worker, at most one per database and
//! `[maintenance] max_tasks` in all; the others wait their turn. A task the
//! task worker cannot take now goes back to `todo` for the next round.

use std::time::Duration;

use tracing::warn;

use super::{store, TaskCall};
use crate::config::Config;
use crate::plugins::Job;
use crate::workers::scheduler::JobHost;

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
        let cap = super::settings(&host.settings().config).max_tasks as usize;
        let now = store::now() as i64;
        let due = match store::claim_due(host.db(), now, cap) {
            Ok(d) => d,
            Err(e) => {
                warn!("maintenance: cannot read the tasks: {e}");
                return;
            }
        };
        for id in due {
            match host.call(TaskCall::Run { id: id.clone() }, Duration::from_secs(10)) {
                Ok(_) => self.failing = false,
                Err(e) => {
                    if !self.failing {
                        warn!("maintenance: task {id} not started, retrying: {e}");
                        self.failing = true;
                    }
                    let _ = store::unclaim(host.db(), &id);
                }
            }
        }
    }
}
