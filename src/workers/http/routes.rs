//! The route table: exact (method, path) matching only (our decision against
//! 2.x prefix matching), with `{name}` segments for path parameters. A
//! plugin's routes exist only while the plugin is loaded, as in 2.x. The table
//! is data, so documentation is checked against it and cannot drift.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::core::{self, Caller};
use super::error::ApiError;
use super::{health, metrics, openapi, AppState};

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
    const fn core(
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

/// What `/metrics` asked without any credential answers.
const METRICS_CREDENTIALS: &str = "Authentication required: send a session (X-Session), an API token (Authorization: Bearer <token>; create a read-only one with: temboard-agent-token -c <config> create <name> --read-only) or the agent key (X-TemBoard-Agent-Key header or ?key=).";

/// The core routes (no plugin): sessions, notifications, discovery, health,
/// metrics, the agent itself and its API description.
pub const CORE_ROUTES: &[Route] = &[
    Route::core("POST", "/login", false, false, "Login", core::route_login),
    Route::core("GET", "/logout", true, false, "Logout", core::route_logout),
    Route::core(
        "GET",
        "/profile",
        true,
        false,
        "Profile",
        core::route_profile,
    ),
    Route::core(
        "GET",
        "/notifications",
        true,
        true,
        "Notifications",
        core::route_notifications,
    ),
    Route::core(
        "GET",
        "/discover",
        false,
        false,
        "Discover",
        core::route_discover,
    ),
    Route::core("GET", "/status", false, false, "Status", core::route_status),
    Route::core("GET", "/health", false, false, "Health", health::route),
    Route {
        credentials_hint: Some(METRICS_CREDENTIALS),
        ..Route::core("GET", "/metrics", true, true, "Metrics", metrics::route)
    },
    Route::core(
        "GET",
        "/agent/self",
        true,
        false,
        "AgentSelf",
        core::route_self,
    ),
    Route::core(
        "GET",
        "/openapi.json",
        false,
        false,
        "OpenApi",
        openapi::route_document,
    ),
    Route::core("GET", "/docs", false, false, "Docs", openapi::route_docs),
];

/// Every route of the agent: core first (2.x, then 9.x), then each
/// registered plugin's.
pub fn all() -> Vec<&'static Route> {
    every().collect()
}

/// The routes without collecting them (lookup runs once per request).
fn every() -> impl Iterator<Item = &'static Route> {
    CORE_ROUTES.iter().chain(super::v9::CORE_ROUTES).chain(
        crate::plugins::REGISTRY
            .iter()
            .flat_map(|p| p.routes.iter()),
    )
}

fn matches(pattern: &str, path: &str, params: &mut Vec<String>) -> bool {
    let mut p = pattern.split('/');
    let mut r = path.split('/');
    loop {
        match (p.next(), r.next()) {
            (None, None) => return true,
            // `{name*}`: the rest of the path, slashes included (9.x
            // `<name:path>`, e.g. a pgconf category `Resource Usage / Memory`).
            (Some(seg), Some(got)) if seg.starts_with('{') && seg.ends_with("*}") => {
                let rest: Vec<&str> = std::iter::once(got).chain(r.by_ref()).collect();
                let rest = rest.join("/");
                if rest.is_empty() || p.next().is_some() {
                    return false;
                }
                params.push(rest);
                return true;
            }
            (Some(seg), Some(got)) if seg.starts_with('{') && seg.ends_with('}') => {
                if got.is_empty() {
                    return false;
                }
                params.push(got.to_string());
            }
            (Some(seg), Some(got)) if seg == got => {}
            _ => return false,
        }
    }
}

/// Finds the 2.x route of a request and its path parameters; `loaded` says
/// whether a plugin is loaded.
pub fn lookup(
    method: &Method,
    path: &str,
    loaded: impl Fn(&str) -> bool,
) -> Option<(&'static Route, Vec<String>)> {
    lookup_in(Contract::V2, method, path, loaded)
}

/// Finds the route of a request in one contract's table.
pub fn lookup_in(
    contract: Contract,
    method: &Method,
    path: &str,
    loaded: impl Fn(&str) -> bool,
) -> Option<(&'static Route, Vec<String>)> {
    every().find_map(|r| {
        if r.contract != contract || r.method != method.as_str() || !r.plugin.is_none_or(&loaded) {
            return None;
        }
        let mut params = vec![];
        matches(r.path, path, &mut params).then_some((r, params))
    })
}

/// Whether some route of the contract has this path with another method
/// (9.x answers 405 there, 404 elsewhere).
pub fn path_known(contract: Contract, path: &str, loaded: impl Fn(&str) -> bool) -> bool {
    every().any(|r| {
        r.contract == contract && r.plugin.is_none_or(&loaded) && matches(r.path, path, &mut vec![])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: Method, path: &str) -> Option<&'static str> {
        lookup(&method, path, |_| true).map(|(r, _)| r.id)
    }

    #[test]
    fn exact_matching_only() {
        assert_eq!(find(Method::GET, "/status"), Some("Status"));
        assert!(find(Method::GET, "/status/").is_none());
        assert!(find(Method::GET, "/stat").is_none());
        assert!(find(Method::POST, "/logout").is_none());
        assert!(find(Method::GET, "/login").is_none());
        assert!(find(Method::GET, "/activity/").is_none());
        assert!(find(Method::GET, "/operations/").is_none());
        assert!(find(Method::GET, "/operations/a/b").is_none());
        let (r, params) = lookup(&Method::GET, "/operations/abc", |_| true).unwrap();
        assert_eq!((r.id, params), ("Operation", vec!["abc".to_string()]));
        assert!(lookup(&Method::GET, "/activity", |p| p != "activity").is_none());
        assert!(lookup(&Method::GET, "/status", |_| false).is_some());
    }

    #[test]
    fn every_route_is_documented_and_unique() {
        let doc = include_str!("../../../docs/api.md");
        for r in all() {
            assert!(
                doc.contains(&format!("| {} | `{}` |", r.method, r.path)),
                "{} {} not in docs/api.md",
                r.method,
                r.path
            );
        }
        let mut seen = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for r in all() {
            assert!(
                seen.insert((r.contract, r.method, r.path)),
                "duplicate route {} {}",
                r.method,
                r.path
            );
            assert!(ids.insert(r.id), "duplicate operation id {}", r.id);
        }
    }

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
