//! The checks' schedule, in the scheduler: the instance-wide checks every
//! `[risks] interval`, the per-database scans every `tables_interval` in a
//! thread of their own (a long scan on a big cluster never delays the
//! instance checks), both through the probe worker; after each run the
//! latest observations are judged and the findings replaced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::{info, warn};

use super::calls::{Observed, RisksCall};
use super::config::{self, Settings};
use super::{judge, store};
use crate::api::{Job, JobHost};
use crate::config::Config;
use crate::ipc::messages::{ProbeCall, ProbeReply};

/// The checks' job.
#[derive(Default)]
pub struct Check {
    /// When the last per-database scan started.
    scan_started: Option<Instant>,
    /// The scan's thread's state.
    scan: Arc<Mutex<Scan>>,
    /// The last failure of the instance checks (logged once per change).
    failing: Option<String>,
}

#[derive(Default)]
struct Scan {
    running: bool,
    /// A finished scan's observation, to be stored by the next run.
    done: Option<Value>,
}

/// Longest the scheduler waits for the instance checks: under its 30 s
/// heartbeat, so a PostgreSQL that stalls never makes the scheduler look
/// dead (the run fails, `error` says so, the next one tries again; the
/// probe worker's own `statement_timeout` ends the queries).
const INSTANCE_WAIT: Duration = Duration::from_secs(20);

/// Longest the per-database scans may take in all (each query has its own
/// timeout; this bounds a worker that stopped answering).
fn wait(s: &Settings, parts: u64) -> Duration {
    Duration::from_secs(s.get("statement_timeout") * parts + 10)
}

fn iso(at: f64) -> String {
    chrono::DateTime::from_timestamp(at as i64, ((at.fract()) * 1e9) as u32)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

impl Check {
    /// Starts the per-database scans unless they are running.
    fn start_scan(&mut self, jobs: &JobHost, s: &Settings) {
        let mut scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        if scan.running {
            return;
        }
        scan.running = true;
        drop(scan);
        self.scan_started = Some(Instant::now());
        let state = Arc::clone(&self.scan);
        let ctx = jobs.ctx();
        let call = RisksCall::Databases {
            statement_timeout: s.get("statement_timeout"),
            lock_timeout: s.get("lock_timeout"),
            tables_per_database: s.get("tables_per_database"),
            tables_in_all: s.get("tables_in_all"),
        };
        // Per database: a generous bound (1,000 databases at most).
        let limit = wait(s, 3) * 1000;
        let spawned = std::thread::Builder::new().name("risks-scan".into()).spawn(move || {
            let settings = ctx.settings();
            let client: crate::ipc::client::SyncClient<ProbeCall, ProbeReply> =
                crate::ipc::client::SyncClient::new(settings.runtime.run_dir.join("probe.sock"));
            let began = Instant::now();
            let reply = serde_json::to_value(call).ok().map(|call| {
                client.call(ProbeCall::Plugin { plugin: "risks".into(), call }, limit)
            });
            let done = match reply {
                Some(Ok(Ok(ProbeReply::Plugin { value }))) => {
                    tracing::debug!(
                        "risks: per-database scans took {:.1} ms ({} databases)",
                        began.elapsed().as_secs_f64() * 1000.0,
                        value["scans"].as_array().map_or(0, Vec::len)
                    );
                    Some(value)
                }
                other => {
                    warn!("risks: the per-database scans failed: {other:?}");
                    None
                }
            };
            let mut scan = state.lock().unwrap_or_else(|p| p.into_inner());
            scan.running = false;
            scan.done = done;
        });
        if let Err(e) = spawned {
            warn!("risks: cannot start the per-database scans: {e}");
            self.scan.lock().unwrap_or_else(|p| p.into_inner()).running = false;
        }
    }
}

impl Job for Check {
    fn name(&self) -> &'static str {
        "risks"
    }

    fn every(&self, config: &Config) -> Duration {
        Duration::from_secs(config::settings(config).get("interval"))
    }

    fn run(&mut self, jobs: &mut JobHost) {
        let s = config::settings(&jobs.settings().config);
        let now = crate::store::sessions::now();
        let tables_every = Duration::from_secs(s.get("tables_interval"));
        if self.scan_started.is_none_or(|t| t.elapsed() >= tables_every) {
            self.start_scan(jobs, &s);
        }
        let done = self.scan.lock().unwrap_or_else(|p| p.into_inner()).done.take();
        if let Some(scan) = done {
            if let Err(e) = store::put_observed(jobs.db(), "databases", now, &scan) {
                warn!("risks: cannot store the per-database scans: {e}");
            }
        }
        let call = RisksCall::Instance {
            statement_timeout: s.get("statement_timeout"),
            lock_timeout: s.get("lock_timeout"),
        };
        let began = Instant::now();
        let instance = match jobs.call(call, INSTANCE_WAIT) {
            Ok(Observed::Instance(i)) => {
                tracing::debug!(
                    "risks: instance checks took {:.1} ms",
                    began.elapsed().as_secs_f64() * 1000.0
                );
                i
            }
            Ok(other) => {
                warn!("risks: unexpected reply {other:?}");
                return;
            }
            Err(e) => {
                if self.failing.as_deref() != Some(e.as_str()) {
                    warn!("risks: the checks could not read PostgreSQL: {e}");
                    self.failing = Some(e.clone());
                }
                let report = json!({"checked_at": iso(now), "error": e});
                let _ = store::put_observed(jobs.db(), "failure", now, &report);
                return;
            }
        };
        if self.failing.take().is_some() {
            info!("risks: the checks read PostgreSQL again");
        }
        if let Err(e) = judge_and_store(jobs, &s, &instance, now) {
            warn!("risks: cannot store the findings: {e}");
        }
    }
}

