//! The control channel of each worker: frames sent and read without ever
//! blocking the loop, and what the supervisor does with each message.

use super::*;

impl Supervisor {
    pub(super) fn send(&mut self, idx: usize, msg: &ToWorker) {
        let w = &mut self.workers[idx];
        let Some(c) = &mut w.control else { return };
        let bytes = match encode(msg) {
            Ok(b) => b,
            Err(e) => {
                error!("cannot encode message for {}: {e}", w.role.as_str());
                return;
            }
        };
        // Messages are small; a bounded blocking write keeps the loop simple.
        let result = c
            .set_nonblocking(false)
            .and_then(|_| c.set_write_timeout(Some(Duration::from_secs(2))))
            .and_then(|_| c.write_all(&bytes))
            .and_then(|_| c.set_nonblocking(true));
        if let Err(e) = result {
            warn!("cannot talk to {} worker: {e}", w.role.as_str());
        }
    }

    /// Reads what a worker sent and handles every complete message. Messages
    /// are taken out after each read, so the decoder never holds more than
    /// one frame (its length is checked against the cap from its header)
    /// plus one read: a worker flooding its socket cannot grow the
    /// supervisor's memory.
    pub(super) fn read_control(&mut self, idx: usize) {
        let mut buf = [0u8; 8192];
        loop {
            let w = &mut self.workers[idx];
            let Some(c) = &mut w.control else { return };
            match c.read(&mut buf) {
                Ok(0) => {
                    // The worker is exiting; waitpid tells us how.
                    w.control = None;
                    return;
                }
                Ok(n) => {
                    w.decoder.push(&buf[..n]);
                    if !self.drain_control(idx) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("control socket of {} worker: {e}", w.role.as_str());
                    w.control = None;
                    return;
                }
            }
        }
    }

    /// Handles the complete messages received; false when the worker sent
    /// garbage and was killed.
    pub(super) fn drain_control(&mut self, idx: usize) -> bool {
        loop {
            let w = &mut self.workers[idx];
            match w.decoder.next_message::<ToSupervisor>() {
                Ok(Some(msg)) => self.on_message(idx, msg),
                Ok(None) => return true,
                Err(e) => {
                    error!(
                        "garbage on control socket of {} worker ({e}); killing it",
                        w.role.as_str()
                    );
                    if let Some(pid) = w.pid {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                    w.control = None;
                    w.decoder = Decoder::default();
                    return false;
                }
            }
        }
    }

    pub(super) fn on_message(&mut self, idx: usize, msg: ToSupervisor) {
        let role = self.workers[idx].role;
        match msg {
            ToSupervisor::Hello {
                role: said,
                protocol,
                pid,
            } => {
                if said != role || protocol != PROTOCOL {
                    error!("worker pid {pid} says it is {said:?} protocol {protocol}; expected {role:?} protocol {PROTOCOL}; killing it");
                    if let Some(p) = self.workers[idx].pid {
                        let _ = kill(p, Signal::SIGKILL);
                    }
                }
            }
            ToSupervisor::Ready { generation } => {
                self.workers[idx].ready = true;
                self.publish();
                tracing::debug!("{} worker ready (generation {generation})", role.as_str());
                if role == Role::Http {
                    // Pid file first: the launcher exits as soon as it hears
                    // "ready", and scripts then read the pid file.
                    if let Some(p) = self.pidfile.clone() {
                        if let Err(e) = daemon::write_pidfile(&p) {
                            error!("{e}");
                        }
                    }
                    self.launcher.ready();
                    self.notifier.send("READY=1");
                }
            }
            ToSupervisor::Reloaded { generation } => {
                tracing::debug!("{} worker applied generation {generation}", role.as_str());
            }
        }
    }
}
