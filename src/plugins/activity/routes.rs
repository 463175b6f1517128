//! Activity routes: this worker only validates and answers; PostgreSQL work
//! goes to the probe worker.

use serde_json::{json, Value};

use super::probe::Listing;
use super::{ActivityCall, ActivityReply};
use crate::workers::http::error::ApiError;
use crate::workers::http::routes::{Call, Handled, Reply};
use crate::workers::http::AppState;

async fn listing(state: &AppState, which: Listing) -> Result<Reply, ApiError> {
    match state.call(ActivityCall::List { which }).await? {
        ActivityReply::Rows { rows } => Ok(Reply::Json(json!({ "rows": rows }))),
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

/// `GET /activity`.
pub fn all(c: Call<'_>) -> Handled<'_> {
    Box::pin(listing(c.state, Listing::All))
}

/// `GET /activity/waiting`.
pub fn waiting(c: Call<'_>) -> Handled<'_> {
    Box::pin(listing(c.state, Listing::Waiting))
}

/// `GET /activity/blocking`.
pub fn blocking(c: Call<'_>) -> Handled<'_> {
    Box::pin(listing(c.state, Listing::Blocking))
}

/// Distinct pids one `POST /activity/kill` may name: far more than a DBA
/// selects in a UI, few enough that one request cannot hold the probe
/// worker or flood the notifications.
pub const MAX_KILL_PIDS: usize = 100;

/// `POST /activity/kill` with `{"pids": [int, ...]}`: pids deduplicated in
/// their order, at most [`MAX_KILL_PIDS`] (406 beyond), and a notification
/// only for each backend really terminated.
pub fn kill(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { kill_pids(&c).await.map(Reply::Json) })
}

async fn kill_pids(c: &Call<'_>) -> Result<Value, ApiError> {
    let (state, caller, body) = (c.state, c.caller()?, &c.body);
    let raw = body.get("pids").ok_or_else(|| ApiError::not_sent("pids"))?;
    let mut pids: Vec<i32> = raw
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect()
        })
        .ok_or_else(|| ApiError::malformed("pids"))?;
    let mut seen = std::collections::HashSet::new();
    pids.retain(|p| seen.insert(*p));
    if pids.len() > MAX_KILL_PIDS {
        return Err(ApiError::NotAcceptable(format!(
            "Parameter 'pids' names {} backends: at most {MAX_KILL_PIDS}.",
            pids.len()
        )));
    }
    let backends = match state.call(ActivityCall::Terminate { pids }).await? {
        ActivityReply::Terminated { backends } => backends,
        other => return Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    };
    let terminated: Vec<i32> = backends
        .iter()
        .filter(|(_, killed)| *killed)
        .map(|(p, _)| *p)
        .collect();
    let notes = terminated
        .iter()
        .map(|pid| format!("Backend {pid} terminated"))
        .collect();
    state.notify(&caller.username, notes).await?;
    let list: Vec<Value> = backends
        .into_iter()
        .map(|(pid, killed)| json!({"pid": pid, "killed": killed}))
        .collect();
    Ok(json!({ "backends": list }))
}

