//! The temBoard 9.x contract (UI 8.x–10.x): a request that carries the
//! signing headers is answered here, in 9.x shapes, statuses and error
//! strings; every other request goes on to the 2.x pipeline, unchanged.
//!
//! Which worker verifies: the http worker. The UI's public key is not a
//! secret (the UI serves it to anyone at `/signing.key`); verifying where
//! the request is parsed costs no IPC hop, and the worker still holds no
//! PostgreSQL password and runs no command. The supervisor reads and checks
//! the key file (it may be readable by root only) and hands the PEM over
//! with the worker's settings, so a reload swaps it only when it parses.
//!
//! Served here (facts 9.x section 3), as routes of the one table
//! ([`CORE_ROUTES`]): `GET /discover` (signature optional,
//! `signature_status`), `POST /discover`, `GET /status`, `GET
//! /notifications`, `GET /error/<int>`. Plugin routes of the 9.x contract
//! are in each plugin's table ([`Route::signed`]). Every 9.x route is found
//! by [`route`], verified here when signed, then run like any route.
//! Unknown paths answer `404 Not found: '<path>'`.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::state::AppState;
use crate::api::ApiError;
use crate::api::{Call, Handled, Reply, Route};
use crate::signing::{self, PublicKey, Signed};

/// The 9.x core routes, in the one route table ([`routes::all`]) like the
/// plugins' ([`Route::signed`]).
pub const CORE_ROUTES: &[Route] = &[
    Route::core9("GET", "/discover", false, "Discover9", route_discover).signature_optional(),
    Route::core9(
        "POST",
        "/discover",
        true,
        "DiscoverRefresh9",
        route_discover,
    ),
    Route::core9("GET", "/status", false, "Status9", route_status),
    Route::core9(
        "GET",
        "/notifications",
        true,
        "Notifications9",
        route_notifications,
    ),
    Route::core9("GET", "/error/{code}", false, "Error9", route_error),
];

/// Whether a request speaks the 9.x protocol: it carries a signature or a
/// signing date (the UI sends both on every request, `GET /status`
/// included). A 2.x client never sends either.
pub fn is_v9(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k.eq_ignore_ascii_case("x-temboard-signature") || k.eq_ignore_ascii_case("x-temboard-date")
    })
}

/// 9.x error: `{"error": text}` with the code.
pub fn error(code: u16, text: impl Into<String>) -> ApiError {
    ApiError::Status(code, text.into())
}

/// The 9.x 404 text: Python's `repr()` of the path.
pub fn not_found(path: &str) -> ApiError {
    // Paths are percent-decoded (not `+`), as 9.x's router does.
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let quoted = if decoded.contains('\'') && !decoded.contains('"') {
        format!("\"{decoded}\"")
    } else {
        format!("'{}'", decoded.replace('\'', "\\'"))
    };
    error(404, format!("Not found: {quoted}"))
}

/// The parsed public key of the settings in force (parsed again only when
/// the PEM changes, i.e. after a reload).
fn key(state: &AppState) -> Option<Arc<PublicKey>> {
    let settings = state.ctx.settings();
    let pem = settings.signing_key_pem.as_ref()?;
    let mut cache = state.signing_key.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cached_pem, k)) = cache.as_ref() {
        if cached_pem == pem {
            return Some(Arc::clone(k));
        }
    }
    let parsed = Arc::new(PublicKey::from_pem(pem).ok()?);
    *cache = Some((pem.clone(), Arc::clone(&parsed)));
    Some(parsed)
}

/// Headers as the signing code reads them.
fn header_list(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect()
}

/// The key in force, or the 400 that says signing is not configured.
fn configured_key(state: &AppState) -> Result<Arc<PublicKey>, ApiError> {
    key(state).ok_or_else(|| {
        error(
            400,
            "Signed requests are not configured on this agent: set [temboard] signing_public_key (see temboard-agent fetch-key).",
        )
    })
}

/// What can be checked of a signed request before its body is read
/// ([`signing::precheck`]): a request that fails here is answered without
/// its body ever being read.
pub fn precheck(
    state: &AppState,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let key = configured_key(state)?;
    let list = header_list(headers);
    let req = signing::Request {
        method: method.as_str(),
        target,
        headers: &list,
        body: &[],
    };
    signing::precheck(&key, &req, Utc::now())
        .map(|_| ())
        .map_err(|r| error(r.status(), r.to_string()))
}

