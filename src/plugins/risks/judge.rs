//! The findings: what was observed ([`super::calls`]) judged against the
//! `[risks]` thresholds, each with its evidence, the threshold used and a
//! one-line remedy. Pure: the job hands in what it remembers (when a
//! condition was first seen, the disks' recent use) and stores the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::calls::*;
use super::config::{Settings, WRAP_LIMIT};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    Ok,
    /// Act soon.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The `/metrics` value: 0, 1, 2.
    pub fn level(self) -> i64 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
        }
    }

    /// `Critical` past `critical`, `Warning` past `warning`, else `Ok`.
    fn above(value: f64, warning: u64, critical: u64) -> Severity {
        if value >= critical as f64 {
            Severity::Critical
        } else if value >= warning as f64 {
            Severity::Warning
        } else {
            Severity::Ok
        }
    }
}

/// One finding of `GET /risks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id: the check, then its subject (`wraparound/shop`).
    pub id: String,
    /// The check (`wraparound`, `replication_slot`...).
    pub check: String,
    /// What it is about (a database, slot, standby, file system), if not
    /// the whole instance.
    pub subject: Option<String>,
    /// `ok`, `warning` or `critical`.
    pub severity: Severity,
    /// One line saying what was seen.
    pub summary: String,
    /// The numbers and names behind it.
    pub evidence: Value,
    /// The thresholds it was judged by.
    pub threshold: Value,
    /// What to do.
    pub remedy: String,
}

/// What the job remembers between runs, handed to [`judge`].
#[derive(Debug, Default)]
pub struct Memory {
    /// Conditions by key: when first seen, and a value (a counter's base).
    pub seen: BTreeMap<String, (f64, Option<i64>)>,
    /// Each file system's (time, used bytes) over the last hours, oldest first.
    pub disk_use: BTreeMap<String, Vec<(f64, i64)>>,
}

const MB: f64 = 1024.0 * 1024.0;

/// Every check a finding may come from: the alert rules have a pair of
/// alerts for each, a warning one only for [`WARNING_ONLY`]
/// (tests/alert_rules.rs holds them to these lists).
pub const CHECKS: &[&str] = &[
    "wraparound",
    "replication_slot",
    "archiving",
    "replication",
    "long_transaction",
    "idle_in_transaction",
    "prepared_transactions",
    "horizon",
    "sequences",
    "invalid_indexes",
    "connections",
    "checkpoints",
    "disk",
    "patroni",
];

/// Checks that are never critical (nothing in them is urgent by itself).
pub const WARNING_ONLY: &[&str] = &["prepared_transactions", "invalid_indexes", "checkpoints"];

fn finding(
    check: &str,
    subject: Option<&str>,
    severity: Severity,
    summary: String,
    evidence: Value,
    threshold: Value,
    remedy: &str,
) -> Finding {
    debug_assert!(CHECKS.contains(&check), "{check} is not in CHECKS");
    Finding {
        id: match subject {
            Some(s) => format!("{check}/{s}"),
            None => check.to_string(),
        },
        check: check.to_string(),
        subject: subject.map(str::to_string),
        severity,
        summary,
        evidence,
        threshold,
        remedy: remedy.to_string(),
    }
}

