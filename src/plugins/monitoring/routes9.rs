//! Monitoring routes of the 9.x contract (facts 9.x 7.2–7.3): the UI pulls
//! the stored documents with `GET /monitoring/history`, and reads the
//! configuration. Documents are answered as stored (JSON text), never
//! parsed again.

use bytes::Bytes;
use serde_json::json;

use crate::api::ApiError;
use crate::api::{Call, Handled, Reply};

/// Documents answered when `limit` is not given (9.x default).
const DEFAULT_LIMIT: u64 = 50;

/// `start=YYYY-MM-DDTHH:MM:SSZ` (UTC) as epoch seconds: 406 `Parameter
/// 'start' is malformed.` when not of that form, `Invalid timestamp` when
/// the form is right but the date impossible; the epoch is a valid start
/// (9.0.1 ignored it, facts 14.28).
fn start(c: &Call<'_>) -> Result<Option<i64>, ApiError> {
    let Some(s) = c.param("start") else {
        return Ok(None);
    };
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, ch)| match i {
            4 | 7 => *ch == b'-',
            10 => *ch == b'T',
            13 | 16 => *ch == b':',
            19 => *ch == b'Z',
            _ => ch.is_ascii_digit(),
        });
    if !shape {
        return Err(ApiError::malformed("start"));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .map(|d| Some(d.and_utc().timestamp()))
        .map_err(|_| ApiError::NotAcceptable("Invalid timestamp".into()))
}


/// `GET /monitoring/history[?start=…][&limit=N]`: without `start`, the
/// newest document only; with it, the documents whose `datetime` is
/// `start` or later, oldest first, at most `limit` (50; 0 = all kept).
/// Delta records of a first measure are never stored, so none reaches the
/// UI without `measure_interval`.
pub fn history(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let (start, limit) = (start(&c)?, c.digits("limit", DEFAULT_LIMIT)?);
        let docs = c
            .state
            .db
            .read(move |db| super::store::history9(db, start, limit))
            .await?;
        let mut body = String::with_capacity(2 + docs.iter().map(|(_, d)| d.len() + 1).sum::<usize>());
        body.push('[');
        for (i, (_, d)) in docs.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(d);
        }
        body.push(']');
        let tag = c.state.discover_etag().await?;
        Ok(Reply::RawJson(
            Bytes::from(body),
            vec![("x-temboard-discover-etag", tag)],
        ))
    })
}

/// `GET /monitoring/config`: `{"dbnames": [...], "scheduler_interval"}`
/// (`["*"]` for every database).
pub fn config(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let m = super::config::settings(&c.state.ctx.settings().config);
        Ok(Reply::Json(json!({
            "dbnames": m.dbnames.clone().unwrap_or_else(|| vec!["*".to_string()]),
            "scheduler_interval": m.scheduler_interval,
        })))
    })
}

/// `GET /monitoring/metrics`: the newest document in the Prometheus text
/// format (only `# EOF` before the first).
pub fn metrics(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let newest = c.state.db.read(|db| super::store::newest9(db)).await?;
        let text = match newest {
            None => "# EOF\n".to_string(),
            Some((doc, raw)) => {
                let doc: serde_json::Value = serde_json::from_str(&doc)
                    .map_err(|e| ApiError::Internal(format!("stored document: {e}")))?;
                let raw = raw
                    .and_then(|r| serde_json::from_str(&r).ok())
                    .unwrap_or(serde_json::Value::Null);
                super::metrics9::render(&doc, &raw)
            }
        };
        Ok(Reply::Text(text))
    })
}
