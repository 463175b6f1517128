//! The HTTP side of the plugin API: a route ([`Route`]), what its handler
//! gets ([`Call`]) and answers ([`Reply`]), and the request helpers shared
//! by the core's and the plugins' handlers. The route table and the
//! pipeline that uses it are the http worker's (`workers::http`).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use crate::workers::http::state::AppState;

/// The authenticated caller of a session route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Session id.
    pub session: String,
    /// User name.
    pub username: String,
}

/// A string parameter of a JSON body checked like 2.x `validate_parameters`:
/// `Parameter 'X' not sent.` when absent, `... is malformed.` when not a
/// string or refused by `valid`.
pub fn string_param<'a>(
    body: &'a Value,
    key: &str,
    valid: fn(&str) -> bool,
) -> Result<&'a str, ApiError> {
    let v = body.get(key).ok_or_else(|| ApiError::not_sent(key))?;
    match v.as_str() {
        Some(s) if valid(s) => Ok(s),
        _ => Err(ApiError::malformed(key)),
    }
}

/// Decoded query parameters; blank values are dropped, as Python's
/// `parse_qs` does.
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

/// Everything a handler gets: the request, already routed, authenticated and
/// its body parsed.
pub struct Call<'a> {
    /// The route matched (a handler serving several routes reads its path).
    pub route: &'static Route,
    /// The worker's shared state (IPC clients, state database, settings).
    pub state: &'a Arc<AppState>,
    /// Client address.
    pub peer: IpAddr,
    /// Who is asking, on authenticated routes.
    pub caller: Option<Caller>,
    /// The JSON body of a POST (`null` otherwise).
    pub body: Value,
    /// Captures of the route's `{name}` segments, in order.
    pub path: Vec<String>,
    /// Query parameters.
    pub query: Query,
    /// When the request arrived (login timing).
    pub received: Instant,
    /// On a 9.x route whose signature is optional (`GET /discover`): what
    /// the signature is (`enabled` when absent, `valid`, `invalid`).
    pub signature_status: Option<&'static str>,
}

impl Call<'_> {
    /// The caller of an authenticated route.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::Internal("session route without caller".into()))
    }

    /// First value of a query parameter.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter of digits only (the 9.x `^[0-9]+$` rule, e.g.
    /// `limit`): `default` when absent, 406 `Parameter 'key' is malformed.`
    /// for anything else (9.0.1 answered some of these with a 500).
    pub fn digits(&self, key: &str, default: u64) -> Result<u64, ApiError> {
        match self.param(key) {
            None => Ok(default),
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                v.parse().map_err(|_| ApiError::malformed(key))
            }
            Some(_) => Err(ApiError::malformed(key)),
        }
    }

    /// The `i`-th path capture (empty when absent).
    pub fn segment(&self, i: usize) -> &str {
        self.path.get(i).map(String::as_str).unwrap_or("")
    }
}