/// The findings of the latest observations, at `now` (Unix seconds).
/// `memory.seen` is updated: conditions that ended are forgotten.
pub fn judge(
    instance: &Instance,
    scans: &[DatabaseScan],
    s: &Settings,
    memory: &mut Memory,
    now: f64,
) -> Vec<Finding> {
    let mut out = vec![];
    let mut seen_now: BTreeMap<String, (f64, Option<i64>)> = BTreeMap::new();
    // Marks a condition as present and says since when it holds; for
    // standbys (`standby/…`), when they were last seen connected.
    let mut since = |key: String, value: Option<i64>| -> (f64, Option<i64>) {
        let kept = if key.starts_with("standby/") {
            (now, value)
        } else {
            memory.seen.get(&key).copied().unwrap_or((now, value))
        };
        seen_now.insert(key, kept);
        kept
    };
    wraparound(instance, scans, s, &mut out);
    slots(instance, s, now, &mut since, &mut out);
    archiving(instance, s, now, &mut since, &mut out);
    replication(instance, s, now, memory, &mut since, &mut out);
    transactions(instance, s, &mut out);
    per_database(scans, s, &mut out);
    connections(instance, s, &mut out);
    checkpoints(instance, s, &mut out);
    disks(instance, s, memory, now, &mut out);
    // Standbys seen lately are remembered even while away (until
    // `standby_forget_after`), so a stopped one stays reported.
    let forget = s.get("standby_forget_after") as f64;
    for (key, v) in &memory.seen {
        if key.starts_with("standby/") && !seen_now.contains_key(key) && now - v.0 < forget {
            seen_now.insert(key.clone(), *v);
        }
    }
    memory.seen = seen_now;
    // One finding per id (two standbys with one name on one host): the
    // worst kept.
    out.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| b.severity.cmp(&a.severity)));
    out.dedup_by(|a, b| a.id == b.id);
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    out
}

fn wraparound(i: &Instance, scans: &[DatabaseScan], s: &Settings, out: &mut Vec<Finding>) {
    let (w, c) = s.pair("xid_age_warning", "xid_age_critical");
    for d in &i.databases {
        let worst = d.xid_age.max(d.mxid_age);
        let severity = Severity::above(worst as f64, w, c);
        let percent = (worst as f64 / WRAP_LIMIT as f64 * 1000.0).round() / 10.0;
        let oldest = scans
            .iter()
            .find(|x| x.datname == d.datname)
            .map(|x| json!(x.oldest_tables));
        let behind = d.xid_age > i.freeze_max_age || d.mxid_age > i.multixact_freeze_max_age;
        out.push(finding(
            "wraparound",
            Some(&d.datname),
            severity,
            format!(
                "database {}: {percent} % of the way to wraparound (transaction id age {}, multixact age {}){}",
                d.datname,
                d.xid_age,
                d.mxid_age,
                if behind { ", past autovacuum's freeze age: an anti-wraparound VACUUM is due" } else { "" }
            ),
            json!({
                "xid_age": d.xid_age,
                "mxid_age": d.mxid_age,
                "percent_of_limit": percent,
                "autovacuum_freeze_max_age": i.freeze_max_age,
                "autovacuum_multixact_freeze_max_age": i.multixact_freeze_max_age,
                "oldest_tables": oldest,
            }),
            json!({"warning": w, "critical": c, "limit": WRAP_LIMIT}),
            "VACUUM (FREEZE, VERBOSE) the oldest tables of this database, and clear what holds back VACUUM (see the horizon finding)",
        ));
    }
}

fn slots(
    i: &Instance,
    s: &Settings,
    now: f64,
    since: &mut impl FnMut(String, Option<i64>) -> (f64, Option<i64>),
    out: &mut Vec<Finding>,
) {
    let (w, c) = s.pair("slot_retained_warning_mb", "slot_retained_critical_mb");
    let inactive_warning = s.get("slot_inactive_warning") as f64;
    for slot in &i.slots {
        let retained_mb = slot.retained_bytes.unwrap_or(0) as f64 / MB;
        let mut severity = Severity::above(retained_mb, w, c);
        let mut why = vec![format!("retains {:.0} MB of WAL", retained_mb)];
        match slot.wal_status.as_deref() {
            Some("lost") | Some("unreserved") => {
                severity = Severity::Critical;
                why.push(format!(
                    "wal_status {}",
                    slot.wal_status.as_deref().unwrap_or_default()
                ));
            }
            Some("extended") => {
                severity = severity.max(Severity::Warning);
                why.push("wal_status extended (past max_wal_size)".into());
            }
            _ => {}
        }
        let inactive_for = if slot.active {
            None
        } else {
            // 17+ says since when; before, the agent counts from when it
            // first saw the slot inactive.
            let first = since(format!("slot_inactive/{}", slot.slot_name), None).0;
            Some(slot.inactive_seconds.unwrap_or(now - first))
        };
        if let Some(t) = inactive_for {
            if t >= inactive_warning {
                severity = severity.max(Severity::Warning);
            }
            why.push(format!("inactive for {:.0} s", t));
        }
        out.push(finding(
            "replication_slot",
            Some(&slot.slot_name),
            severity,
            format!("{} slot {}: {}", slot.slot_type, slot.slot_name, why.join(", ")),
            json!({
                "slot_type": slot.slot_type,
                "database": slot.database,
                "active": slot.active,
                "inactive_seconds": inactive_for,
                "wal_status": slot.wal_status,
                "safe_wal_size": slot.safe_wal_size,
                "retained_bytes": slot.retained_bytes,
                "xmin_age": slot.xmin_age,
                "catalog_xmin_age": slot.catalog_xmin_age,
            }),
            json!({"retained_warning_mb": w, "retained_critical_mb": c, "inactive_warning_seconds": inactive_warning}),
            "restart the slot's consumer; if it is gone for good, SELECT pg_drop_replication_slot(name); bound what a slot may keep with max_slot_wal_keep_size",
        ));
    }
}

