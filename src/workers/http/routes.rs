//! The route table: exact (method, path) matching only (our decision against
//! 2.x prefix matching), with `{name}` segments for path parameters. A
//! plugin's routes exist only while the plugin is loaded, as in 2.x. The table
//! is data, so documentation is checked against it and cannot drift.

use hyper::Method;

use super::{core, health, metrics, openapi};
use crate::api::{ApiError, Call, Contract, Handled, Reply, Route};

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
        route_openapi,
    ),
    Route::core("GET", "/docs", false, false, "Docs", route_docs),
];

/// `GET /openapi.json`: the OpenAPI document of this table.
fn route_openapi(_c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { Ok(Reply::Json(openapi::document(&all()))) })
}

/// `GET /docs`: the page that renders it.
fn route_docs(_c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { Ok(Reply::Html(openapi::DOCS_HTML)) })
}

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

/// The route of a 9.x request and its captures. The path is
/// matched on its segments as sent (and signed), then each captured
/// segment is percent-decoded once (facts 1.2, with 14.8: UTF-8 names
/// decode once), so an encoded `/` (`%2F`) stays inside its segment
/// instead of routing as several; a plugin's bare prefix with a `/`
/// reaches its root route; a known path with another method is a 405.
pub fn lookup_v9(
    method: &Method,
    raw_path: &str,
    loaded: impl Fn(&str) -> bool + Copy,
) -> Result<Option<(&'static Route, Vec<String>)>, ApiError> {
    let invalid = || super::v9::error(400, "Invalid path string. Expected UTF-8");
    percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| invalid())?;
    // A plugin's bare prefix with a `/` (`/activity/`) reaches its root
    // route, as 9.x mounts plugins; the core's routes are matched as sent
    // (9.x: `/status/` is not found).
    let trimmed =
        (raw_path.len() > 1 && raw_path.ends_with('/') && raw_path.matches('/').count() == 2)
            .then(|| &raw_path[..raw_path.len() - 1]);
    let found = lookup_in(Contract::V9, method, raw_path, loaded).or_else(|| {
        trimmed.and_then(|t| {
            lookup_in(Contract::V9, method, t, loaded).filter(|(r, _)| r.plugin.is_some())
        })
    });
    if let Some((route, raw)) = found {
        let params = raw
            .iter()
            .map(|p| {
                percent_encoding::percent_decode_str(p)
                    .decode_utf8()
                    .map(|d| d.into_owned())
                    .map_err(|_| invalid())
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some((route, params)));
    }
    let plugin_path = |t: &str| {
        every().any(|r| {
            r.contract == Contract::V9
                && r.plugin.is_some_and(&loaded)
                && matches(r.path, t, &mut vec![])
        })
    };
    if path_known(Contract::V9, raw_path, loaded) || trimmed.is_some_and(plugin_path) {
        return Err(super::v9::error(405, "Method not allowed."));
    }
    Ok(None)
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
}
