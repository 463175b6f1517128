//! Processing of one request, in the order of facts 1.4: method, route (404
//! before any auth), body (POST), session, JSON, handler under a deadline; then
//! one access-log line. Every response, error or not, is JSON with the agent's
//! headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
    SERVER,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tracing::{error, info};

use super::state::AppState;
use crate::api::ApiError;
use crate::api::Caller;
use crate::api::Reply;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// A body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the pipeline answers.
enum Out {
    /// A handler's reply.
    Reply(Reply),
    /// The CORS answer to `OPTIONS`.
    Options,
}

/// A response body: whole, or streamed from a worker.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body, boxed.
fn whole(resp: Response<Full<Bytes>>) -> Response<Body> {
    resp.map(|b| b.map_err(|never| match never {}).boxed())
}

/// Longest one chunk of a streamed answer waits for a client that stopped
/// reading: then the answer is cut and the worker's stream released.
const CLIENT_SEND_DEADLINE: Duration = Duration::from_secs(30);

/// A body fed by a worker's chunks, through a small channel: hyper pulls a
/// chunk, the task reads the next from the worker, so a slow client slows
/// the sending (the answer is spooled by the worker: PostgreSQL is done
/// with it) instead of filling memory. The channel closing before the task
/// said `complete` is a cut answer, never a short one taken for whole.
struct ChunkBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    complete: Arc<std::sync::atomic::AtomicBool>,
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let complete = Arc::clone(&self.complete);
        self.rx.poll_recv(cx).map(|o| match o {
            Some(r) => Some(r.map(hyper::body::Frame::data)),
            // Read after the close: the task says `complete` before it
            // drops its sender.
            None if complete.load(std::sync::atomic::Ordering::SeqCst) => None,
            None => Some(Err(std::io::Error::other("streamed answer cut"))),
        })
    }
}

