//! The route table: exact (method, path) matching only (our decision against
//! 2.x prefix matching). The table is data, so documentation (and later the
//! OpenAPI description) is generated from it and cannot drift.

use hyper::Method;

/// Handlers known to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `POST /login`.
    Login,
    /// `GET /logout`.
    Logout,
    /// `GET /profile`.
    Profile,
    /// `GET /notifications`.
    Notifications,
    /// `GET /discover`.
    Discover,
    /// `GET /status`.
    Status,
}

/// One routed (method, path).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Exact path.
    pub path: &'static str,
    /// Whether a valid `X-Session` is required.
    pub session: bool,
    /// What runs.
    pub handler: Handler,
}

const fn route(method: &'static str, path: &'static str, session: bool, handler: Handler) -> Route {
    Route {
        method,
        path,
        session,
        handler,
    }
}

/// Every route of the agent.
pub const ROUTES: &[Route] = &[
    route("POST", "/login", false, Handler::Login),
    route("GET", "/logout", true, Handler::Logout),
    route("GET", "/profile", true, Handler::Profile),
    route("GET", "/notifications", true, Handler::Notifications),
    route("GET", "/discover", false, Handler::Discover),
    route("GET", "/status", false, Handler::Status),
];

/// Finds the route of a request.
pub fn lookup(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matching_only() {
        assert_eq!(
            lookup(&Method::GET, "/status").map(|r| r.handler),
            Some(Handler::Status)
        );
        assert!(lookup(&Method::GET, "/status/").is_none());
        assert!(lookup(&Method::GET, "/stat").is_none());
        assert!(lookup(&Method::POST, "/logout").is_none());
        assert!(lookup(&Method::GET, "/login").is_none());
        let doc = include_str!("../../../docs/api.md");
        for r in ROUTES {
            assert!(
                doc.contains(&format!("| {} | `{}` |", r.method, r.path)),
                "{} {} not in docs/api.md",
                r.method,
                r.path
            );
        }
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "duplicate route {} {}",
                r.method,
                r.path
            );
        }
    }
}
