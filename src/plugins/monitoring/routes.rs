//! Monitoring plugin routes: one probe run now (`/monitoring/probe/<name>`,
//! with deltas of its own so the collector's are never disturbed), the
//! configuration, and the pull history for collectors that prefer to pull.

use std::sync::{LazyLock, Mutex};

use serde_json::{json, Value};

use super::{deltas, payload};
use super::calls::MonitoringCall;
use super::probes::HOST_PROBES;
use crate::api::ApiError;
use crate::api::{Call, Handled, Reply};
use crate::api::AppState;

/// Delta state of the API probe routes (this worker's memory only), apart
/// from the collector's so they never disturb each other.
static API_DELTAS: LazyLock<Mutex<deltas::MemoryDeltas>> = LazyLock::new(Default::default);

/// `GET /monitoring/probe/<name>`.
pub fn probe(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let name = c.route.path.trim_start_matches("/monitoring/probe/");
        run_probe(c.state, name).await.map(Reply::Json)
    })
}

async fn run_probe(state: &AppState, name: &'static str) -> Result<Value, ApiError> {
    let config = state.ctx.settings().config.clone();
    let rows = if HOST_PROBES.contains(&name) {
        tokio::task::spawn_blocking(move || payload::host_probe(name))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        let call = MonitoringCall::Run {
            probes: vec![name.to_string()],
            dbnames: super::config::settings(&config).dbnames,
            limits: Some(super::calls::Limits::of(&config)),
        };
        match state.call(call).await? {
            Value::Object(mut m) => match m.remove(name) {
                Some(Value::Array(r)) => r,
                _ => vec![],
            },
            other => return Err(ApiError::Internal(format!("unexpected reply {other}"))),
        }
    };
    // 2.x: SQL counters are returned raw; cpu, process and wal_files as deltas.
    let rows = if matches!(name, "cpu" | "process" | "wal_files") {
        let mut store = API_DELTAS.lock().unwrap_or_else(|p| p.into_inner());
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
pub fn config(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let s = c.state.ctx.settings();
        Ok(Reply::Json(config_of(&s.config)))
    })
}

fn config_of(config: &crate::config::Config) -> Value {
    let m = &super::config::settings(config);
    json!({
        "dbnames": m.dbnames.clone().map(Value::from).unwrap_or_else(|| json!("*")),
        "probes": payload::probe_list(config),
        "scheduler_interval": m.scheduler_interval,
        "collector_url": m.collector_url,
        "queue_max_messages": m.queue_max_messages,
        "queue_max_age": m.queue_max_age,
    })
}

/// `GET /monitoring/history?start=<YYYY-MM-DDTHH:MM:SSZ>&limit=<n>`: stored
/// payloads collected after `start`, oldest first (default limit 50).
pub fn history(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { pull(&c).await.map(Reply::Json) })
}

async fn pull(c: &Call<'_>) -> Result<Value, ApiError> {
    let get = |k: &str| c.param(k);
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
    let rows = c
        .state
        .db
        .run(move |c| super::store::history(c, after, limit))
        .await?;
    Ok(Value::Array(
        rows.iter()
            .map(|p| serde_json::from_str(p).unwrap_or(Value::Null))
            .collect(),
    ))
}