/// Refuses a request signed for another agent (see [`super::hosts`]): 403
/// naming the accepted hosts; the log names the one to add.
async fn check_host(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(hyper::header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let settings = state.ctx.settings();
    let t = &settings.config.temboard;
    let local = state
        .local_names
        .get(|| async {
            let fqdn = state.system_fqdn().await;
            Arc::new(
                tokio::task::spawn_blocking(move || super::hosts::local_names(&fqdn))
                    .await
                    .unwrap_or_default(),
            )
        })
        .await;
    if super::hosts::accepted(
        &host,
        t.port,
        &local,
        t.hostname.as_deref(),
        &t.accepted_hosts,
    ) {
        return Ok(());
    }
    let shown: String = host.chars().filter(|c| !c.is_control()).take(300).collect();
    tracing::warn!(
        "signed request for host '{shown}' refused: it does not name this agent; if the UI reaches the agent under this name, add it to [temboard] accepted_hosts"
    );
    Err(error(
        403,
        format!(
            "Request signed for host '{shown}', not this agent: accepted hosts are {}; add the name to [temboard] accepted_hosts if the UI reaches this agent under it.",
            super::hosts::describe(t.port, &local, t.hostname.as_deref(), &t.accepted_hosts)
        ),
    ))
}

/// Checks the signature (facts 2.5 with our stricter rules), the signed
/// `Host`, and refuses a request id seen within the window.
pub async fn verify(
    state: &AppState,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Signed, ApiError> {
    let key = configured_key(state)?;
    let list = header_list(headers);
    let req = signing::Request {
        method: method.as_str(),
        target,
        headers: &list,
        body,
    };
    let now = Utc::now();
    let signed = signing::verify(&key, &req, now).map_err(|r| error(r.status(), r.to_string()))?;
    check_host(state, headers).await?;
    let id = signed.request_id.clone();
    let expires = (signed.date + signing::MAX_AGE + signing::MAX_SKEW).timestamp() as f64;
    let fresh = state
        .replay
        .first_time(&state.db, &id, now.timestamp(), expires as i64)
        .await?;
    if !fresh {
        return Err(error(409, "Request id already used: replay refused."));
    }
    Ok(signed)
}

/// The JSON body of a 9.x request: parsed only when the media type is
/// `application/json` (facts 1.3); malformed JSON is a clear 400 where
/// 9.0.1 answered a bare 500.
pub fn json_body(headers: &HeaderMap, raw: Option<Bytes>) -> Result<Value, ApiError> {
    let json = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    match raw {
        Some(b) if json && !b.is_empty() => {
            serde_json::from_slice(&b).map_err(|e| error(400, format!("Invalid JSON body: {e}.")))
        }
        _ => Ok(Value::Null),
    }
}

/// The signature status of a request to a route whose signature is
/// optional (`GET /discover`): never an error.
pub fn signature_status(state: &AppState, target: &str, headers: &HeaderMap) -> &'static str {
    let list = header_list(headers);
    let req = signing::Request {
        method: "GET",
        target,
        headers: &list,
        body: &[],
    };
    signing::discover_status(key(state).as_deref(), &req)
}

/// `GET /discover` (signature optional: its status is in the answer) and
/// `POST /discover` (signed, hence `valid`).
fn route_discover(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        // POST asks for a refresh: read now; GET may answer from memory.
        let refresh = c.route.method == "POST";
        discover(c.state, c.signature_status.unwrap_or("valid"), refresh).await
    })
}

/// `GET /status` (9.x, unsigned).
fn route_status(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { status(c.state).await })
}

/// `GET /notifications` (9.x, signed).
fn route_notifications(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { c.state.notification_list(i64::MAX).await.map(Reply::Json) })
}

/// `GET /error/<int>` (unsigned, a 9.x debug aid the UI never calls):
/// answers that code, as 9.0.1 does for codes of 400 and more (below 400
/// its framework answered text; here JSON with the same words); a code that
/// is not a number is a 404, as 9.x's `<int>` filter makes it.
fn route_error(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { debug_error(c.segment(0)) })
}

/// The answer of `GET /error/<seg>`.
fn debug_error(seg: &str) -> Result<Reply, ApiError> {
    let code: u16 = seg
        .parse()
        .map_err(|_| not_found(&format!("/error/{seg}")))?;
    match code {
        400..=499 => Err(error(code, "HTTPError raised")),
        500.. => Err(error(500, "Internal Server Error")),
        _ => Ok(Reply::JsonStatus(
            StatusCode::from_u16(code.max(200)).unwrap_or(StatusCode::OK),
            json!("HTTPResponse raised"),
        )),
    }
}

async fn discover(
    state: &AppState,
    signature_status: &str,
    refresh: bool,
) -> Result<Reply, ApiError> {
    let (mut doc, tag) = if refresh {
        state.discover_read().await?
    } else {
        state.discover_document().await?
    };
    if let Value::Object(m) = &mut doc {
        m.insert("signature_status".into(), json!(signature_status));
    }
    Ok(Reply::JsonHeaders(doc, vec![("etag", tag)]))
}

/// `GET /status` (9.x): PostgreSQL, agent and system states.
async fn status(state: &AppState) -> Result<Reply, ApiError> {
    let (body, tag) = state.status_document().await?;
    Ok(Reply::JsonHeaders(
        body,
        vec![("x-temboard-discover-etag", tag)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_error_route() {
        let err = |p: &str| {
            debug_error(p)
                .err()
                .map(|e| (e.status().as_u16(), e.to_string()))
        };
        assert_eq!(err("418"), Some((418, "HTTPError raised".into())));
        assert_eq!(err("503"), Some((500, "Internal Server Error".into())));
        assert!(matches!(
            debug_error("200"),
            Ok(Reply::JsonStatus(StatusCode::OK, _))
        ));
        assert_eq!(err("x"), Some((404, "Not found: '/error/x'".into())));
    }

    #[test]
    fn not_found_quotes_like_python() {
        let text = |p: &str| not_found(p).to_string();
        assert_eq!(text("/nope"), "Not found: '/nope'");
        assert_eq!(text("/my%20db"), "Not found: '/my db'");
        assert_eq!(text("/it's"), "Not found: \"/it's\"");
    }

    #[test]
    fn v9_requests_are_told_by_their_headers() {
        let mut h = HeaderMap::new();
        assert!(!is_v9(&h));
        h.insert("x-session", "abc".parse().unwrap());
        assert!(!is_v9(&h));
        h.insert("X-TemBoard-Date", "20250115T103000Z".parse().unwrap());
        assert!(is_v9(&h));
    }
}
