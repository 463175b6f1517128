//! The route table: exact (method, path) matching only (our decision against
//! 2.x prefix matching), with `{name}` segments for path parameters. A
//! plugin's routes exist only while the plugin is loaded, as in 2.x. The table
//! is data, so documentation is checked against it and cannot drift.

use std::time::Duration;

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
    /// `GET /activity`.
    Activity,
    /// `GET /activity/waiting`.
    ActivityWaiting,
    /// `GET /activity/blocking`.
    ActivityBlocking,
    /// `POST /activity/kill`.
    ActivityKill,
    /// `GET /administration/pg_version`.
    PgVersion,
    /// `POST /administration/control`.
    Control,
    /// `GET /operations`.
    Operations,
    /// `GET /operations/{id}`.
    Operation,
    /// `GET /dashboard`.
    Dashboard,
    /// `GET /dashboard/live`.
    DashboardLive,
    /// `GET /dashboard/history`.
    DashboardHistory,
    /// `GET /dashboard/config`.
    DashboardConfig,
    /// `GET /dashboard/<metric>`.
    DashboardMetric(&'static str),
    /// `GET /pgconf/configuration`.
    PgconfSettings,
    /// `GET /pgconf/configuration/category/{category}`.
    PgconfCategory,
    /// `GET /pgconf/configuration/categories`.
    PgconfCategories,
    /// `GET /pgconf/configuration/status`.
    PgconfStatus,
    /// `POST /pgconf/configuration`.
    PgconfUpdate,
    /// `GET /pgconf/hba`.
    HbaGet,
    /// `POST /pgconf/hba`.
    HbaPost,
    /// `DELETE /pgconf/hba`.
    HbaDelete,
    /// `GET /pgconf/hba/raw`.
    HbaRawGet,
    /// `POST /pgconf/hba/raw`.
    HbaRawPost,
    /// `GET /pgconf/hba/options`.
    HbaOptions,
    /// `GET /pgconf/hba/versions`.
    HbaVersions,
    /// `GET /pgconf/pg_ident`.
    IdentGet,
    /// `POST /pgconf/pg_ident`.
    IdentPost,
    /// `GET /monitoring/probe/<name>`.
    MonitoringProbe(&'static str),
    /// `GET /monitoring/config`.
    MonitoringConfig,
    /// `GET /monitoring/history`.
    MonitoringHistory,
    /// `GET /health`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `GET /agent/self`.
    AgentSelf,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /docs`.
    Docs,
}

impl Handler {
    /// Time the handler may take before the request gets a 504.
    pub fn deadline(self) -> Duration {
        match self {
            Handler::Control => crate::workers::pgctl::CALL_TIMEOUT + Duration::from_secs(5),
            _ => Duration::from_secs(30),
        }
    }
}

/// One routed (method, path).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path; `{name}` segments capture one non-empty segment.
    pub path: &'static str,
    /// Whether a valid `X-Session` is required.
    pub session: bool,
    /// Whether the agent key (`?key=` or `X-TemBoard-Agent-Key`) is accepted
    /// instead of a session (temBoard 3.x+ read-only routes).
    pub key: bool,
    /// Plugin the route belongs to (routed only when loaded).
    pub plugin: Option<&'static str>,
    /// What runs.
    pub handler: Handler,
}

const fn core(method: &'static str, path: &'static str, session: bool, handler: Handler) -> Route {
    Route {
        method,
        path,
        session,
        key: false,
        plugin: None,
        handler,
    }
}

const fn plugin(
    plugin: &'static str,
    method: &'static str,
    path: &'static str,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        session: true,
        key: false,
        plugin: Some(plugin),
        handler,
    }
}

const fn keyed(plugin: &'static str, path: &'static str, handler: Handler) -> Route {
    Route {
        method: "GET",
        path,
        session: true,
        key: true,
        plugin: Some(plugin),
        handler,
    }
}

/// Every route of the agent.
pub const ROUTES: &[Route] = &[
    core("POST", "/login", false, Handler::Login),
    core("GET", "/logout", true, Handler::Logout),
    core("GET", "/profile", true, Handler::Profile),
    Route {
        method: "GET",
        path: "/notifications",
        session: true,
        key: true,
        plugin: None,
        handler: Handler::Notifications,
    },
    core("GET", "/discover", false, Handler::Discover),
    core("GET", "/status", false, Handler::Status),
    core("GET", "/health", false, Handler::Health),
    Route {
        method: "GET",
        path: "/metrics",
        session: true,
        key: true,
        plugin: None,
        handler: Handler::Metrics,
    },
    core("GET", "/agent/self", true, Handler::AgentSelf),
    core("GET", "/openapi.json", false, Handler::OpenApi),
    core("GET", "/docs", false, Handler::Docs),
    keyed("activity", "/activity", Handler::Activity),
    keyed("activity", "/activity/waiting", Handler::ActivityWaiting),
    keyed("activity", "/activity/blocking", Handler::ActivityBlocking),
    plugin("activity", "POST", "/activity/kill", Handler::ActivityKill),
    plugin(
        "administration",
        "GET",
        "/administration/pg_version",
        Handler::PgVersion,
    ),
    plugin(
        "administration",
        "POST",
        "/administration/control",
        Handler::Control,
    ),
    plugin("administration", "GET", "/operations", Handler::Operations),
    plugin(
        "administration",
        "GET",
        "/operations/{id}",
        Handler::Operation,
    ),
    plugin(
        "pgconf",
        "GET",
        "/pgconf/configuration",
        Handler::PgconfSettings,
    ),
    plugin(
        "pgconf",
        "GET",
        "/pgconf/configuration/category/{category}",
        Handler::PgconfCategory,
    ),
    plugin(
        "pgconf",
        "GET",
        "/pgconf/configuration/categories",
        Handler::PgconfCategories,
    ),
    plugin(
        "pgconf",
        "GET",
        "/pgconf/configuration/status",
        Handler::PgconfStatus,
    ),
    plugin(
        "pgconf",
        "POST",
        "/pgconf/configuration",
        Handler::PgconfUpdate,
    ),
    plugin("pgconf", "GET", "/pgconf/hba", Handler::HbaGet),
    plugin("pgconf", "POST", "/pgconf/hba", Handler::HbaPost),
    plugin("pgconf", "DELETE", "/pgconf/hba", Handler::HbaDelete),
    plugin("pgconf", "GET", "/pgconf/hba/raw", Handler::HbaRawGet),
    plugin("pgconf", "POST", "/pgconf/hba/raw", Handler::HbaRawPost),
    plugin("pgconf", "GET", "/pgconf/hba/options", Handler::HbaOptions),
    plugin(
        "pgconf",
        "GET",
        "/pgconf/hba/versions",
        Handler::HbaVersions,
    ),
    plugin("pgconf", "GET", "/pgconf/pg_ident", Handler::IdentGet),
    plugin("pgconf", "POST", "/pgconf/pg_ident", Handler::IdentPost),
    keyed(
        "monitoring",
        "/monitoring/probe/sessions",
        Handler::MonitoringProbe("sessions"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/xacts",
        Handler::MonitoringProbe("xacts"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/locks",
        Handler::MonitoringProbe("locks"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/blocks",
        Handler::MonitoringProbe("blocks"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/bgwriter",
        Handler::MonitoringProbe("bgwriter"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/db_size",
        Handler::MonitoringProbe("db_size"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/tblspc_size",
        Handler::MonitoringProbe("tblspc_size"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/filesystems_size",
        Handler::MonitoringProbe("filesystems_size"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/cpu",
        Handler::MonitoringProbe("cpu"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/process",
        Handler::MonitoringProbe("process"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/memory",
        Handler::MonitoringProbe("memory"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/loadavg",
        Handler::MonitoringProbe("loadavg"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/wal_files",
        Handler::MonitoringProbe("wal_files"),
    ),
    keyed(
        "monitoring",
        "/monitoring/probe/replication",
        Handler::MonitoringProbe("replication"),
    ),
    plugin(
        "monitoring",
        "GET",
        "/monitoring/config",
        Handler::MonitoringConfig,
    ),
    keyed(
        "monitoring",
        "/monitoring/history",
        Handler::MonitoringHistory,
    ),
    keyed("dashboard", "/dashboard", Handler::Dashboard),
    keyed("dashboard", "/dashboard/live", Handler::DashboardLive),
    keyed("dashboard", "/dashboard/history", Handler::DashboardHistory),
    keyed("dashboard", "/dashboard/config", Handler::DashboardConfig),
    keyed(
        "dashboard",
        "/dashboard/buffers",
        Handler::DashboardMetric("buffers"),
    ),
    keyed(
        "dashboard",
        "/dashboard/hitratio",
        Handler::DashboardMetric("hitratio"),
    ),
    keyed(
        "dashboard",
        "/dashboard/active_backends",
        Handler::DashboardMetric("active_backends"),
    ),
    keyed(
        "dashboard",
        "/dashboard/max_connections",
        Handler::DashboardMetric("max_connections"),
    ),
    keyed(
        "dashboard",
        "/dashboard/databases",
        Handler::DashboardMetric("databases"),
    ),
    keyed(
        "dashboard",
        "/dashboard/pg_version",
        Handler::DashboardMetric("pg_version"),
    ),
    keyed(
        "dashboard",
        "/dashboard/info",
        Handler::DashboardMetric("info"),
    ),
    keyed(
        "dashboard",
        "/dashboard/cpu",
        Handler::DashboardMetric("cpu"),
    ),
    keyed(
        "dashboard",
        "/dashboard/loadaverage",
        Handler::DashboardMetric("loadaverage"),
    ),
    keyed(
        "dashboard",
        "/dashboard/memory",
        Handler::DashboardMetric("memory"),
    ),
    keyed(
        "dashboard",
        "/dashboard/hostname",
        Handler::DashboardMetric("hostname"),
    ),
    keyed(
        "dashboard",
        "/dashboard/os_version",
        Handler::DashboardMetric("os_version"),
    ),
    keyed(
        "dashboard",
        "/dashboard/n_cpu",
        Handler::DashboardMetric("n_cpu"),
    ),
];

fn matches(pattern: &str, path: &str, params: &mut Vec<String>) -> bool {
    let mut p = pattern.split('/');
    let mut r = path.split('/');
    loop {
        match (p.next(), r.next()) {
            (None, None) => return true,
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

/// Finds the route of a request and its path parameters; `loaded` says
/// whether a plugin is loaded.
pub fn lookup(
    method: &Method,
    path: &str,
    loaded: impl Fn(&str) -> bool,
) -> Option<(&'static Route, Vec<String>)> {
    ROUTES.iter().find_map(|r| {
        if r.method != method.as_str() || !r.plugin.is_none_or(&loaded) {
            return None;
        }
        let mut params = vec![];
        matches(r.path, path, &mut params).then_some((r, params))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(method: Method, path: &str) -> Option<Handler> {
        lookup(&method, path, |_| true).map(|(r, _)| r.handler)
    }

    #[test]
    fn exact_matching_only() {
        assert_eq!(find(Method::GET, "/status"), Some(Handler::Status));
        assert!(find(Method::GET, "/status/").is_none());
        assert!(find(Method::GET, "/stat").is_none());
        assert!(find(Method::POST, "/logout").is_none());
        assert!(find(Method::GET, "/login").is_none());
        assert!(find(Method::GET, "/activity/").is_none());
        assert!(find(Method::GET, "/operations/").is_none());
        assert!(find(Method::GET, "/operations/a/b").is_none());
        let (r, params) = lookup(&Method::GET, "/operations/abc", |_| true).unwrap();
        assert_eq!(
            (r.handler, params),
            (Handler::Operation, vec!["abc".to_string()])
        );
        assert!(lookup(&Method::GET, "/activity", |p| p != "activity").is_none());
        assert!(lookup(&Method::GET, "/status", |_| false).is_some());
    }

    #[test]
    fn every_route_is_documented_and_unique() {
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