fn archiving(
    i: &Instance,
    s: &Settings,
    now: f64,
    since: &mut impl FnMut(String, Option<i64>) -> (f64, Option<i64>),
    out: &mut Vec<Finding>,
) {
    let Some(a) = &i.archiver else {
        if !i.archive_mode.is_empty() {
            out.push(finding(
                "archiving",
                None,
                Severity::Ok,
                format!("archiving is not running here (archive_mode {})", i.archive_mode),
                json!({"archive_mode": i.archive_mode}),
                json!({}),
                "nothing to do",
            ));
        }
        return;
    };
    let failing = a.failed_count > 0
        && match (a.last_failed_seconds, a.last_archived_seconds) {
            (Some(f), Some(ok)) => f < ok,
            (Some(_), None) => true,
            _ => false,
        };
    // Failures since the last success: the counter's value when archiving
    // last worked is remembered.
    let (failing_since, base) = if failing {
        let (first, base) = since("archive_failing".into(), Some(a.failed_count));
        (Some(first), base.unwrap_or(0))
    } else {
        (None, a.failed_count)
    };
    let (rw, rc) = s.pair("archive_ready_warning", "archive_ready_critical");
    let failing_critical = s.get("archive_failing_critical") as f64;
    let mut severity = a.ready.map_or(Severity::Ok, |r| Severity::above(r as f64, rw, rc));
    // Critical once it has been failing that long (as the agent saw it):
    // not at the first failure of a quiet server that archives rarely.
    let failing_for = failing_since.map(|first| now - first);
    if let Some(t) = failing_for {
        let long = t >= failing_critical;
        severity = severity.max(if long { Severity::Critical } else { Severity::Warning });
    }
    let summary = if failing {
        format!(
            "archive_command fails: {} failures since the last success, last on {} {:.0} s ago; last archived {}",
            (a.failed_count - base).max(1),
            a.last_failed_wal.as_deref().unwrap_or("?"),
            a.last_failed_seconds.unwrap_or(0.0),
            match (&a.last_archived_wal, a.last_archived_seconds) {
                (Some(w), Some(t)) => format!("{w} {t:.0} s ago"),
                _ => "never".into(),
            }
        )
    } else {
        format!(
            "archiving works: {} segments archived, {} waiting",
            a.archived_count,
            a.ready.map_or("?".into(), |r| r.to_string())
        )
    };
    out.push(finding(
        "archiving",
        None,
        severity,
        summary,
        json!({
            "failing": failing,
            "failing_seconds": failing_for,
            "failures_since_success": if failing { Some((a.failed_count - base).max(1)) } else { None },
            "archived_count": a.archived_count,
            "failed_count": a.failed_count,
            "last_archived_wal": a.last_archived_wal,
            "last_archived_seconds": a.last_archived_seconds,
            "last_failed_wal": a.last_failed_wal,
            "last_failed_seconds": a.last_failed_seconds,
            "ready": a.ready,
        }),
        json!({"ready_warning": rw, "ready_critical": rc, "failing_critical_seconds": failing_critical}),
        "read the server log for archive_command's error and fix it (destination full, unreachable, permissions); segments wait in pg_wal until then",
    ));
}

