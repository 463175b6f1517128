//! `GET /metrics`: Prometheus text exposition of the agent itself and of
//! what plugins add (the monitoring plugin's last collection), so a fleet of agents plugs into an
//! existing Prometheus. Built from what is already stored: a scrape costs a
//! few SQLite reads, no PostgreSQL query.

use super::state::AppState;
use crate::api::{ApiError, Call, Exposition, Handled, Reply};

/// Renders the exposition.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    // Every registered plugin's families (whether loaded or not, so the
    // exposition keeps its shape), read in one trip to the database.
    let mut out = state
        .db
        .read(|c| {
            let mut out = Exposition::default();
            for hook in crate::plugins::REGISTRY.iter().filter_map(|p| p.metrics) {
                hook(c, &mut out)?;
            }
            role(c, &mut out)?;
            Ok(out)
        })
        .await?;
    out.add(
        "temboard_agent_info",
        "gauge",
        "Agent version.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    for w in state.ctx.supervision().workers {
        out.add(
            "temboard_agent_worker_restarts_total",
            "counter",
            "Worker restarts after a failure.",
            &[("role", w.role.as_str())],
            w.restarts as f64,
        );
    }
    let counts = state.requests.lock().map(|m| m.clone()).unwrap_or_default();
    for ((route, status), n) in counts {
        out.add(
            "temboard_agent_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
            &[("route", &route), ("status", &status.to_string())],
            n as f64,
        );
    }
    Ok(out.render())
}

/// PostgreSQL's role as the scheduler's check last saw it (every 10 s): a
/// promotion shows as `temboard_postgresql_in_recovery` going to 0, a new
/// timeline and one more change.
fn role(c: &rusqlite::Connection, out: &mut Exposition) -> rusqlite::Result<()> {
    use crate::store::meta::get;
    if let Some(v) = get(c, "pg_in_recovery")? {
        out.add(
            "temboard_postgresql_in_recovery",
            "gauge",
            "1 while PostgreSQL is a standby (in recovery), 0 on a primary.",
            &[],
            v,
        );
    }
    if let Some(v) = get(c, "pg_timeline")? {
        out.add(
            "temboard_postgresql_timeline",
            "gauge",
            "The timeline PostgreSQL writes (a primary) or receives (a standby).",
            &[],
            v,
        );
    }
    out.add(
        "temboard_postgresql_role_changes_total",
        "counter",
        "Promotions and demotions the agent saw.",
        &[],
        get(c, "pg_role_changes")?.unwrap_or(0.0),
    );
    Ok(())
}

/// `GET /metrics` route.
pub fn route(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move { render(c.state).await.map(Reply::Text) })
}
