//! Monitoring plugin routes: one probe run now (`/monitoring/probe/<name>`,
//! with deltas of its own so the collector's are never disturbed), the
//! configuration, and the pull history for collectors that prefer to pull.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::error::ApiError;
use super::pgconf::Query;
use super::AppState;
use crate::ipc::messages::{ProbeCall, ProbeReply};
use crate::monitoring::{deltas, payload, HOST_PROBES};

/// Delta state of the API probe routes (this worker's memory only).
#[derive(Debug, Default)]
pub struct ApiDeltas(Mutex<deltas::MemoryDeltas>);

/// `GET /monitoring/probe/<name>`.
pub async fn probe(state: &AppState, name: &'static str) -> Result<Value, ApiError> {
    let config = state.ctx.settings().config.clone();
    let rows = if HOST_PROBES.contains(&name) {
        tokio::task::spawn_blocking(move || payload::host_probe(name))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        let call = ProbeCall::Monitoring {
            probes: vec![name.to_string()],
            dbnames: config.monitoring.dbnames.clone(),
        };
        let reply = state
            .probe
            .call(call, super::IPC_TIMEOUT)
            .await
            .map_err(|e| ApiError::from_call("probe", Err(e)))?
            .map_err(|e| ApiError::from_call("probe", Ok(e)))?;
        match reply {
            ProbeReply::Document {
                value: Value::Object(mut m),
            } => match m.remove(name) {
                Some(Value::Array(r)) => r,
                _ => vec![],
            },
            other => {
                return Err(ApiError::Internal(format!(
                    "unexpected probe reply {other:?}"
                )))
            }
        }
    };
    // 2.x: SQL counters are returned raw; cpu, process and wal_files as deltas.
    let rows = if matches!(name, "cpu" | "process" | "wal_files") {
        let mut store = state.api_deltas.0.lock().unwrap_or_else(|p| p.into_inner());
        deltas::apply(
            name,
            &config.postgresql.instance,
            rows,
            crate::store::sessions::now(),
            &mut *store,
        )
    } else {
        rows
    };
    Ok(json!({ name: rows }))
}

/// `GET /monitoring/config`.
pub fn config(state: &AppState) -> Value {
    let s = state.ctx.settings();
    let m = &s.config.monitoring;
    json!({
        "dbnames": m.dbnames.clone().map(Value::from).unwrap_or_else(|| json!("*")),
        "probes": payload::probe_list(&s.config),
        "scheduler_interval": m.scheduler_interval,
        "collector_url": m.collector_url,
        "queue_max_messages": m.queue_max_messages,
        "queue_max_age": m.queue_max_age,
    })
}

/// `GET /monitoring/history?start=<YYYY-MM-DDTHH:MM:SSZ>&limit=<n>`: stored
/// payloads collected after `start`, oldest first (default limit 50).
pub async fn history(state: &AppState, q: &Query) -> Result<Value, ApiError> {
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let after = match get("start") {
        None => 0.0,
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp() as f64 + f64::from(d.timestamp_subsec_millis()) / 1000.0)
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                    .map(|d| d.and_utc().timestamp() as f64)
            })
            .map_err(|_| ApiError::malformed("start"))?,
    };
    let limit = match get("limit") {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::malformed("limit"))?,
    };
    let rows = state
        .db
        .run(move |c| crate::store::monitoring::history(c, after, limit))
        .await?;
    Ok(Value::Array(
        rows.iter()
            .map(|p| serde_json::from_str(p).unwrap_or(Value::Null))
            .collect(),
    ))
}
