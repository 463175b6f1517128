//! Dashboard plugin routes (facts 9): the last collected set, history, live
//! computation and the single-metric routes (all live, as in 2.x).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::calls::DashboardCall;
use super::{host as dashboard, store as history};
use crate::store::notifications;
use crate::api::ApiError;
use crate::api::{Call, Handled, Reply};
use crate::api::AppState;

/// How long a `/dashboard` answer is reused while nothing was written.
const CACHE_FOR: Duration = Duration::from_millis(100);

/// Notifications embedded in `/dashboard`.
const NOTIFICATIONS: i64 = 15;

async fn hostname(state: &AppState) -> String {
    match &state.ctx.settings().config.temboard.hostname {
        Some(h) => h.clone(),
        None => state.system_fqdn().await,
    }
}

/// Last `/dashboard` answer: (database epoch, when, body). The http worker is
/// one process, so the plugin keeps it here rather than in the host's state.
static CACHE: Mutex<Option<(u64, Instant, Bytes)>> = Mutex::new(None);

/// The PostgreSQL part in its 2.x shape (the 9.x-only figures dropped).
async fn pg_part(state: &AppState) -> Result<Map<String, Value>, ApiError> {
    let mut pg = state.call(DashboardCall::Collect).await?;
    pg.remove(super::probe::TOTAL_SIZE_BYTES);
    Ok(pg)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn with_notifications(
    state: &AppState,
    mut set: Map<String, Value>,
) -> Result<Value, ApiError> {
    let list = state
        .db
        .run(|c| notifications::list(c, NOTIFICATIONS))
        .await?;
    set.insert(
        "notifications".into(),
        serde_json::to_value(list).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(Value::Object(set))
}

/// The full set computed now (`/dashboard/live`, and `/dashboard` before the
/// first collection).
pub fn live(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { live_set(c.state).await.map(Reply::Json) })
}

async fn live_set(state: &AppState) -> Result<Value, ApiError> {
    let name = hostname(state).await;
    let (host, pg) = tokio::join!(
        blocking(move || dashboard::host_set(&name, dashboard::cpu_sampled())),
        pg_part(state)
    );
    let mut set = host?;
    set.extend(pg?);
    with_notifications(state, set).await
}

/// `GET /dashboard`: the last collected set with the 15 newest
/// notifications, as JSON text.
///
/// This route is polled by every open UI, so it is the hot one: both reads
/// are one trip to the blocking pool, and the stored set (a JSON object
/// without a `notifications` key, written by the scheduler) is answered as
/// stored with the notifications spliced in, never parsed and re-serialized.
///
/// The answer is also kept for [`CACHE_FOR`] while this worker writes
/// nothing to the database (its login, logout and action notifications bump
/// the epoch): the scheduler stores a new set every `scheduler_interval`
/// seconds (1 at least), so a UI sees a new set or a notification written by
/// another process at most 100 ms later.
pub fn last(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { last_set(c.state).await.map(|b| Reply::RawJson(b, vec![])) })
}

async fn last_set(state: &AppState) -> Result<Bytes, ApiError> {
    let epoch = state.db.epoch();
    if let Some((at_epoch, at, body)) = CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        if *at_epoch == epoch && at.elapsed() < CACHE_FOR {
            return Ok(body.clone());
        }
    }
    let (last, list) = state
        .db
        .read(|c| {
            Ok((
                history::last_text(c)?,
                notifications::list(c, NOTIFICATIONS)?,
            ))
        })
        .await?;
    let notes = serde_json::to_string(&list).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = match last.as_deref().map(str::trim_end) {
        Some(set) if set.starts_with('{') && set.ends_with('}') => {
            let body = &set[..set.len() - 1];
            let sep = if body.trim_end() == "{" { "" } else { ", " };
            Bytes::from(format!("{body}{sep}\"notifications\": {notes}}}"))
        }
        // Before the first collection: computed now, never cached.
        _ => return Ok(Bytes::from(live_set(state).await?.to_string())),
    };
    *CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((epoch, Instant::now(), body.clone()));
    Ok(body)
}

/// `GET /dashboard/history`: oldest first.
pub fn history(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let rows = c.state.db.run(|c| history::history(c)).await?;
        Ok(Reply::Json(Value::Array(rows)))
    })
}

/// 9.x `GET /dashboard`: the last sample (`{}` before the first), the 15
/// newest notifications and the 9.x status object.
pub fn last9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let state = c.state;
        let last = state.db.read(|c| history::history_v9(c, true)).await?;
        let mut sample = match last.first() {
            Some((set, v9)) => super::shape::sample_v9(set, v9),
            None => json!({}),
        };
        let notes = state.notification_list(NOTIFICATIONS).await?;
        let (status, _) = state.status_document().await?;
        if let Value::Object(m) = &mut sample {
            m.insert("notifications".into(), notes);
            m.insert("status".into(), status);
        }
        Ok(Reply::Json(sample))
    })
}

/// 9.x `GET /dashboard/history`: the stored samples, oldest first.
pub fn history9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let rows = c.state.db.read(|c| history::history_v9(c, false)).await?;
        Ok(Reply::Json(Value::Array(
            rows.iter().map(|(set, v9)| super::shape::sample_v9(set, v9)).collect(),
        )))
    })
}

/// `GET /dashboard/config` (the same in 2.x and 9.x).
pub fn config(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let d = super::config::settings(&c.state.ctx.settings().config);
        Ok(Reply::Json(json!({
            "scheduler_interval": d.scheduler_interval,
            "history_length": d.history_length,
        })))
    })
}

/// The single-metric routes: `/dashboard/<metric>`.
pub fn metric(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let name = c.route.path.trim_start_matches("/dashboard/");
        one_metric(c.state, name).await.map(Reply::Json)
    })
}

async fn one_metric(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let value = match name {
        "cpu" => blocking(dashboard::cpu_sampled).await?,
        "loadaverage" => json!(dashboard::loadaverage()),
        "memory" => blocking(dashboard::memory).await?,
        "hostname" => json!(hostname(state).await),
        "os_version" => json!(dashboard::os_version_full()),
        "n_cpu" => json!(crate::host::cpu_count()),
        "info" => {
            let pg = pg_part(state).await?;
            let mut m = Map::new();
            m.insert("hostname".into(), json!(hostname(state).await));
            m.insert("os_version".into(), json!(dashboard::os_version_full()));
            for k in ["pg_uptime", "pg_version", "pg_data", "pg_port"] {
                m.insert(k.into(), pg.get(k).cloned().unwrap_or(Value::Null));
            }
            return Ok(Value::Object(m));
        }
        pg_key => pg_part(state).await?.remove(pg_key).unwrap_or(Value::Null),
    };
    let mut m = Map::new();
    m.insert(name.to_string(), value);
    Ok(Value::Object(m))
}