fn streamed(state: &AppState, mut chunks: crate::ipc::client::ChunkStream) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::clone(&complete);
    tokio::spawn(async move {
        loop {
            match chunks.next().await {
                Ok(Some(b)) => {
                    match tokio::time::timeout(CLIENT_SEND_DEADLINE, tx.send(Ok(b))).await {
                        Ok(Ok(())) => {}
                        // The client went away: dropping the stream frees the worker.
                        Ok(Err(_)) => break,
                        Err(_) => {
                            tracing::info!(
                                "streamed answer cut: the client read nothing for {} s",
                                CLIENT_SEND_DEADLINE.as_secs()
                            );
                            break;
                        }
                    }
                }
                Ok(None) => {
                    done.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
                Err(e) => {
                    // Mid-answer: the only honest signal left is a cut
                    // response (the status line is gone already).
                    tracing::warn!("streamed answer cut: {e}");
                    break;
                }
            }
        }
    });
    let mut resp = Response::new(ChunkBody { rx, complete }.boxed());
    base_headers(state, &mut resp);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Answers one request.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<AppState>,
) -> Response<Body> {
    let received = Instant::now();
    let line = format!(
        "{} {} {:?}",
        req.method(),
        super::access_log::target(req.uri()),
        req.version()
    );
    // A body left unread means hyper closes the connection after the
    // answer: say so (`Connection: close`), or a keep-alive client sends its
    // next request on a connection that is going away.
    let has_body = req
        .headers()
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(hyper::header::TRANSFER_ENCODING);
    let mut consumed = false;
    // The label of the request counters: the pattern of the route that
    // answered, in either contract (not the raw path, so label cardinality
    // stays bounded).
    let mut matched = None;
    let outcome = process(
        req,
        peer.ip(),
        &state,
        received,
        &mut consumed,
        &mut matched,
    )
    .await;
    let label = matched.unwrap_or("unmatched");
    let mut resp = match outcome {
        Ok(Out::Reply(Reply::Stream(chunks))) => streamed(&state, chunks),
        other => whole(whole_response(&state, other)),
    };
    if has_body && !consumed {
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(mut counts) = state.requests.lock() {
        *counts
            .entry((label.to_string(), resp.status().as_u16()))
            .or_default() += 1;
    }
    info!(
        "client: {} request: \"{line}\" {} -",
        peer.ip(),
        resp.status().as_u16()
    );
    resp
}

async fn process(
    req: Request<Incoming>,
    peer: IpAddr,
    state: &Arc<AppState>,
    received: Instant,
    consumed: &mut bool,
    matched: &mut Option<&'static str>,
) -> Result<Out, ApiError> {
    match *req.method() {
        Method::OPTIONS => return Ok(Out::Options),
        Method::GET | Method::POST | Method::DELETE => {}
        _ => return Err(ApiError::MethodNotAllowed),
    }
    if super::v9::is_v9(req.headers()) || unsigned_in_v9(state, &req) {
        // temBoard 9.x: answered in its own contract. Route, then what can
        // be checked of the signature, then the body (within the budget).
        let (parts, body) = req.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let settings = state.ctx.settings();
        let loaded = |p: &str| settings.config.has_plugin(p);
        let (route, params) = super::routes::lookup_v9(&parts.method, parts.uri.path(), loaded)?
            .ok_or_else(|| super::v9::not_found(parts.uri.path()))?;
        *matched = Some(route.path);
        let mut _reserved = None;
        let raw = if parts.method == Method::POST {
            let len = content_length(&parts.headers)?;
            if route.session {
                super::v9::precheck(state, &parts.method, target, &parts.headers)?;
            }
            let (b, r) = read_body(state, peer, len, body).await?;
            _reserved = Some(r);
            *consumed = true;
            Some(b)
        } else {
            None
        };
        let (caller, signature_status) = if route.session {
            let signed = super::v9::verify(
                state,
                &parts.method,
                target,
                &parts.headers,
                raw.as_deref().unwrap_or(&[]),
            )
            .await?;
            let caller = Caller {
                session: String::new(),
                username: signed.user,
            };
            (Some(caller), None)
        } else if route.signature_optional {
            let status = super::v9::signature_status(state, target, &parts.headers);
            (None, Some(status))
        } else {
            (None, None)
        };
        let call = crate::api::Call {
            route,
            state,
            peer,
            caller,
            // The core's 9.x routes read no body (9.x ignored it, even
            // malformed); a plugin's is parsed.
            body: match route.plugin {
                Some(_) => super::v9::json_body(&parts.headers, raw)?,
                None => Value::Null,
            },
            path: params,
            query: crate::api::parse_query(parts.uri.query()),
            received,
            signature_status,
        };
        return match tokio::time::timeout(route.deadline, (route.handler)(call)).await {
            Ok(r) => r.map(Out::Reply),
            Err(_) => Err(ApiError::Timeout),
        };
    }
    let settings = state.ctx.settings();
    let (route, params) = super::routes::lookup(req.method(), req.uri().path(), |p| {
        settings.config.has_plugin(p)
    })
    .ok_or(ApiError::NotFound)?;
    *matched = Some(route.path);
    let (parts, body) = req.into_parts();
    let query = crate::api::parse_query(parts.uri.query());
    // Facts 1.4 reads the body before the session; here its length is
    // checked first (same 400 and 413) and the body is read only once the
    // caller is known, so an unauthenticated peer makes the agent hold no
    // body (a route without credentials, `/login`, reads it within the
    // budget).
    let length = match parts.method {
        Method::POST => Some(content_length(&parts.headers)?),
        _ => None,
    };
    let by_key = route.key
        && !parts.headers.contains_key("x-session")
        && !parts.headers.contains_key(hyper::header::AUTHORIZATION);
    let caller = if by_key {
        if let Some(hint) = route.credentials_hint {
            if !super::credentials::offers_key(&parts.headers, &query) {
                return Err(ApiError::Status(401, hint.into()));
            }
        }
        super::credentials::check_key(state, &parts.headers, &query)?;
        Some(Caller {
            session: String::new(),
            username: "key".into(),
        })
    } else if route.session {
        Some(super::credentials::authenticate(state, &parts.method, &parts.headers).await?)
    } else {
        None
    };
    let mut _reserved = None;
    let raw = match length {
        Some(len) => {
            let (b, r) = read_body(state, peer, len, body).await?;
            _reserved = Some(r);
            *consumed = true;
            Some(b)
        }
        None => None,
    };
    let body = match raw {
        Some(b) => serde_json::from_slice::<Value>(&b)
            .map_err(|_| ApiError::BadRequest("Invalid json format"))?,
        None => Value::Null,
    };
    let call = crate::api::Call {
        route,
        state,
        peer,
        caller,
        body,
        path: params,
        query,
        received,
        signature_status: None,
    };
    match tokio::time::timeout(route.deadline, (route.handler)(call)).await {
        Ok(r) => r.map(Out::Reply),
        Err(_) => Err(ApiError::Timeout),
    }
}

/// The response of an outcome with a whole body.
fn whole_response(state: &AppState, outcome: Result<Out, ApiError>) -> Response<Full<Bytes>> {
    match outcome {
        Ok(Out::Reply(Reply::Json(v))) => json_response(state, StatusCode::OK, &v),
        Ok(Out::Reply(Reply::JsonStatus(code, v))) => json_response(state, code, &v),
        Ok(Out::Reply(Reply::JsonHeaders(body, headers))) => {
            let mut resp = json_response(state, StatusCode::OK, &body);
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(name, v);
                }
            }
            resp
        }
        Ok(Out::Reply(Reply::Text(text))) => {
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            base_headers(state, &mut resp);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        Ok(Out::Reply(Reply::RawJson(text, headers))) => {
            let mut resp = Response::new(Full::new(text));
            base_headers(state, &mut resp);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(name, v);
                }
            }
            resp
        }
        Ok(Out::Reply(Reply::Empty)) => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            base_headers(state, &mut resp);
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        Ok(Out::Reply(Reply::Html(page))) => {
            let mut resp = Response::new(Full::new(Bytes::from_static(page.as_bytes())));
            base_headers(state, &mut resp);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        Ok(Out::Options) => options_response(state),
        Err(e) => error_response(state, &e),
        Ok(Out::Reply(Reply::Stream(_))) => error_response(
            state,
            &ApiError::Internal("a stream is not a whole body".into()),
        ),
    }
}