fn standby_key(st: &Standby) -> String {
    format!(
        "{}@{}",
        st.application_name,
        st.client_addr.as_deref().unwrap_or("local")
    )
}

fn replication(
    i: &Instance,
    s: &Settings,
    now: f64,
    memory: &Memory,
    since: &mut impl FnMut(String, Option<i64>) -> (f64, Option<i64>),
    out: &mut Vec<Finding>,
) {
    let (tw, tc) = s.pair("replication_lag_warning", "replication_lag_critical");
    let (bw, bc) = s.pair("replication_lag_warning_mb", "replication_lag_critical_mb");
    let threshold = json!({"lag_warning_seconds": tw, "lag_critical_seconds": tc, "lag_warning_mb": bw, "lag_critical_mb": bc});
    if i.in_recovery {
        let (severity, summary) = match &i.receiver {
            None => (Severity::Critical, "the WAL receiver could not be read".to_string()),
            Some(r) if !r.running && r.primary_conninfo_set == Some(false) => {
                // Log shipping by design: judged by how old the last
                // replayed transaction is.
                let t = r.replay_delay_seconds.unwrap_or(0.0);
                (
                    Severity::above(t, tw, tc),
                    format!("restores from the archive (no primary_conninfo), last replayed commit {t:.0} s ago"),
                )
            }
            Some(r) if !r.running => (
                Severity::Critical,
                "this standby has no WAL receiver: it does not stream from its primary".to_string(),
            ),
            Some(r) if r.status.as_deref() != Some("streaming") => (
                Severity::Warning,
                format!(
                    "the WAL receiver is {}, not streaming",
                    r.status.as_deref().unwrap_or("hidden from this role (pg_read_all_stats)")
                ),
            ),
            Some(r) => {
                let t = r.last_message_seconds.unwrap_or(0.0);
                (
                    Severity::above(t, tw, tc),
                    format!("streaming, last message from the primary {t:.0} s ago"),
                )
            }
        };
        out.push(finding(
            "replication",
            Some("receiver"),
            severity,
            summary,
            json!(i.receiver),
            threshold,
            "check primary_conninfo, the primary's pg_hba.conf and the network; the standby's log says why it does not stream",
        ));
        return;
    }
    for st in &i.standbys {
        let key = standby_key(st);
        since(format!("standby/{key}"), None);
        let lag_s = st.replay_lag_seconds.unwrap_or(0.0);
        let lag_mb = st.replay_lag_bytes.unwrap_or(0) as f64 / MB;
        let mut severity = Severity::above(lag_s, tw, tc).max(Severity::above(lag_mb, bw, bc));
        if st.state.as_deref() != Some("streaming") {
            severity = severity.max(Severity::Warning);
        }
        out.push(finding(
            "replication",
            Some(&key),
            severity,
            format!(
                "standby {key}: {}, {} replay lag {:.1} s and {:.1} MB",
                st.state.as_deref().unwrap_or("?"),
                st.sync_state.as_deref().unwrap_or("?"),
                lag_s,
                lag_mb
            ),
            json!(st),
            threshold.clone(),
            "check the standby's load, disk and network; a standby that cannot keep up holds WAL (slots) and, with hot_standby_feedback, the horizon",
        ));
    }
    // Standbys seen lately that are not connected now.
    for (key, (last, _)) in &memory.seen {
        let Some(name) = key.strip_prefix("standby/") else { continue };
        let forgotten = now - last >= s.get("standby_forget_after") as f64;
        if forgotten || i.standbys.iter().any(|st| standby_key(st) == name) {
            continue;
        }
        out.push(finding(
            "replication",
            Some(name),
            Severity::Warning,
            format!("standby {name} is not connected (last seen {:.0} s ago)", now - last),
            json!({"connected": false, "last_seen_seconds": now - last}),
            json!({"forget_after_seconds": s.get("standby_forget_after")}),
            "start the standby or repair its connection; if it was removed on purpose, this clears after standby_forget_after",
        ));
    }
}