/// What a handler answers.
pub enum Reply {
    /// JSON, status 200.
    Json(Value),
    /// JSON with another status (health).
    JsonStatus(StatusCode, Value),
    /// JSON, status 200, with extra headers (9.x `ETag`,
    /// `X-TemBoard-Discover-ETag`).
    JsonHeaders(Value, Vec<(&'static str, String)>),
    /// JSON text built by the handler, never parsed again (the hot
    /// `/dashboard`, 9.x `/monitoring/history`), with extra headers (that
    /// one's `X-TemBoard-Discover-ETag`).
    RawJson(Bytes, Vec<(&'static str, String)>),
    /// An HTML page (`/docs`).
    Html(&'static str),
    /// Prometheus text (`/metrics`).
    Text(String),
    /// JSON streamed from the probe worker as it is produced (an answer as
    /// large as the data: `/statements`).
    Stream(crate::ipc::client::ChunkStream),
    /// 200 with an empty `text/plain` body: what 9.x answers when a
    /// handler returns nothing (facts 9.x 1.1: `POST /pgconf/settings`).
    Empty,
}

/// A handler's future.
pub type Handled<'a> = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>>;

/// A route's handler.
pub type HandlerFn = for<'a> fn(Call<'a>) -> Handled<'a>;

/// The temBoard contract a route answers in: one binary serves both UIs,
/// and a request is answered in the contract of how it authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    /// temBoard 2.x: sessions, API tokens, the agent key; 2.x shapes.
    V2,
    /// temBoard 8.x–10.x: RSA-signed requests; 9.x shapes and error strings.
    V9,
}

/// Default time a handler may take before the request gets a 504.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// One routed (method, path).
#[derive(Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path; `{name}` segments capture one non-empty segment.
    pub path: &'static str,
    /// Whether a valid `X-Session` (or API token) is required.
    pub session: bool,
    /// Whether the agent key (`?key=` or `X-TemBoard-Agent-Key`) is accepted
    /// instead of a session (temBoard 3.x+ read-only routes).
    pub key: bool,
    /// Plugin the route belongs to (routed only when loaded).
    pub plugin: Option<&'static str>,
    /// Which contract: a 9.x route is reached only by signed requests.
    pub contract: Contract,
    /// OpenAPI operation id.
    pub id: &'static str,
    /// Time the handler may take before the request gets a 504.
    pub deadline: Duration,
    /// Said with the 401 when a keyed route gets no credential at all (where
    /// "key not configured" would send operators to the wrong fix).
    pub credentials_hint: Option<&'static str>,
    /// 9.x only: a signature is checked when present and its status handed
    /// to the handler, never refused (`GET /discover`, which the UI calls
    /// to learn whether its key is accepted).
    pub signature_optional: bool,
    /// What runs.
    pub handler: HandlerFn,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl Route {
    /// A route with the default deadline and no credentials hint.
    const fn base(
        plugin: Option<&'static str>,
        method: &'static str,
        path: &'static str,
        session: bool,
        key: bool,
        id: &'static str,
        handler: HandlerFn,
    ) -> Route {
        Route {
            method,
            path,
            session,
            key,
            plugin,
            contract: Contract::V2,
            id,
            deadline: DEADLINE,
            credentials_hint: None,
            signature_optional: false,
            handler,
        }
    }

    /// A route of `plugin` that needs a session or token.
    pub const fn new(
        plugin: &'static str,
        method: &'static str,
        path: &'static str,
        id: &'static str,
        handler: HandlerFn,
    ) -> Route {
        Route::base(Some(plugin), method, path, true, false, id, handler)
    }

    /// A `GET` route of `plugin` that also accepts the agent key.
    pub const fn keyed(
        plugin: &'static str,
        path: &'static str,
        id: &'static str,
        handler: HandlerFn,
    ) -> Route {
        Route::base(Some(plugin), "GET", path, true, true, id, handler)
    }

    /// A 9.x route of `plugin`: signed requests only, answered in 9.x shapes.
    pub const fn signed(
        plugin: &'static str,
        method: &'static str,
        path: &'static str,
        id: &'static str,
        handler: HandlerFn,
    ) -> Route {
        Route {
            contract: Contract::V9,
            ..Route::base(Some(plugin), method, path, true, false, id, handler)
        }
    }

    /// A 9.x core route (no plugin): `signed` says whether a valid
    /// signature is required.
    pub const fn core9(
        method: &'static str,
        path: &'static str,
        signed: bool,
        id: &'static str,
        handler: HandlerFn,
    ) -> Route {
        Route {
            contract: Contract::V9,
            ..Route::base(None, method, path, signed, false, id, handler)
        }
    }

    /// The same route with its signature optional (see
    /// [`Route::signature_optional`]).
    pub const fn signature_optional(self) -> Route {
        Route {
            signature_optional: true,
            ..self
        }
    }

    /// The same route with another deadline.
    pub const fn with_deadline(self, deadline: Duration) -> Route {
        Route { deadline, ..self }
    }

    /// A core route (no plugin).
    pub const fn core(
        method: &'static str,
        path: &'static str,
        session: bool,
        key: bool,
        id: &'static str,
        handler: HandlerFn,
    ) -> Route {
        Route::base(None, method, path, session, key, id, handler)
    }
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
