//! Reaping: what a worker's death means (planned restart, configuration
//! error parked until reload, or a failure restarted with backoff), and a pid
//! that is not a worker logged rather than skipped.

use super::*;
use crate::ipc::WorkerExit;

impl Supervisor {
    pub(super) fn reap(&mut self) {
        let mut changed = false;
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => {
                    if changed && self.stop_deadline.is_none() {
                        self.publish();
                    }
                    return;
                }
                Ok(s) => s,
            };
            changed = true;
            let (pid, reason, code) = match status {
                WaitStatus::Exited(pid, code) => {
                    (pid, format!("exited with status {code}"), Some(code))
                }
                WaitStatus::Signaled(pid, sig, _) => {
                    (pid, format!("killed by signal {}", sig.as_str()), None)
                }
                _ => continue,
            };
            let stopping = self.stop_deadline.is_some();
            let Some(w) = self.workers.iter_mut().find(|w| w.pid == Some(pid)) else {
                // Not a worker (a grandchild reparented to us, say): said,
                // so a leak of processes shows in the log.
                warn!("reaped pid {pid}, which is not a worker: {reason}");
                continue;
            };
            let uptime = w.started.elapsed();
            w.pid = None;
            w.control = None;
            w.ready = false;
            w.last_exit = Some(reason.clone());
            if stopping {
                info!("{} worker (pid {pid}) {reason}", w.role.as_str());
                continue;
            }
            if w.planned_restart {
                w.planned_restart = false;
                info!(
                    "{} worker (pid {pid}) {reason}; restarting it with the new configuration",
                    w.role.as_str()
                );
                w.next_start = Some(Instant::now());
                continue;
            }
            if code.and_then(WorkerExit::from_code) == Some(WorkerExit::Config) {
                error!("{} worker (pid {pid}) {reason}: configuration unusable; not restarting it until reload", w.role.as_str());
                continue;
            }
            let delay = w.backoff.on_exit(&restart::DEFAULT, uptime);
            w.last_delay = Some(delay);
            w.restarts += 1;
            w.next_start = Some(Instant::now() + delay);
            error!(
                "{} worker (pid {pid}) {reason} after {:.1}s; restart #{} in {} ms",
                w.role.as_str(),
                uptime.as_secs_f64(),
                w.restarts,
                delay.as_millis()
            );
        }
    }
}