fn describe(t: &Transaction) -> Value {
    json!(t)
}

fn transactions(i: &Instance, s: &Settings, out: &mut Vec<Finding>) {
    let (w, c) = s.pair("transaction_warning", "transaction_critical");
    let oldest = i.transactions.first();
    let age = oldest.and_then(|t| t.xact_seconds).unwrap_or(0.0);
    out.push(finding(
        "long_transaction",
        None,
        Severity::above(age, w, c),
        match oldest {
            Some(t) => format!(
                "oldest transaction: {:.0} s, pid {} ({}, {})",
                age,
                t.pid,
                t.usename.as_deref().unwrap_or("?"),
                t.state.as_deref().unwrap_or("?")
            ),
            None => "no transaction open".into(),
        },
        json!({"transactions": i.transactions.iter().map(describe).collect::<Vec<_>>()}),
        json!({"warning_seconds": w, "critical_seconds": c}),
        "ask the application owner; SELECT pg_terminate_backend(pid) if it must end; transaction_timeout (17+) or statement_timeout bound them",
    ));
    let (w, c) = s.pair("idle_in_transaction_warning", "idle_in_transaction_critical");
    let idle = i.idle.first();
    let age = idle.and_then(|t| t.state_seconds).unwrap_or(0.0);
    out.push(finding(
        "idle_in_transaction",
        None,
        Severity::above(age, w, c),
        match idle {
            Some(t) => format!("pid {} idle in transaction for {:.0} s", t.pid, age),
            None => "no session idle in a transaction".into(),
        },
        json!({"sessions": i.idle.iter().map(describe).collect::<Vec<_>>()}),
        json!({"warning_seconds": w, "critical_seconds": c}),
        "fix the application that leaves transactions open; idle_in_transaction_session_timeout ends them",
    ));
    let w = s.get("prepared_warning");
    let p = i.prepared.first();
    out.push(finding(
        "prepared_transactions",
        None,
        if p.is_some_and(|p| p.seconds >= w as f64) { Severity::Warning } else { Severity::Ok },
        match p {
            Some(p) => format!("prepared transaction {:?} in {} for {:.0} s", p.gid, p.database, p.seconds),
            None => "no prepared transaction".into(),
        },
        json!({"prepared": i.prepared}),
        json!({"warning_seconds": w}),
        "COMMIT PREPARED or ROLLBACK PREPARED the transaction once its transaction manager is known to have given up on it",
    ));
    // The horizon: the oldest xmin anything holds.
    let mut holders: Vec<(i64, String)> = vec![];
    if let Some(t) = &i.oldest_xmin {
        if let Some(a) = t.xmin_age {
            holders.push((
                a,
                format!(
                    "backend pid {} ({}, {})",
                    t.pid,
                    t.backend_type.as_deref().unwrap_or("?"),
                    t.application_name.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    for slot in &i.slots {
        if let Some(a) = slot.xmin_age {
            holders.push((a, format!("slot {} xmin", slot.slot_name)));
        }
        if let Some(a) = slot.catalog_xmin_age {
            holders.push((a, format!("slot {} catalog_xmin", slot.slot_name)));
        }
    }
    for p in &i.prepared {
        holders.push((p.xid_age, format!("prepared transaction {:?}", p.gid)));
    }
    holders.sort_by_key(|h| std::cmp::Reverse(h.0));
    let (w, c) = s.pair("horizon_age_warning", "horizon_age_critical");
    let top = holders.first();
    out.push(finding(
        "horizon",
        None,
        Severity::above(top.map_or(0, |h| h.0) as f64, w, c),
        match top {
            Some((a, who)) => format!("VACUUM may not remove rows newer than {a} transactions: held by {who}"),
            None => "nothing holds back VACUUM".into(),
        },
        json!({"holders": holders.iter().take(5).map(|(a, who)| json!({"xid_age": a, "holder": who})).collect::<Vec<_>>()}),
        json!({"warning": w, "critical": c}),
        "end the holder: the transaction, the prepared transaction, or the slot (or its consumer's hot_standby_feedback)",
    ));
}

fn per_database(scans: &[DatabaseScan], s: &Settings, out: &mut Vec<Finding>) {
    let (w, c) = s.pair("sequence_warning_percent", "sequence_critical_percent");
    for d in scans {
        let top = d.sequences.first();
        out.push(finding(
            "sequences",
            Some(&d.datname),
            Severity::above(top.map_or(0.0, |q| q.percent), w, c),
            match top {
                Some(q) => format!(
                    "database {}: sequence {} has used {} % of its range ({} of {}{})",
                    d.datname,
                    q.name,
                    q.percent,
                    q.last_value,
                    q.limit,
                    q.column.as_ref().map_or(String::new(), |col| format!(", feeds {col}"))
                ),
                None => format!("database {}: no sequence in use", d.datname),
            },
            json!({"sequences": d.sequences, "sequences_without_value": d.sequences_without_value}),
            json!({"warning_percent": w, "critical_percent": c}),
            "ALTER SEQUENCE … AS bigint and ALTER TABLE … ALTER COLUMN … TYPE bigint before it runs out (the column too when it is narrower)",
        ));
        out.push(finding(
            "invalid_indexes",
            Some(&d.datname),
            if d.invalid_count > 0 { Severity::Warning } else { Severity::Ok },
            format!("database {}: {} invalid indexes", d.datname, d.invalid_count),
            json!({"count": d.invalid_count, "indexes": d.invalid_indexes}),
            json!({"warning": 1}),
            "an interrupted CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY left them: DROP INDEX CONCURRENTLY, then create them again",
        ));
    }
}

fn connections(i: &Instance, s: &Settings, out: &mut Vec<Finding>) {
    if i.max_connections == 0 {
        return;
    }
    let usable = (i.max_connections - i.reserved_connections).max(1);
    let percent = (i.client_backends as f64 / usable as f64 * 1000.0).round() / 10.0;
    let (w, c) = s.pair("connections_warning_percent", "connections_critical_percent");
    out.push(finding(
        "connections",
        None,
        Severity::above(percent, w, c),
        format!("{} of {} connections in use ({percent} %)", i.client_backends, usable),
        json!({"client_backends": i.client_backends, "max_connections": i.max_connections,
               "reserved_connections": i.reserved_connections, "percent": percent}),
        json!({"warning_percent": w, "critical_percent": c}),
        "find who holds them (activity); put a pooler in front rather than raising max_connections",
    ));
}

fn checkpoints(i: &Instance, s: &Settings, out: &mut Vec<Finding>) {
    let Some(cp) = &i.checkpoints else { return };
    let total = cp.timed + cp.requested;
    let percent = if total > 0 { (cp.requested as f64 / total as f64 * 1000.0).round() / 10.0 } else { 0.0 };
    let w = s.get("checkpoints_requested_warning_percent");
    // Ten checkpoints at least: right after a reset, one CHECKPOINT
    // command would be 100 %.
    let severity = if total >= 10 && percent >= w as f64 { Severity::Warning } else { Severity::Ok };
    out.push(finding(
        "checkpoints",
        None,
        severity,
        format!("{percent} % of {total} checkpoints were requested rather than timed"),
        json!({"timed": cp.timed, "requested": cp.requested, "percent_requested": percent, "source": cp.source}),
        json!({"warning_percent": w, "minimum_checkpoints": 10}),
        "raise max_wal_size so that checkpoints come from checkpoint_timeout",
    ));
}

/// Bytes per second the file system fills at, over the last hour (least
/// squares over at least 3 samples spanning 5 minutes), if it grows.
fn growth(samples: &[(f64, i64)], now: f64) -> Option<f64> {
    let recent: Vec<&(f64, i64)> = samples.iter().filter(|(t, _)| now - t <= 3600.0).collect();
    let span = recent.last()?.0 - recent.first()?.0;
    if recent.len() < 3 || span < 300.0 {
        return None;
    }
    let n = recent.len() as f64;
    let mt = recent.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mu = recent.iter().map(|(_, u)| *u as f64).sum::<f64>() / n;
    let cov: f64 = recent.iter().map(|(t, u)| (t - mt) * (*u as f64 - mu)).sum();
    let var: f64 = recent.iter().map(|(t, _)| (t - mt).powi(2)).sum();
    let slope = cov / var;
    (slope > 0.0).then_some(slope)
}

fn disks(i: &Instance, s: &Settings, memory: &Memory, now: f64, out: &mut Vec<Finding>) {
    let (fw, fc) = s.pair("disk_free_warning_percent", "disk_free_critical_percent");
    let (hw, hc) = s.pair("disk_full_warning_hours", "disk_full_critical_hours");
    for d in &i.disks {
        let free_pct = if d.total_bytes > 0 {
            (d.free_bytes as f64 / d.total_bytes as f64 * 1000.0).round() / 10.0
        } else {
            100.0
        };
        let mut severity = if free_pct <= fc as f64 {
            Severity::Critical
        } else if free_pct <= fw as f64 {
            Severity::Warning
        } else {
            Severity::Ok
        };
        let hours = memory
            .disk_use
            .get(&d.path)
            .and_then(|h| growth(h, now))
            .map(|rate| (d.free_bytes as f64 / rate / 3600.0 * 10.0).round() / 10.0);
        if let Some(h) = hours {
            if h <= hc as f64 {
                severity = Severity::Critical;
            } else if h <= hw as f64 {
                severity = severity.max(Severity::Warning);
            }
        }
        out.push(finding(
            "disk",
            Some(&d.path),
            severity,
            format!(
                "{} ({}): {free_pct} % free{}",
                d.path,
                d.holds.join(", "),
                hours.map_or(String::new(), |h| format!(", full in {h} h at the last hour's growth"))
            ),
            json!({"holds": d.holds, "total_bytes": d.total_bytes, "free_bytes": d.free_bytes,
                   "free_percent": free_pct, "hours_to_full": hours}),
            json!({"free_warning_percent": fw, "free_critical_percent": fc,
                   "full_warning_hours": hw, "full_critical_hours": hc}),
            "free space or grow the file system; a full WAL file system stops PostgreSQL (check slots and archiving first)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_needs_a_span_and_a_rise() {
        assert_eq!(growth(&[(0.0, 10), (100.0, 20)], 200.0), None);
        let rising: Vec<(f64, i64)> = (0..7).map(|i| (i as f64 * 60.0, 1000 + i * 600)).collect();
        let rate = growth(&rising, 400.0).expect("rises");
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
        let falling: Vec<(f64, i64)> = (0..7).map(|i| (i as f64 * 60.0, 10_000 - i * 600)).collect();
        assert_eq!(growth(&falling, 400.0), None);
    }

    #[test]
    fn a_failing_archiver_counts_failures_since_the_last_success() {
        let s = Settings::default();
        let mut memory = Memory::default();
        let mut i = Instance {
            archive_mode: "on".into(),
            archiver: Some(Archiver {
                archived_count: 5,
                last_archived_wal: Some("000000010000000000000005".into()),
                last_archived_seconds: Some(10.0),
                failed_count: 2,
                last_failed_wal: None,
                last_failed_seconds: Some(20.0),
                ready: Some(0),
            }),
            ..Instance::default()
        };
        let f = judge(&i, &[], &s, &mut memory, 1000.0);
        let a = f.iter().find(|f| f.id == "archiving").unwrap();
        assert_eq!(a.severity, Severity::Ok, "{a:?}");
        // Failing now: the counter at the last success was 2.
        if let Some(a) = i.archiver.as_mut() {
            a.failed_count = 5;
            a.last_failed_seconds = Some(1.0);
        }
        memory.seen.insert("archive_failing".into(), (990.0, Some(2)));
        let f = judge(&i, &[], &s, &mut memory, 1000.0);
        let a = f.iter().find(|f| f.id == "archiving").unwrap();
        assert_eq!(a.severity, Severity::Warning, "{a:?}");
        assert_eq!(a.evidence["failures_since_success"], 3);
        // Failing for an hour (archive_failing_critical): critical.
        let f = judge(&i, &[], &s, &mut memory, 990.0 + 3600.0);
        let a = f.iter().find(|f| f.id == "archiving").unwrap();
        assert_eq!(a.severity, Severity::Critical, "{a:?}");
    }

    #[test]
    fn a_standby_seen_then_gone_stays_reported_until_forgotten() {
        let s = Settings::default();
        let mut memory = Memory::default();
        let st = Standby {
            application_name: "s1".into(),
            client_addr: None,
            state: Some("streaming".into()),
            sync_state: Some("async".into()),
            write_lag_bytes: Some(0),
            flush_lag_bytes: Some(0),
            replay_lag_bytes: Some(0),
            write_lag_seconds: None,
            flush_lag_seconds: None,
            replay_lag_seconds: None,
        };
        let mut i = Instance { standbys: vec![st], ..Instance::default() };
        let f = judge(&i, &[], &s, &mut memory, 1000.0);
        assert_eq!(f.iter().find(|f| f.id == "replication/s1@local").unwrap().severity, Severity::Ok);
        i.standbys.clear();
        let f = judge(&i, &[], &s, &mut memory, 1060.0);
        assert_eq!(f.iter().find(|f| f.id == "replication/s1@local").unwrap().severity, Severity::Warning);
        let f = judge(&i, &[], &s, &mut memory, 1000.0 + 86_400.0);
        assert!(f.iter().all(|f| f.id != "replication/s1@local"), "{f:?}");
    }

    #[test]
    fn a_standby_without_primary_conninfo_is_judged_by_its_replay() {
        let s = Settings::default();
        let mut memory = Memory::default();
        let mut i = Instance {
            in_recovery: true,
            receiver: Some(Receiver {
                running: false,
                status: None,
                last_message_seconds: None,
                replay_delay_seconds: Some(5.0),
                primary_conninfo_set: Some(false),
            }),
            ..Instance::default()
        };
        let receiver = |i: &Instance, memory: &mut Memory| {
            judge(i, &[], &s, memory, 1000.0)
                .into_iter()
                .find(|f| f.id == "replication/receiver")
                .unwrap()
        };
        assert_eq!(receiver(&i, &mut memory).severity, Severity::Ok);
        if let Some(r) = i.receiver.as_mut() {
            r.replay_delay_seconds = Some(700.0);
        }
        assert_eq!(receiver(&i, &mut memory).severity, Severity::Critical);
        // Meant to stream, and does not.
        if let Some(r) = i.receiver.as_mut() {
            r.primary_conninfo_set = Some(true);
            r.replay_delay_seconds = Some(1.0);
        }
        assert_eq!(receiver(&i, &mut memory).severity, Severity::Critical);
        // Streaming, its status hidden from the role: a warning, no panic.
        if let Some(r) = i.receiver.as_mut() {
            r.running = true;
        }
        assert_eq!(receiver(&i, &mut memory).severity, Severity::Warning);
    }

    #[test]
    fn two_findings_never_share_an_id() {
        let st = |lag: Option<f64>| Standby {
            application_name: "walreceiver".into(),
            client_addr: Some("10.0.0.2".into()),
            state: Some("streaming".into()),
            sync_state: Some("async".into()),
            write_lag_bytes: None,
            flush_lag_bytes: None,
            replay_lag_bytes: None,
            write_lag_seconds: None,
            flush_lag_seconds: None,
            replay_lag_seconds: lag,
        };
        let i = Instance { standbys: vec![st(Some(1.0)), st(Some(700.0))], ..Instance::default() };
        let f = judge(&i, &[], &Settings::default(), &mut Memory::default(), 1000.0);
        let same: Vec<_> = f.iter().filter(|f| f.id == "replication/walreceiver@10.0.0.2").collect();
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].severity, Severity::Critical, "the worst is kept");
    }
}
