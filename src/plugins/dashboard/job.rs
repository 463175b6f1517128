//! The periodic collection: host metrics read in the scheduler, PostgreSQL
//! ones from the probe worker, stored in the history. A failed collection
//! stores nothing and is logged once per change of state.

use std::time::Duration;

use tracing::{info, warn};

use super::calls::DashboardCall;
use super::{host, store};
use crate::config::Config;
use crate::api::Job;
use crate::api::JobHost;

/// The collection job.
#[derive(Default)]
pub struct Collect {
    error: Option<String>,
    last_cpu: Option<host::CpuTimes>,
}

impl Job for Collect {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    fn every(&self, config: &Config) -> Duration {
        Duration::from_secs(super::config::settings(config).scheduler_interval)
    }

    fn run(&mut self, jobs: &mut JobHost) {
        let settings = jobs.settings();
        let now = host::read_cpu();
        let cpu = match (self.last_cpu, now) {
            (Some(a), Some(b)) if a != b => host::cpu_percent(&a, &b),
            _ => host::cpu_sampled(),
        };
        self.last_cpu = now;
        let hostname = jobs.hostname();
        let mut set = host::host_set(&hostname, cpu);
        let result = match jobs.call(DashboardCall::Collect, Duration::from_secs(15)) {
            Ok(mut pg) => {
                let v9 = super::shape::split_v9(&mut pg, &std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
                set.extend(pg);
                let value = serde_json::Value::Object(set);
                store::push(
                    jobs.db(),
                    &value,
                    &v9,
                    super::config::settings(&settings.config).history_length,
                )
                .map_err(|e| format!("cannot store it: {e}"))
            }
            Err(e) => Err(e),
        };
        match (result, &self.error) {
            (Ok(()), Some(_)) => {
                info!("dashboard collection works again");
                self.error = None;
            }
            (Err(e), previous) if previous.as_deref() != Some(e.as_str()) => {
                warn!("dashboard collection failed, nothing stored: {e}");
                self.error = Some(e);
            }
            _ => {}
        }
    }
}
