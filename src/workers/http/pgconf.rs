//! PgConf plugin routes (facts 11): parameter checks and notifications here;
//! the files and `ALTER SYSTEM` are handled by the probe worker, which runs as
//! the cluster owner. This worker never writes PostgreSQL's files.

use serde_json::{json, Value};

use super::core::Caller;
use super::error::ApiError;
use super::AppState;
use crate::ipc::messages::{PgconfCall, ProbeCall, ProbeReply};
use crate::store::notifications;

/// Decoded query parameters; blank values are dropped, as `parse_qs` does.
pub type Query = Vec<(String, String)>;

/// Parses a query string.
pub fn parse_query(q: Option<&str>) -> Query {
    q.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// `unquote_plus` of a path segment (2.x decodes captures so).
pub fn decode_segment(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn param<'a>(q: &'a Query, k: &str) -> Option<&'a str> {
    q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

async fn call(state: &AppState, c: PgconfCall) -> Result<Value, ApiError> {
    let reply = state
        .probe
        .call(ProbeCall::Pgconf(c), super::IPC_TIMEOUT)
        .await
        .map_err(|e| ApiError::from_call("probe", Err(e)))?
        .map_err(|e| ApiError::from_call("probe", Ok(e)))?;
    match reply {
        ProbeReply::Document { value } => Ok(value),
        other => Err(ApiError::Internal(format!(
            "unexpected probe reply {other:?}"
        ))),
    }
}

async fn notify(state: &AppState, user: &str, messages: Vec<String>) -> Result<(), ApiError> {
    let user = user.to_string();
    state
        .db
        .run(move |c| {
            let tx = c.transaction()?;
            for m in &messages {
                notifications::push(&tx, &user, m)?;
            }
            tx.commit()
        })
        .await
}

fn filter(q: &Query) -> Result<Option<String>, ApiError> {
    match param(q, "filter") {
        None => Ok(None),
        Some(f)
            if (3..=128).contains(&f.len())
                && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(Some(f.to_string()))
        }
        Some(_) => Err(ApiError::malformed("filter")),
    }
}

/// `GET /pgconf/configuration[?filter=]`.
pub async fn settings(state: &AppState, q: &Query) -> Result<Value, ApiError> {
    call(
        state,
        PgconfCall::Settings {
            filter: filter(q)?,
            category: None,
        },
    )
    .await
}

/// `GET /pgconf/configuration/category/{category}`.
pub async fn category(state: &AppState, raw: &str) -> Result<Value, ApiError> {
    let cat = decode_segment(raw);
    if cat.is_empty() || cat.chars().count() > 128 {
        return Err(ApiError::malformed("category"));
    }
    call(
        state,
        PgconfCall::Settings {
            filter: None,
            category: Some(cat),
        },
    )
    .await
}

/// `GET /pgconf/configuration/categories`.
pub async fn categories(state: &AppState) -> Result<Value, ApiError> {
    call(state, PgconfCall::Categories).await
}

/// `GET /pgconf/configuration/status`.
pub async fn status(state: &AppState) -> Result<Value, ApiError> {
    call(state, PgconfCall::Status).await
}

