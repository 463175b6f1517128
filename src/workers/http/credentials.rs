//! The 2.x credentials of a request: the agent key (header or `?key=`), an
//! API token (`Authorization: Bearer`) or a session (`X-Session`), checked
//! by the pipeline before the body is read.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderMap;
use hyper::Method;

use super::state::AppState;
use crate::api::{ApiError, Caller};
use crate::store::sessions;

/// Whether the request offers the agent key at all.
pub(super) fn offers_key(headers: &HeaderMap, query: &crate::api::Query) -> bool {
    headers.contains_key("x-temboard-agent-key") || query.iter().any(|(k, _)| k == "key")
}

/// The temBoard 3.x+ key access: `?key=` or `X-TemBoard-Agent-Key`, compared
/// in constant time with `[temboard] key`.
pub(super) fn check_key(
    state: &AppState,
    headers: &HeaderMap,
    query: &crate::api::Query,
) -> Result<(), ApiError> {
    use subtle::ConstantTimeEq;
    let configured = state.ctx.settings().config.temboard.key.clone();
    let given = headers
        .get("x-temboard-agent-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone())
        });
    let Some(configured) = configured else {
        return Err(ApiError::Status(
            401,
            "Authentication key not configured".into(),
        ));
    };
    let Some(given) = given else {
        return Err(ApiError::Status(401, "Missing key".into()));
    };
    if bool::from(given.as_bytes().ct_eq(configured.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Status(401, "Invalid key".into()))
    }
}

pub(super) async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    if let Some(token) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        let token = token.trim().to_string();
        let found = state
            .db
            .run(move |c| crate::store::tokens::lookup(c, &token))
            .await?;
        return match found {
            None => Err(ApiError::Status(401, "Invalid token.".into())),
            Some((name, true)) if *method != Method::GET => Err(ApiError::Status(
                403,
                format!("Token '{name}' is read-only: GET requests only."),
            )),
            Some((name, _)) => Ok(Caller {
                session: String::new(),
                username: format!("token:{name}"),
            }),
        };
    }
    let value = headers
        .get("x-session")
        .ok_or_else(|| ApiError::not_sent("X-Session"))?;
    let id = value
        .to_str()
        .ok()
        .filter(|v| {
            v.len() == 64
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| ApiError::malformed("X-Session"))?
        .to_string();
    let ttl = state.ctx.settings().config.temboard.session_ttl as f64;
    let refresh_after = (ttl / 10.0).min(10.0);
    if let Some(username) = state
        .sessions
        .get(&id, Duration::from_secs_f64(refresh_after / 2.0))
    {
        return Ok(Caller {
            session: id,
            username,
        });
    }
    let lookup = id.clone();
    let cache = Arc::clone(&state.sessions);
    let user = state
        .db
        .run(move |c| {
            let user = sessions::validate(c, &lookup, ttl, refresh_after)?;
            if let Some(u) = &user {
                cache.put(&lookup, u);
            }
            Ok(user)
        })
        .await?;
    match user {
        Some(username) => Ok(Caller {
            session: id,
            username,
        }),
        None => Err(ApiError::InvalidSession),
    }
}
