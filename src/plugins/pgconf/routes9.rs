//! PgConf routes of the 9.x contract (facts 9.x section 6): body checks with
//! the 9.x messages, notifications written after success with the signed
//! user (facts 14.18), PostgreSQL's refusals as 406 with its message.
//! `ALTER SYSTEM` itself runs in the probe worker.

use serde_json::{json, Map, Value};

use super::probe9::{Applied, Pgconf9Call};
use super::calls::PgconfCall;
use super::change;
use crate::api::ApiError;
use crate::ipc::messages::WorkerError;
use crate::api::{Call, Handled, Reply};

fn not_acceptable(text: &str) -> ApiError {
    ApiError::NotAcceptable(text.to_string())
}

async fn call9(c: &Call<'_>, call: Pgconf9Call) -> Result<Value, ApiError> {
    c.state.call(PgconfCall::V9(call)).await
}

/// Writes the notifications of what was done, then answers PostgreSQL's
/// refusal (406) or `ok`.
async fn applied(c: &Call<'_>, value: Value, ok: Reply) -> Result<Reply, ApiError> {
    let done: Applied =
        serde_json::from_value(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    c.state
        .notify_audit(&c.caller()?.username, done.notifications)
        .await?;
    match done.error {
        Some(e) => Err(ApiError::NotAcceptable(e)),
        None => Ok(ok),
    }
}

/// A setting's value as text: strings as they are, other scalars written
/// out (9.0.1 answered 500 to a number), `None` for null; checked by the
/// 9.x checks of `change.rs` (which the probe worker runs again before
/// applying), item by item in request order, as 9.x did.
fn value_text(v: &Value) -> Result<Option<String>, ApiError> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "on" } else { "off" }.to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(not_acceptable("Setting value must be a string.")),
    };
    change::check_value_v9(&text).map_err(invalid)?;
    Ok(Some(text))
}

/// A setting's name, checked.
fn name_checked(name: &str) -> Result<String, ApiError> {
    change::check_name_v9(name).map_err(invalid)?;
    Ok(name.to_string())
}

/// A refused check, as the 406 the http worker answers.
fn invalid(e: WorkerError) -> ApiError {
    match e {
        WorkerError::Invalid(m) => ApiError::NotAcceptable(m),
        other => ApiError::Internal(other.to_string()),
    }
}

/// `GET /pgconf/settings`.
pub fn settings(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { call9(&c, Pgconf9Call::Settings).await.map(Reply::Json) })
}

/// `POST /pgconf/settings` with `{"<name>": "<value>", ...}`.
pub fn set(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let map: &Map<String, Value> = c
            .body
            .as_object()
            .ok_or_else(|| not_acceptable("Requires a mapping of settings and values."))?;
        if map.is_empty() {
            return Err(not_acceptable("No settings."));
        }
        let mut sets = vec![];
        for (name, v) in map {
            let value =
                value_text(v)?.ok_or_else(|| not_acceptable("Setting value is required."))?;
            sets.push((name_checked(name)?, value));
        }
        let done = call9(
            &c,
            Pgconf9Call::Apply {
                resets: vec![],
                sets,
            },
        )
        .await?;
        applied(&c, done, Reply::Empty).await
    })
}

fn unset(c: Call<'_>, to_default: bool) -> Handled<'_> {
    Box::pin(async move {
        let name = name_checked(c.segment(0))?;
        let done = call9(&c, Pgconf9Call::Unset { name, to_default }).await?;
        applied(&c, done, Reply::Empty).await
    })
}

/// `DELETE /pgconf/settings/<name>`: `ALTER SYSTEM SET <name> TO DEFAULT`.
pub fn to_default(c: Call<'_>) -> Handled<'_> {
    unset(c, true)
}

/// `POST /pgconf/settings/<name>/reset`: `ALTER SYSTEM RESET <name>`.
pub fn reset(c: Call<'_>) -> Handled<'_> {
    unset(c, false)
}

/// `POST /pgconf/reload`.
pub fn reload(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let done = call9(&c, Pgconf9Call::Reload).await?;
        applied(&c, done, Reply::Empty).await
    })
}

/// `?filter=`: it must begin with three of `[A-Za-z0-9_]` (9.x's rule and
/// message); matched as a plain substring, never interpolated (facts
/// 14.13).
fn filter(c: &Call<'_>) -> Result<Option<String>, ApiError> {
    match c.param("filter") {
        None => Ok(None),
        Some(f)
            if f.len() <= 128
                && f.len() >= 3
                && f.bytes()
                    .take(3)
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(Some(f.to_string()))
        }
        Some(_) => Err(not_acceptable("Parameter 'filter' is malformed")),
    }
}

/// `GET /pgconf/configuration[?filter=]` (deprecated, used by UI 9.0.1).
pub fn configuration(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let filter = filter(&c)?;
        call9(
            &c,
            Pgconf9Call::Configuration {
                filter,
                category: None,
            },
        )
        .await
        .map(Reply::Json)
    })
}

/// `GET /pgconf/configuration/category/<category>`: the rest of the path,
/// `+` read as a space (how the UI writes them).
pub fn category(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let cat = c.segment(0).replace('+', " ");
        if cat.chars().count() > 128 {
            return Err(ApiError::malformed("category"));
        }
        call9(
            &c,
            Pgconf9Call::Configuration {
                filter: None,
                category: Some(cat),
            },
        )
        .await
        .map(Reply::Json)
    })
}

/// `GET /pgconf/configuration/categories`: the 2.x call answers the 9.x
/// shape too.
pub fn categories(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        c.state
            .call(PgconfCall::Categories)
            .await
            .map(Reply::Json)
    })
}

/// `GET /pgconf/configuration/status`.
pub fn status(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { call9(&c, Pgconf9Call::Status).await.map(Reply::Json) })
}

/// `POST /pgconf/configuration` with `{"settings": [{"name", "setting"}]}`:
/// empty or null settings are reset first, the others set; values equal to
/// the running ones are skipped (10.0), `[]` is a 200 (9.0.1: 500).
pub fn update(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let items = c
            .body
            .get("settings")
            .ok_or_else(|| ApiError::not_sent("settings"))?
            .as_array()
            .ok_or_else(|| ApiError::malformed("settings"))?;
        let (mut resets, mut sets) = (vec![], vec![]);
        for item in items {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::malformed("settings"))?;
            let name = name_checked(name)?;
            match value_text(item.get("setting").unwrap_or(&Value::Null))? {
                None => resets.push(name),
                Some(v) if v.is_empty() => resets.push(name),
                Some(v) => sets.push((name, v)),
            }
        }
        if resets.is_empty() && sets.is_empty() {
            return Ok(Reply::Json(json!({ "settings": [] })));
        }
        let done = call9(&c, Pgconf9Call::Apply { resets, sets }).await?;
        applied(&c, done, Reply::Json(json!({ "settings": [] }))).await
    })
}
