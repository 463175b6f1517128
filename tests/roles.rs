//! Role changes against real servers: a streaming standby promoted with
//! `pg_ctl promote` is reported as a primary within one check of the
//! scheduler (10 s), with an audit notification, its role, timeline and
//! change count in `/metrics`, and the risks judged as a primary's.

mod common;

use std::time::Duration;

use common::*;

const KEY: &str = "k3y-for-roles-0123456789abcdef";

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_promoted_standby_is_reported_as_a_primary_with_a_notification() {
    let primary = PgCluster::start();
    let standby = PgCluster::standby_of(&primary);
    let mut files = AgentFiles::new(Some(&standby));
    files.set("temboard", "key", KEY);
    files.set(
        "temboard",
        "plugins",
        r#"["activity", "dashboard", "monitoring", "risks"]"#,
    );
    files.set("risks", "interval", "1");
    files.write();
    let agent = Agent::start(files);
    let scrape = || {
        String::from_utf8_lossy(
            &agent
                .request("GET", "/metrics", &[("X-TemBoard-Agent-Key", KEY)], None)
                .unwrap()
                .body,
        )
        .to_string()
    };
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            text = scrape();
            metric(&text, "temboard_postgresql_in_recovery") == Some(1.0)
                && metric(&text, "temboard_postgresql_timeline") == Some(1.0)
        }),
        "the standby's role and timeline: {text}"
    );
    assert_eq!(
        metric(&text, "temboard_postgresql_role_changes_total"),
        Some(0.0)
    );
    let s = agent.login("alice", "alice");
    assert!(
        !agent
            .notification_messages(&s)
            .iter()
            .any(|m| m.contains("promoted")),
        "no promotion yet"
    );

    standby.promote();
    assert!(
        eventually(Duration::from_secs(60), || {
            text = scrape();
            metric(&text, "temboard_postgresql_in_recovery") == Some(0.0)
        }),
        "the promotion is not seen: {text}"
    );
    assert_eq!(
        metric(&text, "temboard_postgresql_timeline"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "temboard_postgresql_role_changes_total"),
        Some(1.0),
        "{text}"
    );
    let messages = agent.notification_messages(&s);
    assert!(
        messages
            .iter()
            .any(|m| m == "PostgreSQL was promoted: now a primary on timeline 2"),
        "{messages:?}"
    );
    // The risks follow: judged as a primary's (no receiver finding).
    let mut doc = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(60), || {
            let r = agent
                .request("GET", "/risks", &[("X-TemBoard-Agent-Key", KEY)], None)
                .unwrap();
            doc = r.json();
            doc["in_recovery"] == false
        }),
        "{doc:#}"
    );
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != "replication/receiver"),
        "{doc:#}"
    );
    assert_eq!(promtool_check(&text), "", "promtool check metrics");
}