/// Judges the latest observations and replaces the findings.
fn judge_and_store(
    jobs: &mut JobHost,
    s: &Settings,
    instance: &super::calls::Instance,
    now: f64,
) -> rusqlite::Result<()> {
    // Patroni's certificate is checked against the agent's CA file, as the UI's.
    let ca = jobs.settings().config.temboard.ssl_ca_cert_file.clone();
    let db = jobs.db();
    let scanned = store::observed(db, "databases")?;
    let (scans, scan_failed) = match scanned.as_ref().map(|(_, v)| serde_json::from_value(v.clone())) {
        Some(Ok(Observed::Databases { scans, failed })) => (scans, failed),
        _ => (vec![], vec![]),
    };
    let mut memory = store::memory(db)?;
    let mut findings = judge::judge(instance, &scans, s, &mut memory, now);
    let member = s
        .patroni_url
        .as_ref()
        .map(|url| (url, super::patroni::read(url, ca.as_deref())));
    if let Some((url, m)) = &member {
        let lag = s.pair("replication_lag_warning_mb", "replication_lag_critical_mb");
        findings.push(super::patroni::finding(m, url, lag));
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    }
    store::put_findings(db, &findings, &memory)?;
    let uses: Vec<(String, i64)> = instance
        .disks
        .iter()
        .map(|d| (d.path.clone(), d.total_bytes - d.free_bytes))
        .collect();
    store::put_disk_use(db, now, &uses)?;
    let errors: Vec<_> = instance.failed.iter().chain(scan_failed.iter()).collect();
    let report = json!({
        "checked_at": iso(now),
        "tables_checked_at": scanned.map(|(at, _)| iso(at)),
        "in_recovery": instance.in_recovery,
        "errors": errors,
    });
    store::put_observed(db, "report", now, &report)?;
    let mut samples = super::families::from_instance(instance);
    samples.extend(instance.samples.iter().cloned());
    if let Some((_, m)) = &member {
        samples.extend(super::patroni::samples(m));
    }
    store::put_observed(db, "metrics", now, &json!(samples))?;
    db.execute("DELETE FROM risks_observed WHERE kind = 'failure'", [])?;
    Ok(())
}
