//! The monitoring plugin's `/health` component: the collector push.

use rusqlite::Connection;
use serde_json::{json, Value};

use crate::config::Config;

/// `collector`: `ok` while pushes succeed (or nothing waits), `failing` when
/// payloads pile up without a success for three intervals, `disabled`
/// without a `collector_url` or when the plugin is not loaded; with the
/// queue length either way.
pub fn component(
    c: &Connection,
    config: &Config,
    now: f64,
) -> rusqlite::Result<(&'static str, Value)> {
    let last_success = crate::store::meta::get(c, "collector_last_success")?;
    let backlog = super::store::backlog(c)?;
    let m = &super::config::settings(config);
    let value = match (&m.collector_url, config.has_plugin("monitoring")) {
        (Some(_), true) => {
            let recent =
                last_success.is_some_and(|t| now - t < 3.0 * m.scheduler_interval as f64 + 30.0);
            json!({
                "status": if recent || backlog <= 1 { "ok" } else { "failing" },
                "last_success": last_success.map(|t| chrono::DateTime::from_timestamp(t as i64, 0).map(|d| d.to_rfc3339())),
                "queue": backlog,
            })
        }
        _ => json!({ "status": "disabled", "queue": backlog }),
    };
    Ok(("collector", value))
}
