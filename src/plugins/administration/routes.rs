//! Administration routes: validation and answers here; the command runs in
//! the pg_ctl worker, the version query in the probe worker.

use serde_json::{json, Value};

use super::pgctl::CALL_TIMEOUT;
use super::calls::{Action, ControlCall, VersionCall};
use crate::store::operations;
use crate::api::string_param;
use crate::api::ApiError;
use crate::api::{Call, Handled, Reply};

/// `GET /administration/pg_version`.
pub fn pg_version(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let v = c.state.call(VersionCall::PgVersion).await?;
        Ok(Reply::Json(json!({
            "numeric": crate::pgversion::numeric_version(&v.server_version),
            "full": v.full,
        })))
    })
}

/// `POST /administration/control` with `{"action": "start"|"stop"|"restart"|"reload"}`.
pub fn control(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let action = string_param(&c.body, "action", |a| Action::parse(a).is_some())?;
        let action = Action::parse(action).ok_or_else(|| ApiError::malformed("action"))?;
        let call = ControlCall::Control {
            action,
            username: c.caller()?.username.clone(),
        };
        let done = c.state.call_within(call, CALL_TIMEOUT).await?;
        Ok(Reply::Json(json!({
            "action": action.as_str(),
            "state": done.state,
            "operation": done.operation,
        })))
    })
}

/// `GET /operations`: newest first.
pub fn list_operations(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let ops = c
            .state
            .db
            .run(|c| operations::list(c, operations::MAX_ROWS))
            .await?;
        Ok(Reply::Json(json!({ "operations": ops })))
    })
}

/// `GET /operations/{id}`.
pub fn operation(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { one_operation(&c, c.segment(0).to_string()).await.map(Reply::Json) })
}

async fn one_operation(c: &Call<'_>, id: String) -> Result<Value, ApiError> {
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
    match c.state.db.run(move |c| operations::get(c, &lookup)).await? {
        Some(op) => serde_json::to_value(op).map_err(|e| ApiError::Internal(e.to_string())),
        None => Err(ApiError::NotFoundText(format!("Operation {id} not found."))),
    }
}