/// Routes of the agent itself, in neither temBoard contract: answered the
/// same whatever `unsigned_contract` says (a load balancer's `/health`,
/// Prometheus's `/metrics` with a token).
const NEUTRAL: &[&str] = &[
    "/health",
    "/metrics",
    "/agent/self",
    "/openapi.json",
    "/docs",
];

/// Whether a request without a signature is answered in the 9.x contract:
/// `[temboard] unsigned_contract` is 9 (by default when only the 9.x way
/// is configured), it carries no 2.x credential (a session, a token, the
/// agent key, or a 2.x login: those are answered in the contract they
/// belong to), and it is not for one of the agent's own routes.
fn unsigned_in_v9(state: &AppState, req: &Request<Incoming>) -> bool {
    let settings = state.ctx.settings();
    let t = &settings.config.temboard;
    if t.unsigned_contract != 9 {
        return false;
    }
    let h = req.headers();
    // A 2.x login is how a 2.x credential starts, where 2.x logins are on.
    let login = t.users.is_some() && req.uri().path() == "/login";
    let credential = login
        || h.contains_key("x-session")
        || h.contains_key(hyper::header::AUTHORIZATION)
        || h.contains_key("x-temboard-agent-key")
        || crate::api::parse_query(req.uri().query())
            .iter()
            .any(|(k, _)| k == "key");
    !credential && !NEUTRAL.contains(&req.uri().path())
}

/// The `Content-Length` of a POST: 400 when missing or invalid (chunked
/// bodies are not read, as in 2.x), 413 past [`MAX_BODY`].
fn content_length(headers: &HeaderMap) -> Result<usize, ApiError> {
    let len: usize = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or(ApiError::BadRequest("Unable to read post data"))?;
    if len > MAX_BODY {
        return Err(ApiError::PayloadTooLarge(MAX_BODY));
    }
    Ok(len)
}

/// Reads a body of `len` bytes within [`BODY_TIMEOUT`], once the worker's
/// body budget has room for it (else 503 with `Retry-After`, before any
/// byte is read). The reservation is held while the body is.
async fn read_body(
    state: &AppState,
    peer: IpAddr,
    len: usize,
    body: Incoming,
) -> Result<(Bytes, super::budget::Reservation), ApiError> {
    let reserved = state.bodies.reserve(peer, len).ok_or_else(|| {
        ApiError::Busy(
            "Too many request bodies in flight (from this address or in all): retry shortly."
                .into(),
        )
    })?;
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, len.max(1)).collect()).await {
        Ok(Ok(collected)) => Ok((collected.to_bytes(), reserved)),
        _ => Err(ApiError::BadRequest("Unable to read post data")),
    }
}

fn base_headers<B>(state: &AppState, resp: &mut Response<B>) {
    let h = resp.headers_mut();
    h.insert(SERVER, state.server_header.clone());
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
}

/// A JSON response with the agent's headers.
fn json_response(state: &AppState, status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes =
        serde_json::to_vec(body).unwrap_or_else(|_| b"{\"error\": \"Internal error.\"}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    base_headers(state, &mut resp);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The one place an [`ApiError`] becomes a response.
fn error_response(state: &AppState, e: &ApiError) -> Response<Full<Bytes>> {
    if let ApiError::Internal(detail) = e {
        error!("internal error: {detail}");
    }
    let mut resp = json_response(
        state,
        e.status(),
        &serde_json::json!({ "error": e.to_string() }),
    );
    let retry = match e {
        ApiError::TooManyRequests(wait) => Some(wait.as_secs().max(1)),
        // Budgets (streams, request bytes) free up within seconds.
        ApiError::Busy(_) => Some(1),
        _ => None,
    };
    if let Some(secs) = retry {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    resp
}

/// `OPTIONS` on any path: the CORS answer of 2.x (facts 1.2), no body.
fn options_response(state: &AppState) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    base_headers(state, &mut resp);
    let h = resp.headers_mut();
    h.insert(
        "Access-Control-Allow-Methods",
        HeaderValue::from_static("POST, GET, DELETE, OPTIONS"),
    );
    h.insert(
        "Access-Control-Allow-Headers",
        HeaderValue::from_static("X-Requested-With, X-Session, Content-Type"),
    );
    h.insert(
        "Access-Control-Max-Age",
        HeaderValue::from_static("1728000"),
    );
    resp
}
