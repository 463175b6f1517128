//! Patroni, when `[patroni] url` names its REST API: the member's role,
//! state, timeline, pending restart and lag (`GET /patroni`, `GET
//! /cluster`), read by the scheduler with the checks (the API is local and
//! needs no database password; 3 s at most per request) over verified TLS,
//! or plain HTTP to a loopback address only, Patroni's default. Judged in [`finding`], shown
//! in `/metrics` by [`samples`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::calls::Sample;
use super::judge::{Finding, Severity};

/// What Patroni said about this member, or why it could not be asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Why the API did not answer (then the rest is empty).
    pub error: Option<String>,
    /// `patroni.scope`.
    pub scope: Option<String>,
    /// `patroni.name`.
    pub name: Option<String>,
    /// `role`: `primary` (`master` before 4.0), `replica`, `standby_leader`.
    pub role: Option<String>,
    /// `state`: `running`, `starting`, `stopped`, `crashed`...
    pub state: Option<String>,
    /// `timeline`.
    pub timeline: Option<i64>,
    /// `pending_restart`.
    pub pending_restart: bool,
    /// The settings waiting for a restart.
    pub pending_settings: Vec<String>,
    /// `cluster_unlocked`: no member holds the leader lock.
    pub cluster_unlocked: bool,
    /// This member's lag, bytes (`GET /cluster`), for a replica.
    pub lag_bytes: Option<i64>,
    /// Patroni's version.
    pub version: Option<String>,
}

/// Asks Patroni (3 s at most per request: the scheduler waits for it).
pub fn read(url: &str, ca: Option<&std::path::Path>) -> Member {
    match ask(url, ca) {
        Ok(m) => m,
        Err(e) => Member {
            error: Some(e),
            ..Member::default()
        },
    }
}

fn ask(url: &str, ca: Option<&std::path::Path>) -> Result<Member, String> {
    let trust = crate::ui9::trust(ca.map(std::path::Path::to_path_buf), false);
    let client = crate::http_client::ui_agent(&trust)?;
    let get = |path: &str| -> Result<Value, String> {
        let target = format!("{}{path}", url.trim_end_matches('/'));
        let mut resp = client
            .get(&target)
            .config()
            .timeout_global(Some(Duration::from_secs(3)))
            .build()
            .call()
            .map_err(|e| format!("{target}: {e}"))?;
        // A replica's or a stopped member's document may come with
        // another status than 200 (its health checks): read it whatever
        // the status.
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| format!("{target}: {e}"))?;
        serde_json::from_str(&body).map_err(|e| format!("{target}: not JSON: {e}"))
    };
    let p = get("/patroni")?;
    let name = p["patroni"]["name"].as_str().map(str::to_string);
    let cluster = get("/cluster").unwrap_or(Value::Null);
    let lag_bytes = cluster["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"].as_str() == name.as_deref()))
        .and_then(|m| m["lag"].as_i64());
    let mut pending: Vec<String> = p["pending_restart_reason"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    pending.sort();
    Ok(Member {
        error: None,
        scope: p["patroni"]["scope"].as_str().map(str::to_string),
        name,
        role: p["role"].as_str().map(str::to_string),
        state: p["state"].as_str().map(str::to_string),
        timeline: p["timeline"].as_i64(),
        pending_restart: p["pending_restart"].as_bool().unwrap_or(false),
        pending_settings: pending,
        cluster_unlocked: p["cluster_unlocked"].as_bool().unwrap_or(false),
        lag_bytes,
        version: p["patroni"]["version"].as_str().map(str::to_string),
    })
}

/// The `patroni` finding.
pub fn finding(m: &Member, url: &str, lag_mb: (u64, u64)) -> Finding {
    let subject = m.name.clone().unwrap_or_else(|| url.to_string());
    let (severity, summary) = if let Some(e) = &m.error {
        (Severity::Critical, format!("Patroni's REST API does not answer: {e}"))
    } else {
        let state = m.state.as_deref().unwrap_or("?");
        let role = m.role.as_deref().unwrap_or("?");
        let mut sev = match state {
            "running" => Severity::Ok,
            "starting" | "restarting" | "creating replica" | "running custom bootstrap script" => Severity::Warning,
            _ => Severity::Critical,
        };
        let mut why = vec![format!("{role}, {state}, timeline {}", m.timeline.map_or("?".into(), |t| t.to_string()))];
        if m.cluster_unlocked {
            sev = Severity::Critical;
            why.push("no member holds the leader lock".into());
        }
        if m.pending_restart {
            sev = sev.max(Severity::Warning);
            why.push(format!("restart pending for {}", m.pending_settings.join(", ")));
        }
        if let Some(lag) = m.lag_bytes {
            let mb = lag as f64 / 1024.0 / 1024.0;
            if mb >= lag_mb.1 as f64 {
                sev = Severity::Critical;
            } else if mb >= lag_mb.0 as f64 {
                sev = sev.max(Severity::Warning);
            }
            why.push(format!("lag {mb:.1} MB"));
        }
        (sev, format!("Patroni member {subject}: {}", why.join("; ")))
    };
    Finding {
        id: format!("patroni/{subject}"),
        check: "patroni".into(),
        subject: Some(subject),
        severity,
        summary,
        evidence: json!(m),
        threshold: json!({"lag_warning_mb": lag_mb.0, "lag_critical_mb": lag_mb.1}),
        remedy: "patronictl list shows the cluster; patronictl restart applies pending settings; Patroni's log says why a member is not running".into(),
    }
}

/// `temboard_patroni_*` of the member.
pub fn samples(m: &Member) -> Vec<Sample> {
    let labels = vec![
        ("scope".to_string(), m.scope.clone().unwrap_or_default()),
        ("name".to_string(), m.name.clone().unwrap_or_default()),
    ];
    let mut out = vec![Sample(
        "temboard_patroni_up".into(),
        vec![],
        if m.error.is_none() { 1.0 } else { 0.0 },
    )];
    if m.error.is_some() {
        return out;
    }
    let primary = matches!(m.role.as_deref(), Some("primary" | "master"));
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    out.push(Sample("temboard_patroni_primary".into(), labels.clone(), flag(primary)));
    out.push(Sample("temboard_patroni_running".into(), labels.clone(), flag(m.state.as_deref() == Some("running"))));
    out.push(Sample("temboard_patroni_pending_restart".into(), labels.clone(), flag(m.pending_restart)));
    out.push(Sample("temboard_patroni_cluster_unlocked".into(), labels.clone(), flag(m.cluster_unlocked)));
    if let Some(t) = m.timeline {
        out.push(Sample("temboard_patroni_timeline".into(), labels.clone(), t as f64));
    }
    if let Some(l) = m.lag_bytes {
        out.push(Sample("temboard_patroni_lag_bytes".into(), labels, l as f64));
    }
    out
}

