//! SIGHUP: validate everything (configuration, TLS pair, signing key), then
//! swap; a reload that fails leaves the agent serving exactly as before.

use std::time::Instant;

use tracing::{error, info, warn};

use super::error::SupervisorError;
use super::startup::{apply_logging, prefer_stderr_when_attended};
use super::state::{now_local, Supervisor};
use crate::config::{self, Config};
use crate::ipc::messages::ToWorker;
use crate::ipc::Role;
use crate::tls::TlsMaterial;

/// Reads the certificate and key the http worker will get, and checks they
/// make a server configuration.
pub(super) fn read_tls(config: &Config) -> Result<TlsMaterial, SupervisorError> {
    let read = |p: &std::path::Path| {
        crate::small_file::read(p, crate::small_file::Links::Follow).map_err(|source| {
            SupervisorError::Read {
                what: "",
                path: p.to_path_buf(),
                source,
            }
        })
    };
    let material = TlsMaterial {
        cert_pem: read(&config.temboard.ssl_cert_file)?,
        key_pem: read(&config.temboard.ssl_key_file)?,
    };
    // The exact bytes the http worker will get must make a server
    // configuration: a certificate copied before its key must not stop the
    // API (the old worker keeps serving).
    crate::tls::acceptor(&material).map_err(|e| SupervisorError::Tls {
        cert: config.temboard.ssl_cert_file.clone(),
        key: config.temboard.ssl_key_file.clone(),
        reason: e.to_string(),
    })?;
    Ok(material)
}

/// Reads the UI's public key and checks it parses: a reload with a broken key
/// is refused and the old one kept (9.0.1 never reloaded it at all).
pub(super) fn read_signing_key(config: &Config) -> Result<Option<String>, SupervisorError> {
    let Some(path) = &config.temboard.signing_public_key else {
        return Ok(None);
    };
    let pem =
        crate::small_file::read(path, crate::small_file::Links::Refuse).map_err(|source| {
            SupervisorError::Read {
                what: "signing key ",
                path: path.clone(),
                source,
            }
        })?;
    crate::signing::PublicKey::from_pem(&pem).map_err(|e| SupervisorError::SigningKey {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some(pem))
}

impl Supervisor {
    /// A refused reload: logged, shown by `/agent/self`, and systemd told
    /// the agent serves on as before.
    fn refuse_reload(&mut self, logged: String, shown: String) {
        error!("reload refused, keeping the current configuration:{logged}");
        self.last_reload_error = Some(shown);
        self.publish();
        self.notifier.send("READY=1");
    }

    pub(super) fn reload(&mut self) {
        info!(
            "SIGHUP: reloading configuration from {}",
            self.opts.request.configfile.display()
        );
        self.notifier.send("RELOADING=1");
        let loaded = match config::load(&self.opts.request) {
            Ok(l) => l,
            Err(e) => return self.refuse_reload(format!("\n{e}"), e.to_string()),
        };
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let mut new = loaded.config;
        prefer_stderr_when_attended(&mut new, &loaded.sources);
        // What the supervisor bound or decided at start cannot change live.
        let old = &self.config.temboard;
        if (new.temboard.address, new.temboard.port) != (old.address, old.port) {
            warn!(
                "[temboard] address/port changed: restart the agent to listen on {}:{}",
                new.temboard.address, new.temboard.port
            );
        }
        if new.temboard.home != old.home || new.temboard.user != old.user {
            warn!("[temboard] home/user changed: restart the agent to apply");
        }
        new.temboard.address = old.address;
        new.temboard.port = old.port;
        new.temboard.home = old.home.clone();
        new.temboard.user = old.user.clone();
        // Every file the workers get from us, checked before anything swaps.
        let material = read_tls(&new).and_then(|t| read_signing_key(&new).map(|k| (t, k)));
        let (tls, signing_key_pem) = match material {
            Ok(m) => m,
            Err(e) => return self.refuse_reload(format!(" {e}"), e.to_string()),
        };
        let tls_changed = tls != self.tls;
        // Everything checked: swap.
        self.sources = loaded.sources;
        self.last_reload_error = None;
        self.config = new;
        self.tls = tls;
        self.signing_key_pem = signing_key_pem;
        self.generation += 1;
        self.runtime.reload_datetime = now_local();
        match crate::logging::current() {
            Some(sink) => apply_logging(&sink, &self.config, &self.identity),
            None => {
                crate::logging::init("supervisor", &self.config.logging);
            }
        }
        for idx in 0..self.workers.len() {
            let role = self.workers[idx].role;
            if self.workers[idx].pid.is_none() {
                // A worker parked after a configuration error gets a new chance.
                if self.workers[idx].next_start.is_none() {
                    self.workers[idx].next_start = Some(Instant::now());
                }
                continue;
            }
            if role == Role::Http && tls_changed {
                info!("TLS certificate or key changed: restarting the http worker");
                self.workers[idx].planned_restart = true;
                self.send(idx, &ToWorker::Stop);
                continue;
            }
            let msg = ToWorker::Reload {
                generation: self.generation,
                settings: Box::new(self.settings_for(role)),
            };
            self.send(idx, &msg);
        }
        info!("configuration reloaded (generation {})", self.generation);
        self.notifier.send("READY=1");
        self.publish();
    }
}
