//! Risks plugin: what takes PostgreSQL down, seen early — transaction id
//! wraparound, replication slots that keep WAL, failing archiving,
//! standbys that lag or stop, what holds back VACUUM, sequences near their
//! end, connections near the limit, invalid indexes, requested
//! checkpoints, file systems filling up. `GET /risks` (2.x session, token
//! or agent key; 9.x signed) returns the findings, worst first, each with
//! its evidence, the threshold used and a remedy; `/metrics` has a gauge
//! per finding. The checks run in the scheduler ([`job`]), read through
//! the probe worker ([`probe`]), are judged by [`judge`] against
//! `[risks]` ([`config`]) and kept in the state database ([`store`]).
//! Off unless listed in `[temboard] plugins`.

mod calls;
pub mod config;
mod families;
mod job;
mod patroni;
pub mod judge;
mod probe;
mod store;

use rusqlite::Connection;
use serde_json::{json, Value};

use crate::api::{ApiError, Call, Exposition, Handled, Plugin, ProbeHost, Reply, Route, Work};
use crate::ipc::messages::WorkerError;
pub use calls::{Observed, RisksCall};

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "risks",
    routes: &[
        Route::keyed("risks", "/risks", "Risks", list),
        Route::signed("risks", "GET", "/risks", "Risks9", list),
    ],
    probe: Some(|| Box::new(RisksWork)),
    jobs: || vec![Box::new(job::Check::default())],
    keys: config::KEYS,
    settings: Some(config::validate),
    migrations: store::MIGRATIONS,
    metrics: Some(metrics),
    ..Plugin::NOTHING
};

struct RisksWork;

impl Work<ProbeHost> for RisksWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: RisksCall| match c {
            RisksCall::Instance {
                statement_timeout,
                lock_timeout,
            } => probe::instance(host, (statement_timeout, lock_timeout))
                .map(|i| Observed::Instance(Box::new(i))),
            RisksCall::Databases {
                statement_timeout,
                lock_timeout,
                tables_per_database,
                tables_in_all,
            } => probe::databases(
                host,
                (statement_timeout, lock_timeout),
                (tables_per_database, tables_in_all),
            ),
        })
    }
}

/// `GET /risks[?severity=warning|critical]`: the last run's findings,
/// worst first (those at least as bad as `severity` when given), when the
/// checks ran, and what they could not read.
fn list(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let least = match c.param("severity") {
            None | Some("ok") => 0,
            Some("warning") => 1,
            Some("critical") => 2,
            Some(_) => {
                return Err(ApiError::NotAcceptable(
                    "Parameter 'severity' is malformed: expected ok, warning or critical.".into(),
                ))
            }
        };
        let (report, failure, findings) = c
            .state
            .db
            .read(|db| {
                Ok((
                    store::observed(db, "report")?,
                    store::observed(db, "failure")?,
                    store::findings(db)?,
                ))
            })
            .await?;
        let rank = |f: &Value| match f["severity"].as_str() {
            Some("critical") => 2,
            Some("warning") => 1,
            _ => 0,
        };
        let findings: Vec<Value> = findings.into_iter().filter(|f| rank(f) >= least).collect();
        let mut doc = report.map(|(_, r)| r).unwrap_or_else(|| json!({"checked_at": null, "errors": []}));
        // The last run could not read PostgreSQL: the findings are the
        // previous run's, and the document says so.
        doc["error"] = failure.map_or(Value::Null, |(_, f)| f["error"].clone());
        doc["findings"] = Value::Array(findings);
        Ok(Reply::Json(doc))
    })
}

/// `temboard_risk_severity{check, subject}`: 0 ok, 1 warning, 2 critical;
/// when the checks last ran and how many parts they could not read (the
/// alert rules tell stale findings from good news by these).
fn metrics(db: &Connection, out: &mut Exposition) -> rusqlite::Result<()> {
    if let Some((at, report)) = store::observed(db, "report")? {
        out.add(
            "temboard_risks_checked_timestamp_seconds",
            "gauge",
            "When the risks' checks last read PostgreSQL, Unix time.",
            &[],
            at,
        );
        out.add(
            "temboard_risks_errors",
            "gauge",
            "Parts of the risks' checks the last run could not read (GET /risks says which and why).",
            &[],
            report["errors"].as_array().map_or(0, Vec::len) as f64,
        );
    }
    // The statistics views' families: the instance's, then each scanned
    // database's largest tables.
    let mut samples: Vec<families::Sample> = vec![];
    if let Some((_, doc)) = store::observed(db, "metrics")? {
        samples.extend(serde_json::from_value::<Vec<families::Sample>>(doc).unwrap_or_default());
    }
    if let Some((_, doc)) = store::observed(db, "databases")? {
        if let Ok(Observed::Databases { scans, .. }) = serde_json::from_value(doc) {
            samples.extend(scans.into_iter().flat_map(|s| s.samples));
        }
    }
    for families::Sample(family, labels, value) in &samples {
        let (kind, help) = families::describe(family);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        out.add(family, kind, &help, &labels, *value);
    }
    for (check, subject, level) in store::levels(db)? {
        out.add(
            "temboard_risk_severity",
            "gauge",
            "Severity of each risk finding: 0 ok, 1 warning, 2 critical (GET /risks has the evidence).",
            &[("check", &check), ("subject", subject.as_deref().unwrap_or(""))],
            level as f64,
        );
    }
    Ok(())
}
