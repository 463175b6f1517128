//! Activity routes of both contracts: this worker only validates and
//! answers; PostgreSQL work goes to the probe worker. `POST /activity/kill`
//! has one shape in 2.x and 9.x, so one handler serves both.

use serde_json::{json, Value};

use super::probe::{Listing, Shape};
use super::calls::{ActivityCall, ActivityReply};
use crate::api::ApiError;
use crate::api::{Call, Handled, Reply};
use crate::api::AppState;

async fn listing(state: &AppState, which: Listing) -> Result<Reply, ApiError> {
    let call = ActivityCall::List {
        which,
        shape: Shape::V2,
        limit: None,
    };
    match state.call(call).await? {
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

/// 9.x default of `?limit=` (digits only: 406 where 9.0.1 answered 500,
/// facts 14.12).
pub const DEFAULT_LIMIT: u64 = 300;

/// A 9.x listing: `{"rows": [...], "columns": [...]}`.
async fn listing9(c: &Call<'_>, which: Listing) -> Result<Reply, ApiError> {
    let call = ActivityCall::List {
        which,
        shape: Shape::V9,
        limit: Some(i64::try_from(c.digits("limit", DEFAULT_LIMIT)?).unwrap_or(i64::MAX)),
    };
    match c.state.call(call).await? {
        ActivityReply::Table { columns, rows } => {
            Ok(Reply::Json(json!({ "rows": rows, "columns": columns })))
        }
        other => Err(ApiError::Internal(format!("unexpected reply {other:?}"))),
    }
}

/// 9.x `GET /activity`.
pub fn all9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { listing9(&c, Listing::All).await })
}

/// 9.x `GET /activity/waiting`.
pub fn waiting9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { listing9(&c, Listing::Waiting).await })
}

/// 9.x `GET /activity/blocking`.
pub fn blocking9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { listing9(&c, Listing::Blocking).await })
}

/// 9.x `GET /activity/sessions`.
pub fn sessions9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { listing9(&c, Listing::Sessions).await })
}

/// 9.x `GET /activity/locks`.
pub fn locks9(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { listing9(&c, Listing::Locks).await })
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
    state.notify_audit(&caller.username, notes).await?;
    let list: Vec<Value> = backends
        .into_iter()
        .map(|(pid, killed)| json!({"pid": pid, "killed": killed}))
        .collect();
    Ok(json!({ "backends": list }))
}

