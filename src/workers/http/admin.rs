//! Handlers of the activity and administration plugins (facts 7 and 8) and of
//! the operations routes. PostgreSQL work goes to the probe worker, control
//! actions to the pg_ctl worker; this worker only validates and answers.

use serde_json::{json, Value};

use super::core::Caller;
use super::error::ApiError;
use super::AppState;
use crate::ipc::messages::{PgCtlCall, PgCtlReply, ProbeCall, ProbeReply};
use crate::store::{notifications, operations};
use crate::workers::pgctl::{ACTIONS, CALL_TIMEOUT};

async fn probe(state: &AppState, call: ProbeCall) -> Result<ProbeReply, ApiError> {
    state
        .probe
        .call(call, super::IPC_TIMEOUT)
        .await
        .map_err(|e| ApiError::from_call("probe", Err(e)))?
        .map_err(|e| ApiError::from_call("probe", Ok(e)))
}

/// `GET /activity`, `/activity/waiting`, `/activity/blocking`.
pub async fn activity(state: &AppState, call: ProbeCall) -> Result<Value, ApiError> {
    match probe(state, call).await? {
        ProbeReply::Rows { rows } => Ok(json!({ "rows": rows })),
        other => Err(ApiError::Internal(format!(
            "unexpected probe reply {other:?}"
        ))),
    }
}

/// Distinct pids one `POST /activity/kill` may name: far more than a DBA
/// selects in a UI, few enough that one request cannot hold the probe
/// worker or flood the notifications.
pub const MAX_KILL_PIDS: usize = 100;

/// `POST /activity/kill` with `{"pids": [int, ...]}`: pids deduplicated in
/// their order, at most [`MAX_KILL_PIDS`] (406 beyond), and a notification
/// only for each backend really terminated.
pub async fn kill(state: &AppState, caller: Caller, body: &Value) -> Result<Value, ApiError> {
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
    let backends = match probe(state, ProbeCall::Terminate { pids }).await? {
        ProbeReply::Terminated { backends } => backends,
        other => {
            return Err(ApiError::Internal(format!(
                "unexpected probe reply {other:?}"
            )))
        }
    };
    let terminated: Vec<i32> = backends
        .iter()
        .filter(|(_, killed)| *killed)
        .map(|(p, _)| *p)
        .collect();
    let user = caller.username.clone();
    state
        .db
        .run(move |c| {
            let tx = c.transaction()?;
            for pid in terminated {
                notifications::push(&tx, &user, &format!("Backend {pid} terminated"))?;
            }
            tx.commit()
        })
        .await?;
    let list: Vec<Value> = backends
        .into_iter()
        .map(|(pid, killed)| json!({"pid": pid, "killed": killed}))
        .collect();
    Ok(json!({ "backends": list }))
}

/// `GET /administration/pg_version`.
pub async fn pg_version(state: &AppState) -> Result<Value, ApiError> {
    match probe(state, ProbeCall::PgVersion).await? {
        ProbeReply::PgVersion {
            full,
            server_version,
        } => Ok(json!({
            "numeric": crate::workers::probe::activity::numeric_version(&server_version),
            "full": full,
        })),
        other => Err(ApiError::Internal(format!(
            "unexpected probe reply {other:?}"
        ))),
    }
}

/// `POST /administration/control` with `{"action": "start"|"stop"|"restart"|"reload"}`.
pub async fn control(state: &AppState, caller: Caller, body: &Value) -> Result<Value, ApiError> {
    let action = body
        .get("action")
        .ok_or_else(|| ApiError::not_sent("action"))?;
    let action = action
        .as_str()
        .filter(|a| ACTIONS.contains(a))
        .ok_or_else(|| ApiError::malformed("action"))?
        .to_string();
    let call = PgCtlCall::Control {
        action: action.clone(),
        username: caller.username,
    };
    let reply = state
        .pgctl
        .call(call, CALL_TIMEOUT)
        .await
        .map_err(|e| ApiError::from_call("pgctl", Err(e)))?
        .map_err(|e| ApiError::from_call("pgctl", Ok(e)))?;
    match reply {
        PgCtlReply::Done {
            state: s,
            operation,
        } => Ok(json!({ "action": action, "state": s, "operation": operation })),
        PgCtlReply::Pong => Err(ApiError::Internal("unexpected pgctl reply".into())),
    }
}

/// `GET /operations`: newest first.
pub async fn list_operations(state: &AppState) -> Result<Value, ApiError> {
    let ops = state
        .db
        .run(|c| operations::list(c, operations::MAX_ROWS))
        .await?;
    Ok(json!({ "operations": ops }))
}

/// `GET /operations/{id}`.
pub async fn operation(state: &AppState, id: String) -> Result<Value, ApiError> {
    if !(id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(ApiError::NotFoundText(format!(
            "Operation {} not found.",
            id.escape_default()
        )));
    }
    let lookup = id.clone();
    match state.db.run(move |c| operations::get(c, &lookup)).await? {
        Some(op) => serde_json::to_value(op).map_err(|e| ApiError::Internal(e.to_string())),
        None => Err(ApiError::NotFoundText(format!("Operation {id} not found."))),
    }
}