/// `POST /pgconf/configuration`.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    body: &Value,
    q: &Query,
) -> Result<Value, ApiError> {
    let settings = body
        .get("settings")
        .ok_or_else(|| ApiError::not_sent("settings"))?
        .clone();
    let mut out = call(
        state,
        PgconfCall::Update {
            settings,
            filter: filter(q)?,
        },
    )
    .await?;
    let notes: Vec<String> = out["notifications"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    notify(state, &caller.username, notes).await?;
    if let Some(f) = out.get("failure").filter(|f| !f.is_null()) {
        let status = f["status"].as_u64().unwrap_or(500) as u16;
        return Err(ApiError::Status(
            status,
            f["message"]
                .as_str()
                .unwrap_or("Internal error.")
                .to_string(),
        ));
    }
    Ok(json!({ "settings": out["settings"].take() }))
}

fn version(q: &Query) -> Option<String> {
    param(q, "version").map(str::to_string)
}

/// `GET /pgconf/hba[?version=]` and `/pgconf/hba/raw`.
pub async fn hba_read(state: &AppState, q: &Query, raw: bool) -> Result<Value, ApiError> {
    call(
        state,
        PgconfCall::HbaRead {
            version: version(q),
            raw,
        },
    )
    .await
}

/// `POST /pgconf/hba` (`entries`) and `/pgconf/hba/raw` (`content`).
pub async fn hba_write(
    state: &AppState,
    caller: &Caller,
    body: &Value,
    raw: bool,
) -> Result<Value, ApiError> {
    let new_version = body.get("new_version") == Some(&Value::Bool(true));
    let c = if raw {
        let content = body
            .get("content")
            .ok_or_else(|| ApiError::not_sent("content"))?;
        let content = content
            .as_str()
            .ok_or_else(|| ApiError::malformed("content"))?
            .to_string();
        PgconfCall::HbaWrite {
            entries: None,
            content: Some(content),
            new_version,
        }
    } else {
        let entries = body
            .get("entries")
            .ok_or_else(|| ApiError::not_sent("entries"))?;
        let entries = entries
            .as_array()
            .ok_or_else(|| ApiError::NotAcceptable("Invalid HBA entry.".into()))?
            .clone();
        PgconfCall::HbaWrite {
            entries: Some(entries),
            content: None,
            new_version,
        }
    };
    let out = call(state, c).await?;
    notify(state, &caller.username, vec!["HBA file updated".into()]).await?;
    Ok(out)
}

/// `DELETE /pgconf/hba?version=`.
pub async fn hba_delete(state: &AppState, caller: &Caller, q: &Query) -> Result<Value, ApiError> {
    let v = version(q)
        .ok_or_else(|| ApiError::NotAcceptable("HBA version number must be specified.".into()))?;
    let out = call(state, PgconfCall::HbaDelete { version: v.clone() }).await?;
    notify(
        state,
        &caller.username,
        vec![format!("HBA file version '{v}' removed.")],
    )
    .await?;
    Ok(out)
}

/// `GET /pgconf/hba/versions`.
pub async fn hba_versions(state: &AppState) -> Result<Value, ApiError> {
    call(state, PgconfCall::HbaVersions).await
}

/// `GET /pgconf/hba/options`.
pub async fn hba_options(state: &AppState) -> Result<Value, ApiError> {
    call(state, PgconfCall::HbaOptions).await
}

/// `GET /pgconf/pg_ident`.
pub async fn ident_read(state: &AppState) -> Result<Value, ApiError> {
    call(state, PgconfCall::IdentRead).await
}

/// `POST /pgconf/pg_ident` with `{"content": str}`. Unlike 2.x, recorded in
/// the notifications like hba writes: who changed who may map to which
/// PostgreSQL role is as much an audit fact as pg_hba.conf.
pub async fn ident_write(
    state: &AppState,
    caller: &Caller,
    body: &Value,
) -> Result<Value, ApiError> {
    let content = body
        .get("content")
        .ok_or_else(|| ApiError::not_sent("content"))?;
    let content = content
        .as_str()
        .ok_or_else(|| ApiError::malformed("content"))?
        .to_string();
    let out = call(state, PgconfCall::IdentWrite { content }).await?;
    notify(state, &caller.username, vec!["Ident file updated".into()]).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_segments_decode_like_python() {
        assert_eq!(
            parse_query(Some("version=2017-03-06T16%3A34%3A07&x=&filter=wal")),
            vec![
                ("version".to_string(), "2017-03-06T16:34:07".to_string()),
                ("filter".to_string(), "wal".to_string())
            ]
        );
        assert_eq!(
            decode_segment("Client+Connection+Defaults+%2F+Locale"),
            "Client Connection Defaults / Locale"
        );
    }
}
