//! The collector sender (facts 10.5, with our decisions): a thread of the
//! scheduler process that POSTs queued payloads oldest first to
//! `[monitoring] collector_url` with `X-Key`. A payload leaves the queue only
//! after a 2xx; a 409 drops it with a log line; any other failure keeps it and
//! retries with a doubling backoff (never a tight loop). State changes are
//! logged once.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::Connection;
use tracing::{error, info, warn};

use super::store as queue;
use crate::store::sessions::now;

use crate::api::WorkerCtx;

/// First retry delay after a failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

enum Outcome {
    Sent,
    Refused,
    Failed(String),
}

fn send(agent: &ureq::Agent, url: &str, key: Option<&str>, payload: &str) -> Outcome {
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.header("X-Key", k);
    }
    match req.send(payload) {
        Ok(resp) if resp.status().is_success() => Outcome::Sent,
        Ok(resp) if resp.status().as_u16() == 409 => Outcome::Refused,
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            let msg = crate::http_client::error_of(&body);
            Outcome::Failed(format!("HTTP {status} {msg}").trim().to_string())
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Runs the sender until the wake channel closes.
pub fn run(ctx: WorkerCtx, wake: Receiver<()>) {
    let home = ctx.settings().config.temboard.home.clone();
    let db: Connection = match crate::store::open(&home) {
        Ok(c) => c,
        Err(e) => {
            error!("collector sender disabled: {e}");
            return;
        }
    };
    let mut failing: Option<String> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let mut warned_unverified = false;
    loop {
        let wait = retry_at
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        match wake.recv_timeout(wait) {
            Err(RecvTimeoutError::Disconnected) => return,
            Ok(()) if retry_at.is_some_and(|t| t > Instant::now()) => continue, // backing off
            _ => {}
        }
        retry_at = None;
        let settings = ctx.settings();
        let m = &super::config::settings(&settings.config);
        let Some(url) = m.collector_url.clone() else {
            continue;
        };
        if m.ssl_ca_cert_file.is_none() && url.starts_with("https") && !warned_unverified {
            warn!("collector certificate not verified: set [monitoring] ssl_ca_cert_file");
            warned_unverified = true;
        }
        let client = match crate::http_client::agent(m.ssl_ca_cert_file.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                error!("collector sender: {e}");
                continue;
            }
        };
        let key = settings.config.temboard.key.clone();
        loop {
            let next = match queue::oldest_unsent(&db) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    error!("collector queue unreadable: {e}");
                    break;
                }
            };
            match send(&client, &url, key.as_deref(), &next.1) {
                Outcome::Sent => {
                    if let Some(was) = failing.take() {
                        let left = queue::backlog(&db).unwrap_or(0);
                        info!("collector reachable again (was: {was}); {left} queued payload(s) to send");
                    }
                    backoff = FIRST_BACKOFF;
                    let _ = crate::store::meta::set(&db, "collector_last_success", now());
                    if let Err(e) = queue::mark_sent(&db, next.0, now()) {
                        error!("cannot mark payload sent: {e}");
                        break;
                    }
                }
                Outcome::Refused => {
                    warn!(
                        "collector refused payload #{} (409 Conflict): dropped",
                        next.0
                    );
                    let _ = queue::mark_sent(&db, next.0, now());
                }
                Outcome::Failed(why) => {
                    if failing.as_deref() != Some(why.as_str()) {
                        warn!("cannot send to the collector ({why}); payloads stay queued, retrying with backoff");
                        failing = Some(why);
                    }
                    retry_at = Some(Instant::now() + backoff);
                    let cap = MAX_BACKOFF
                        .min(Duration::from_secs(10 * m.scheduler_interval).max(FIRST_BACKOFF));
                    backoff = (backoff * 2).min(cap);
                    break;
                }
            }
        }
    }
}
