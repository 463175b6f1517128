//! The risks plugin against a real cluster and the real binary: each risk
//! is provoked for real (a slot that keeps WAL, an archive_command that
//! fails, a transaction left open, a prepared transaction, transaction ids
//! burnt past a lowered threshold, sequences near their end, an invalid
//! index, requested checkpoints, connections near the limit, a standby
//! stopped), seen in `GET /risks` with its evidence and in `/metrics`, then
//! cleared and seen cleared.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const KEY: &str = "k3y-for-risks-0123456789abcdef";

fn agent_for(pg: &PgCluster, extra: &[(&str, &str)]) -> Agent {
    let mut files = AgentFiles::new(Some(pg));
    files.set("temboard", "plugins", r#"["risks"]"#);
    files.set("temboard", "key", KEY);
    files.set("risks", "interval", "1");
    files.set("risks", "tables_interval", "1");
    for (k, v) in extra {
        files.set("risks", k, v);
    }
    files.write();
    Agent::start(files)
}

fn risks(agent: &Agent) -> Value {
    let r = agent
        .request("GET", "/risks", &[("X-TemBoard-Agent-Key", KEY)], None)
        .expect("GET /risks");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn find<'a>(doc: &'a Value, id: &str) -> Option<&'a Value> {
    doc["findings"].as_array()?.iter().find(|f| f["id"] == id)
}

/// Waits (a minute at most: a run each second) until finding `id` is as
/// `want` says, and returns it; `None` waits until it is gone.
fn until(agent: &Agent, id: &str, want: Option<&str>, also: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let seen = eventually(Duration::from_secs(60), || {
        last = risks(agent);
        match (find(&last, id), want) {
            (None, None) => true,
            (Some(f), Some(sev)) => f["severity"] == sev && also(f),
            _ => false,
        }
    });
    assert!(seen, "{id}: never {want:?}; last document: {last:#}");
    find(&last, id).cloned().unwrap_or(Value::Null)
}

fn any(_: &Value) -> bool {
    true
}

