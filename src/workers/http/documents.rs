//! The 9.x core documents the core routes and plugins embed: the
//! notification list, the discover document and its ETag, the status
//! object. Methods of [`AppState`], so plugins reach them through the API.

use chrono::{TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::state::{AppState, Basis, IPC_TIMEOUT};
use crate::api::ApiError;
use crate::ipc::messages::{ProbeCall, ProbeReply};

impl AppState {
    /// The `limit` newest notifications in the 9.x shape (also embedded in the
    /// 9.x `/dashboard`).
    pub async fn notification_list(&self, limit: i64) -> Result<Value, ApiError> {
        let state = self;
        let list = state
            .db
            .read(move |c| crate::store::notifications::list(c, limit))
            .await?;
        let out: Vec<Value> = list
            .into_iter()
            .map(|n| {
                let utc = chrono::NaiveDateTime::parse_from_str(&n.date, "%Y-%m-%dT%H:%M:%S")
                    .ok()
                    .and_then(|d| chrono::Local.from_local_datetime(&d).earliest())
                    .map(|d| {
                        d.with_timezone(&Utc)
                            .format("%Y-%m-%dT%H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or(n.date);
                json!({"date": utc, "username": n.username, "message": n.message})
            })
            .collect();
        Ok(Value::Array(out))
    }

    /// The discover document: PostgreSQL facts read now when PostgreSQL
    /// answers, else the last stored ones (9.x answers while it is down); the
    /// document is stored whenever it changed, so its ETag follows it.
    async fn current_discover(&self) -> Result<(Value, String, Option<Basis>), ApiError> {
        let state = self;
        // The basis as it is when the read starts: a caller that joins this
        // read later (after a reload, say) must not remember its result
        // under its own, newer basis.
        let basis = state.basis().await;
        let settings = state.ctx.settings();
        let fresh = state.probe.call(ProbeCall::Discover9, IPC_TIMEOUT).await;
        let stored = state.db.read(|c| crate::store::signed::discover(c)).await?;
        let answered = matches!(fresh, Ok(Ok(ProbeReply::Document { .. })));
        let postgres = match fresh {
            Ok(Ok(ProbeReply::Document { value })) => value,
            _ => stored
                .as_ref()
                .and_then(|(d, _)| serde_json::from_str::<Value>(d).ok())
                .and_then(|d| d.get("postgres").cloned())
                .unwrap_or_else(|| json!({})),
        };
        let fqdn = match &settings.config.temboard.hostname {
            Some(h) => h.clone(),
            None => state.system_fqdn().await,
        };
        let (doc, tag) = crate::discover9::document(postgres, &fqdn, &settings.config);
        if stored.as_ref().map(|(_, t)| t) != Some(&tag) {
            let (text, t) = (doc.to_string(), tag.clone());
            state
                .db
                .run(move |c| crate::store::signed::set_discover(c, &text, &t))
                .await?;
        }
        Ok((doc, tag, answered.then_some(basis)))
    }

    /// The discover document's ETag (9.x sends it as
    /// `X-TemBoard-Discover-ETag` so the UI refetches `/discover` on a change).
    pub async fn discover_etag(&self) -> Result<String, ApiError> {
        let (_, tag) = self.discover_document().await?;
        Ok(tag)
    }

    /// The discover document and its ETag: from memory while its basis
    /// holds (PostgreSQL neither restarted nor reloaded, no agent reload,
    /// younger than a minute), else read (see [`Self::discover_read`]).
    pub async fn discover_document(&self) -> Result<(Value, String), ApiError> {
        if let Some(doc) = self.discover_memory.get(&self.basis().await) {
            return Ok(doc);
        }
        self.discover_read().await
    }

    /// The discover document read now (reads coalesced: a caller arriving
    /// during a read gets its result), and remembered under the basis it
    /// was read with. A document PostgreSQL did not answer for (the stored
    /// one) is not remembered. `POST /discover` and `/status` read so.
    pub async fn discover_read(&self) -> Result<(Value, String), ApiError> {
        let (doc, tag, basis) = self.discover.get(|| self.current_discover()).await?;
        if let Some(basis) = basis {
            self.discover_memory.put(basis, (doc.clone(), tag.clone()));
        }
        Ok((doc, tag))
    }

    /// The 9.x status object and the discover ETag (also embedded in the 9.x
    /// `/dashboard`).
    pub async fn status_document(&self) -> Result<(Value, String), ApiError> {
        let state = self;
        // Read now, as before memory: its pid and start time must be the
        // running postmaster's, even right after a restart.
        let (doc, tag) = state.discover_read().await?;
        let pg = match state.probe.call(ProbeCall::Status9, IPC_TIMEOUT).await {
            Ok(Ok(ProbeReply::Document { value })) => value,
            Ok(Err(e)) => return Err(super::v9::error(500, format!("PostgreSQL: {e}"))),
            Err(e) => {
                return Err(super::v9::error(
                    503,
                    format!("probe worker unavailable, retry ({e})"),
                ))
            }
            Ok(Ok(other)) => {
                return Err(ApiError::Internal(format!(
                    "unexpected probe reply {other:?}"
                )))
            }
        };
        let mut postgres = Map::new();
        postgres.insert("status".into(), json!("running"));
        postgres.insert("pid".into(), doc["postgres"]["pid"].clone());
        postgres.insert("start_time".into(), doc["postgres"]["start_time"].clone());
        if let Value::Object(m) = pg {
            postgres.extend(m);
        }
        let settings = state.ctx.settings();
        let started = chrono::NaiveDateTime::parse_from_str(
            &settings.runtime.start_datetime,
            "%Y-%m-%dT%H:%M:%S",
        )
        .ok()
        .and_then(|d| chrono::Local.from_local_datetime(&d).earliest())
        .map(|d| d.to_rfc3339());
        let sys = &doc["system"];
        Ok((
            json!({
                "postgres": postgres,
                "temboard": {
                    "status": "running",
                    "pid": settings.runtime.supervisor_pid,
                    "start_time": started,
                },
                "system": {
                    "status": "running",
                    "start_time": sys["start_time"],
                    "cpu_count": sys["cpu_count"],
                    "cpu_model": sys["cpu_model"],
                    "memory": sys["memory"],
                    "swap": sys["swap"],
                    "hugepage": sys["hugepage"],
                },
            }),
            tag,
        ))
    }
}
