//! Stopping: clients first, servers once the clients are gone, then the
//! sockets and pid file removed.

use super::*;

impl Supervisor {
    /// Stops the clients (http, scheduler) first, then the servers (probe,
    /// pgctl) once the clients are gone: a client must never wait on a server
    /// socket that nobody will serve again (the listeners stay open until we
    /// exit, so such a call would hang until its timeout).
    pub(super) fn begin_stop(&mut self) {
        if self.stop_deadline.is_some() {
            return;
        }
        info!("stopping: asking workers to finish");
        self.notifier.send("STOPPING=1");
        self.stop_deadline = Some(Instant::now() + STOP_GRACE);
        self.servers_stopping = false;
        for idx in 0..self.workers.len() {
            if self.workers[idx].pid.is_some() && !self.workers[idx].role.serves_ipc() {
                self.send(idx, &ToWorker::Stop);
            }
        }
        self.stop_servers_when_clients_gone();
    }

    pub(super) fn stop_servers_when_clients_gone(&mut self) {
        if self.servers_stopping {
            return;
        }
        let clients_gone = self
            .workers
            .iter()
            .all(|w| w.role.serves_ipc() || w.pid.is_none());
        let half_time = self
            .stop_deadline
            .is_some_and(|d| d.saturating_duration_since(Instant::now()) < STOP_GRACE / 2);
        if clients_gone || half_time {
            self.servers_stopping = true;
            for idx in 0..self.workers.len() {
                if self.workers[idx].pid.is_some() && self.workers[idx].role.serves_ipc() {
                    self.send(idx, &ToWorker::Stop);
                }
            }
        }
    }

    pub(super) fn cleanup(&mut self) {
        for role in self.unix.keys() {
            listeners::remove_socket(&self.run_fd, role.as_str(), &self.identity);
        }
        if let Some(p) = &self.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }
}
