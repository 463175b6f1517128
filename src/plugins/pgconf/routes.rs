//! PgConf plugin routes (facts 11): parameter checks and notifications here;
//! the files and `ALTER SYSTEM` are handled by the probe worker, which runs as
//! the cluster owner. This worker never writes PostgreSQL's files.

use serde_json::{json, Value};

use super::calls::PgconfCall;
use crate::ipc::messages::WorkerError;
use crate::api::string_param;
use crate::api::ApiError;
use crate::api::{decode_segment, Call, Handled, Query, Reply};
use crate::api::AppState;

fn param<'a>(q: &'a Query, k: &str) -> Option<&'a str> {
    q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

async fn call(state: &AppState, c: PgconfCall) -> Result<Value, ApiError> {
    state.call(c).await
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

/// A route answered by one call built from the request, without
/// notification.
macro_rules! read_route {
    ($(#[$doc:meta])* $name:ident, |$c:ident| $build:expr) => {
        $(#[$doc])*
        pub fn $name($c: Call<'_>) -> Handled<'_> {
            Box::pin(async move {
                let pg_call = $build;
                call($c.state, pg_call).await.map(Reply::Json)
            })
        }
    };
}

read_route!(
    /// `GET /pgconf/configuration[?filter=]`.
    settings,
    |c| PgconfCall::Settings {
        filter: filter(&c.query)?,
        category: None,
    }
);

read_route!(
    /// `GET /pgconf/configuration/category/{category}`.
    category,
    |c| {
        let cat = decode_segment(c.segment(0));
        if cat.is_empty() || cat.chars().count() > 128 {
            return Err(ApiError::malformed("category"));
        }
        PgconfCall::Settings {
            filter: None,
            category: Some(cat),
        }
    }
);

read_route!(
    /// `GET /pgconf/configuration/categories`.
    categories,
    |c| PgconfCall::Categories
);

read_route!(
    /// `GET /pgconf/configuration/status`.
    status,
    |c| PgconfCall::Status
);

read_route!(
    /// `GET /pgconf/hba[?version=]`.
    hba_get,
    |c| PgconfCall::HbaRead {
        version: version(&c.query),
        raw: false,
    }
);

read_route!(
    /// `GET /pgconf/hba/raw[?version=]`.
    hba_raw_get,
    |c| PgconfCall::HbaRead {
        version: version(&c.query),
        raw: true,
    }
);

read_route!(
    /// `GET /pgconf/hba/versions`.
    hba_versions,
    |c| PgconfCall::HbaVersions
);

read_route!(
    /// `GET /pgconf/hba/options`.
    hba_options,
    |c| PgconfCall::HbaOptions
);

read_route!(
    /// `GET /pgconf/pg_ident`.
    ident_get,
    |c| PgconfCall::IdentRead
);

/// `POST /pgconf/configuration`.
pub fn update(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let settings = c
            .body
            .get("settings")
            .ok_or_else(|| ApiError::not_sent("settings"))?
            .clone();
        let mut out = call(
            c.state,
            PgconfCall::Update {
                settings,
                filter: filter(&c.query)?,
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
        c.state.notify_audit(&c.caller()?.username, notes).await?;
        if let Some(f) = out.get("failure").filter(|f| !f.is_null()) {
            let e = serde_json::from_value::<WorkerError>(f.clone())
                .unwrap_or_else(|e| WorkerError::Internal(format!("update failure: {e}")));
            return Err(ApiError::from_call("probe", Ok(e)));
        }
        Ok(Reply::Json(json!({ "settings": out["settings"].take() })))
    })
}

fn version(q: &Query) -> Option<String> {
    param(q, "version").map(str::to_string)
}

/// `POST /pgconf/hba` (`entries`).
pub fn hba_post(c: Call<'_>) -> Handled<'_> {
    Box::pin(hba_write(c, false))
}

/// `POST /pgconf/hba/raw` (`content`).
pub fn hba_raw_post(c: Call<'_>) -> Handled<'_> {
    Box::pin(hba_write(c, true))
}

async fn hba_write(c: Call<'_>, raw: bool) -> Result<Reply, ApiError> {
    let body = &c.body;
    let new_version = body.get("new_version") == Some(&Value::Bool(true));
    let pg_call = if raw {
        let content = string_param(body, "content", |_| true)?.to_string();
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
    let out = call(c.state, pg_call).await?;
    c.state
        .notify_audit(&c.caller()?.username, vec!["HBA file updated".into()])
        .await?;
    Ok(Reply::Json(out))
}

/// `DELETE /pgconf/hba?version=`.
pub fn hba_delete(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let v = version(&c.query).ok_or_else(|| {
            ApiError::NotAcceptable("HBA version number must be specified.".into())
        })?;
        let out = call(c.state, PgconfCall::HbaDelete { version: v.clone() }).await?;
        c.state
            .notify_audit(
                &c.caller()?.username,
                vec![format!("HBA file version '{v}' removed.")],
            )
            .await?;
        Ok(Reply::Json(out))
    })
}

/// `POST /pgconf/pg_ident` with `{"content": str}`. Unlike 2.x, recorded in
/// the notifications like hba writes: who changed who may map to which
/// PostgreSQL role is as much an audit fact as pg_hba.conf.
pub fn ident_post(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let content = string_param(&c.body, "content", |_| true)?.to_string();
        let out = call(c.state, PgconfCall::IdentWrite { content }).await?;
        c.state
            .notify_audit(&c.caller()?.username, vec!["Ident file updated".into()])
            .await?;
        Ok(Reply::Json(out))
    })
}