#[test]
fn each_risk_is_seen_then_cleared() {
    let pg = PgCluster::start_with(
        "-c archive_mode=on -c max_prepared_transactions=4 -c max_connections=20",
    );
    let agent = agent_for(
        &pg,
        &[
            ("xid_age_warning", "3000"),
            ("xid_age_critical", "1000000"),
            ("horizon_age_warning", "1000"),
            ("slot_retained_warning_mb", "1"),
            ("slot_retained_critical_mb", "100000"),
            ("transaction_warning", "1"),
            ("idle_in_transaction_warning", "1"),
            ("prepared_warning", "1"),
            ("connections_warning_percent", "50"),
        ],
    );
    let mut admin = pg.client();

    // Nothing wrong yet (archiving has not had to archive anything); the
    // per-database scans' findings come with the run after theirs.
    until(&agent, "sequences/postgres", Some("ok"), any);
    let ok = until(&agent, "long_transaction", Some("ok"), any);
    assert_eq!(ok["summary"], "no transaction open");
    let doc = risks(&agent);
    assert_eq!(doc["errors"], serde_json::json!([]), "{doc:#}");
    for id in [
        "wraparound/postgres",
        "sequences/postgres",
        "invalid_indexes/postgres",
        "connections",
        "horizon",
    ] {
        let f = find(&doc, id).unwrap_or_else(|| panic!("{id} missing: {doc:#}"));
        assert_eq!(f["severity"], "ok", "{f:#}");
    }
    let disk = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "disk")
        .expect("the data directory's file system");
    assert!(
        disk["evidence"]["total_bytes"].as_i64().unwrap() > 0,
        "{disk:#}"
    );
    assert!(
        disk["evidence"]["holds"]
            .as_array()
            .unwrap()
            .contains(&"pg_wal".into()),
        "{disk:#}"
    );

    // A slot that keeps WAL: created with its WAL reserved, then 10 MB of
    // WAL written.
    admin
        .batch_execute(
            "SELECT pg_create_physical_replication_slot('held', true);
             CREATE TABLE filler AS SELECT g, repeat('x', 100) AS t FROM generate_series(1, 60000) g;",
        )
        .unwrap();
    let slot = until(&agent, "replication_slot/held", Some("warning"), |f| {
        f["evidence"]["retained_bytes"].as_i64().unwrap_or(0) > 1024 * 1024
    });
    assert_eq!(slot["evidence"]["active"], false, "{slot:#}");
    assert_eq!(slot["threshold"]["retained_warning_mb"], 1);

    // An archive_command that fails (set in the configuration, not on the
    // command line, so that a reload can mend it later).
    for sql in [
        "ALTER SYSTEM SET archive_command = 'false'",
        "SELECT pg_reload_conf()",
        "SELECT pg_switch_wal()",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    // A warning: it has been failing for less than archive_failing_critical.
    let archiving = until(&agent, "archiving", Some("warning"), |f| {
        f["evidence"]["failing"] == true
    });
    assert!(
        archiving["evidence"]["failed_count"].as_i64().unwrap() >= 1,
        "{archiving:#}"
    );
    assert!(
        archiving["summary"]
            .as_str()
            .unwrap()
            .contains("archive_command fails"),
        "{archiving:#}"
    );

    // A transaction left open (it wrote: it holds the horizon by its id),
    // and a prepared one; then transaction ids burnt past the lowered
    // wraparound threshold.
    let mut open = pg.client();
    open.batch_execute("BEGIN; CREATE TABLE left_open (a int);")
        .unwrap();
    let open_pid: i32 = open
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut prep = pg.client();
    prep.batch_execute("BEGIN; CREATE TABLE prepared_one (a int); PREPARE TRANSACTION 'p1';")
        .unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN FOR i IN 1..4000 LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$",
        )
        .unwrap();
    let long = until(&agent, "long_transaction", Some("warning"), any);
    assert_eq!(
        long["evidence"]["transactions"][0]["pid"], open_pid,
        "{long:#}"
    );
    let idle = until(&agent, "idle_in_transaction", Some("warning"), any);
    assert_eq!(idle["evidence"]["sessions"][0]["pid"], open_pid, "{idle:#}");
    let prepared = until(&agent, "prepared_transactions", Some("warning"), any);
    assert_eq!(
        prepared["evidence"]["prepared"][0]["gid"], "p1",
        "{prepared:#}"
    );
    let horizon = until(&agent, "horizon", Some("warning"), any);
    assert!(
        horizon["evidence"]["holders"][0]["xid_age"]
            .as_i64()
            .unwrap()
            >= 4000,
        "{horizon:#}"
    );
    let wrap = until(&agent, "wraparound/postgres", Some("warning"), |f| {
        f["evidence"]["oldest_tables"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    });
    assert!(
        wrap["evidence"]["xid_age"].as_i64().unwrap() >= 4000,
        "{wrap:#}"
    );
    assert_eq!(wrap["threshold"]["limit"], 2147483648i64);

    // Sequences near their end: one of its own range, a bigint one that
    // feeds an int4 column.
    admin
        .batch_execute(
            "CREATE SEQUENCE near MAXVALUE 100; SELECT setval('near', 96);
             CREATE TABLE narrow (id int); CREATE SEQUENCE wide OWNED BY narrow.id;
             SELECT setval('wide', 2000000000);",
        )
        .unwrap();
    let seq = until(&agent, "sequences/postgres", Some("critical"), any);
    let listed = seq["evidence"]["sequences"].as_array().unwrap();
    let wide = listed
        .iter()
        .find(|s| s["name"] == "public.wide")
        .expect("wide listed");
    assert_eq!(
        wide["limit"], 2147483647i64,
        "the int4 column bounds it: {seq:#}"
    );
    assert_eq!(wide["column"], "public.narrow.id");
    let near = listed
        .iter()
        .find(|s| s["name"] == "public.near")
        .expect("near listed");
    assert_eq!(near["percent"], 95.96, "{seq:#}");

    // An invalid index (a failed CREATE INDEX CONCURRENTLY), requested
    // checkpoints, connections past half the limit.
    admin
        .batch_execute("CREATE TABLE dup (a int); INSERT INTO dup VALUES (1), (1);")
        .unwrap();
    assert!(admin
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY dup_a ON dup (a)")
        .is_err());
    let invalid = until(&agent, "invalid_indexes/postgres", Some("warning"), any);
    assert_eq!(
        invalid["evidence"]["indexes"][0], "public.dup_a",
        "{invalid:#}"
    );
    for _ in 0..10 {
        admin.batch_execute("CHECKPOINT").unwrap();
    }
    until(&agent, "checkpoints", Some("warning"), any);
    let crowd: Vec<postgres::Client> = (0..10).map(|_| pg.client()).collect();
    let conns = until(&agent, "connections", Some("warning"), any);
    assert_eq!(conns["evidence"]["max_connections"], 20, "{conns:#}");

    // Each is in /metrics.
    let metrics = agent
        .request("GET", "/metrics", &[("X-TemBoard-Agent-Key", KEY)], None)
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    for line in [
        "temboard_risk_severity{check=\"replication_slot\",subject=\"held\"} 1",
        "temboard_risk_severity{check=\"archiving\",subject=\"\"} 1",
        "temboard_risk_severity{check=\"sequences\",subject=\"postgres\"} 2",
    ] {
        assert!(text.contains(line), "{line} not in /metrics:\n{text}");
    }
    assert_eq!(promtool_check(&text), "", "promtool check metrics");

    // Then each cleared.
    drop(crowd);
    open.batch_execute("COMMIT").unwrap();
    prep.batch_execute("ROLLBACK PREPARED 'p1'").unwrap();
    // (One statement at a time: ALTER SYSTEM refuses a transaction block.)
    for sql in [
        "SELECT pg_drop_replication_slot('held')",
        "ALTER SYSTEM SET archive_command = 'true'",
        "SELECT pg_reload_conf()",
        "ALTER SEQUENCE near MAXVALUE 100000",
        "DROP SEQUENCE wide",
        "DROP INDEX dup_a",
        "SELECT pg_stat_reset_shared('bgwriter')",
        "ALTER DATABASE template0 ALLOW_CONNECTIONS true",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    for db in ["postgres", "template0", "template1"] {
        pg.client_to(db).batch_execute("VACUUM FREEZE").unwrap();
    }
    for sql in [
        "ALTER DATABASE template0 ALLOW_CONNECTIONS false",
        "INSERT INTO filler VALUES (0, '')",
        "SELECT pg_switch_wal()",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    until(&agent, "replication_slot/held", None, any);
    until(&agent, "archiving", Some("ok"), |f| {
        f["evidence"]["failing"] == false
    });
    for id in [
        "long_transaction",
        "idle_in_transaction",
        "prepared_transactions",
        "horizon",
        "wraparound/postgres",
        "wraparound/template0",
        "sequences/postgres",
        "invalid_indexes/postgres",
        "checkpoints",
        "connections",
    ] {
        until(&agent, id, Some("ok"), any);
    }
    agent.assert_no_secret_in_log();
}

#[test]
fn a_stopped_standby_is_reported_until_it_streams_again() {
    let primary = PgCluster::start();
    let mut standby = PgCluster::standby_of(&primary);
    let agent = agent_for(&primary, &[]);
    let id = "replication/walreceiver@local";
    let seen = until(&agent, id, Some("ok"), any);
    assert_eq!(seen["evidence"]["state"], "streaming", "{seen:#}");
    standby.stop();
    let gone = until(&agent, id, Some("warning"), |f| {
        f["evidence"]["connected"] == false
    });
    assert!(
        gone["summary"].as_str().unwrap().contains("not connected"),
        "{gone:#}"
    );
    standby.start_again();
    until(&agent, id, Some("ok"), |f| {
        f["evidence"]["state"] == "streaming"
    });

    // The standby's own agent sees its receiver.
    let on_standby = agent_for(&standby, &[]);
    let receiver = until(&on_standby, "replication/receiver", Some("ok"), any);
    assert_eq!(receiver["evidence"]["status"], "streaming", "{receiver:#}");
    assert_eq!(risks(&on_standby)["in_recovery"], true);
}

#[test]
fn bad_thresholds_and_parameters_get_clear_errors() {
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "plugins", r#"["risks"]"#);
    files.set("risks", "xid_age_warning", "2000");
    files.set("risks", "xid_age_critical", "1000");
    files.write();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_temboard-agent"))
        .args(["--configfile"])
        .arg(files.conf())
        .arg("show-config")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("xid_age_warning") && text.contains("xid_age_critical"),
        "{text}"
    );

    let agent = agent_for(&pg, &[]);
    let r = agent
        .request(
            "GET",
            "/risks?severity=loud",
            &[("X-TemBoard-Agent-Key", KEY)],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 406, "{}", String::from_utf8_lossy(&r.body));
    let r = agent.request("GET", "/risks", &[], None).unwrap();
    assert_eq!(r.status, 401);
}

fn scrape(agent: &Agent) -> String {
    let r = agent
        .request("GET", "/metrics", &[("X-TemBoard-Agent-Key", KEY)], None)
        .unwrap();
    String::from_utf8_lossy(&r.body).to_string()
}

/// The tables of `datname` in the per-table families.
fn tables_in(text: &str, datname: &str) -> Vec<String> {
    let prefix = format!("temboard_pg_stat_user_tables_size_bytes{{datname=\"{datname}\",schemaname=\"public\",relname=\"");
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| l.split('"').next().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn per_table_families_are_the_largest_tables_only() {
    let pg = PgCluster::start();
    let mut admin = pg.client();
    for (name, rows) in [
        ("tiny", 1),
        ("small", 100),
        ("mid", 2000),
        ("large", 20000),
        ("huge", 60000),
    ] {
        admin
            .batch_execute(&format!(
                "CREATE TABLE {name} AS SELECT g AS id, repeat('x', 100) AS t FROM generate_series(1, {rows}) g; ANALYZE {name};"
            ))
            .unwrap();
    }
    let agent = agent_for(&pg, &[("tables_per_database", "2")]);
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            text = scrape(&agent);
            !tables_in(&text, "postgres").is_empty()
        }),
        "{text}"
    );
    assert_eq!(tables_in(&text, "postgres"), ["huge", "large"], "{text}");
    for family in [
        "temboard_pg_stat_user_tables_n_live_tup{datname=\"postgres\",schemaname=\"public\",relname=\"huge\"} ",
        "# TYPE temboard_pg_statio_user_tables_heap_blks_hit_total counter",
        "# TYPE temboard_pg_stat_database_deadlocks_total counter",
        "# TYPE temboard_pg_postmaster_start_time_seconds gauge",
    ] {
        assert!(text.contains(family), "{family} not in:\n{text}");
    }
    assert_eq!(promtool_check(&text), "", "promtool check metrics");
    let with = text.lines().filter(|l| !l.starts_with('#')).count();

    // None at all with 0; the rest stays.
    let none = agent_for(&pg, &[("tables_per_database", "0")]);
    assert!(eventually(Duration::from_secs(60), || {
        text = scrape(&none);
        text.contains("temboard_pg_stat_database_deadlocks_total")
            && text.contains("temboard_risk_severity{check=\"sequences\"")
    }));
    assert!(tables_in(&text, "postgres").is_empty(), "{text}");
    let without = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        without < with,
        "{without} series without per-table families, {with} with"
    );

    // A budget for all databases together: by name, postgres gets its 2,
    // shop the 1 left.
    admin.batch_execute("CREATE DATABASE shop").unwrap();
    pg.client_to("shop")
        .batch_execute("CREATE TABLE a AS SELECT 1 AS x; CREATE TABLE b AS SELECT 1 AS x; CREATE TABLE c AS SELECT 1 AS x;")
        .unwrap();
    let budget = agent_for(&pg, &[("tables_per_database", "2"), ("tables_in_all", "3")]);
    assert!(eventually(Duration::from_secs(60), || {
        text = scrape(&budget);
        !tables_in(&text, "shop").is_empty()
    }));
    assert_eq!(tables_in(&text, "postgres"), ["huge", "large"], "{text}");
    assert_eq!(tables_in(&text, "shop").len(), 1, "{text}");
}
