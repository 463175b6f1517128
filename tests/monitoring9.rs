//! Pull monitoring in the temBoard 9.x contract (issue #19, facts 9.x 7.1
//! to 7.3) against the real binary and PostgreSQL, from signed requests:
//! the stored documents (shape, delta records of a first measure dropped,
//! the run's ISO `datetime` on every record), `GET /monitoring/history`
//! with its `start`/`limit` semantics and ETag header, `/monitoring/config`,
//! and the 2.x payload of the same collection unchanged.

mod common;

use std::time::Duration;

use common::signed::*;
use common::*;
use serde_json::{json, Value};

const DELTA_PROBES: [&str; 7] = [
    "xacts",
    "blocks",
    "bgwriter",
    "cpu",
    "process",
    "wal_files",
    "temp_files_size_delta",
];

fn is_iso_micro(s: &str) -> bool {
    // 2026-11-29T20:11:39.951281+00:00
    s.len() == 32
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
        && s.ends_with("+00:00")
        && s.as_bytes()[19] == b'.'
}

fn start_of(doc: &Value) -> String {
    let dt = chrono::NaiveDateTime::parse_from_str(
        doc["datetime"].as_str().unwrap(),
        "%Y-%m-%d %H:%M:%S +0000",
    )
    .unwrap_or_else(|e| panic!("datetime {}: {e}", doc["datetime"]));
    dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[test]
fn monitoring_history_is_pulled_in_the_9x_contract() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("monitoring", "scheduler_interval", "1");
    files.set("temboard", "key", "s3cr3tk3y");
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    let agent = Agent::start(files);
    let get = |target: &str| Signed::get(target).send(&agent, &key);

    // Three collections at least.
    let mut all = Value::Null;
    assert!(
        eventually(Duration::from_secs(60), || {
            let r = get("/monitoring/history?start=1970-01-01T00:00:00Z&limit=0");
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            all = r.json();
            all.as_array().is_some_and(|a| a.len() >= 3)
        }),
        "fewer than three documents: {all}"
    );
    let docs = all.as_array().unwrap().clone();

    // The document.
    let first = &docs[0];
    let mut top: Vec<&String> = first.as_object().unwrap().keys().collect();
    top.sort();
    assert_eq!(
        top,
        ["data", "datetime", "hostinfo", "instances", "version"]
    );
    assert!(first["version"].as_str().unwrap().starts_with("9.0.1"));
    let h = &first["hostinfo"];
    for k in [
        "os",
        "os_version",
        "cpu_arch",
        "hostname",
        "cpus",
        "cpu_count",
        "memory_size",
        "ip_addresses",
        "filesystems",
        "os_flavor",
    ] {
        assert!(h.get(k).is_some(), "hostinfo misses {k}: {h}");
    }
    assert_eq!(
        h["cpus"].as_array().unwrap().len() as u64,
        h["cpu_count"].as_u64().unwrap()
    );
    assert!(h["cpus"][0]["processor"].is_string());
    assert!(h["ip_addresses"]
        .as_array()
        .unwrap()
        .contains(&json!("127.0.0.1")));
    let i = &first["instances"][0];
    assert_eq!(i["available"], true);
    assert!(i["port"].is_u64() && i["max_connections"].is_u64(), "{i}");
    assert!(
        i["version"].as_str().unwrap().starts_with("PostgreSQL 15"),
        "{i}"
    );
    assert!(i["version_num"].as_u64().unwrap() >= 150000);
    assert!(
        chrono::DateTime::parse_from_rfc3339(i["start_time"].as_str().unwrap()).is_ok(),
        "{i}"
    );
    assert_eq!(i["standby"], false);
    assert!(i["dbnames"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["dbname"] == "postgres" && d["size"].is_u64() && d["encoding"] == "UTF8"));
    assert_eq!(i["instance"], i["local_name"]);
    let data = &first["data"];
    assert!(data.get("replication").is_none(), "2.x-only probe in 9.x");
    // A primary has no replication lag nor upstream.
    assert_eq!(data["replication_lag"], json!([]));
    assert_eq!(data["replication_connection"], json!([]));
    // A first measure gives no delta record (none without measure_interval).
    for p in DELTA_PROBES {
        assert_eq!(data[p], json!([]), "{p} in the first document");
    }
    assert!(!data["sessions"].as_array().unwrap().is_empty());

    // Later documents: deltas with measure_interval, the run's datetime on
    // every record, no port, no raw `current`.
    let second = &docs[1];
    let mut run_start = None;
    for (probe, rows) in second["data"].as_object().unwrap() {
        for r in rows.as_array().unwrap() {
            let dt = r["datetime"].as_str().unwrap_or_default();
            assert!(is_iso_micro(dt), "{probe}: {r}");
            // Per-database probes run apart and carry their own run's.
            if !probe.ends_with("_bloat") {
                assert!(
                    run_start.get_or_insert(dt.to_string()) == dt,
                    "one datetime per run: {probe}"
                );
            }
            assert!(
                r.get("port").is_none() && r.get("current").is_none(),
                "{probe}: {r}"
            );
        }
    }
    for p in ["xacts", "cpu", "temp_files_size_delta"] {
        let rows = second["data"][p].as_array().unwrap();
        assert!(!rows.is_empty(), "{p} empty in the second document");
        assert!(
            rows.iter().all(|r| r["measure_interval"].is_f64()),
            "{p}: {rows:?}"
        );
    }
    let temp = &second["data"]["temp_files_size_delta"];
    assert!(temp
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["dbname"] == "postgres" && r["size"].is_u64()));

    // start / limit semantics, on the documents' own datetime.
    let newest = get("/monitoring/history");
    let newest_docs = newest.json();
    assert_eq!(
        newest_docs.as_array().unwrap().len(),
        1,
        "newest only without start"
    );
    let discover = get("/discover");
    assert_eq!(
        newest.header("x-temboard-discover-etag"),
        discover.header("etag"),
        "the discover ETag rides along"
    );
    let from_second = get(&format!("/monitoring/history?start={}", start_of(second))).json();
    assert_eq!(from_second[0], *second, "start is inclusive");
    let one = get(&format!(
        "/monitoring/history?start={}&limit=1",
        start_of(second)
    ))
    .json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    let after = chrono::NaiveDateTime::parse_from_str(&start_of(second), "%Y-%m-%dT%H:%M:%SZ")
        .unwrap()
        + chrono::Duration::seconds(1);
    let later = get(&format!(
        "/monitoring/history?start={}",
        after.format("%Y-%m-%dT%H:%M:%SZ")
    ))
    .json();
    assert!(
        later
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d != second && d != first),
        "last + 1 s repeats nothing"
    );

    // Errors with the 9.x messages.
    for (target, expected) in [
        (
            "/monitoring/history?start=2026-13-01T00:00:00Z",
            "Invalid timestamp",
        ),
        (
            "/monitoring/history?start=yesterday",
            "Parameter 'start' is malformed.",
        ),
        (
            "/monitoring/history?limit=-1",
            "Parameter 'limit' is malformed.",
        ),
        (
            "/monitoring/history?limit=abc",
            "Parameter 'limit' is malformed.",
        ),
    ] {
        assert_eq!(error(&get(target)), (406, expected.into()), "{target}");
    }

    // /monitoring/metrics: the newest document as Prometheus text.
    let r = get("/monitoring/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.header("content-type")
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| *l != "# EOF")
        .map(str::to_string)
        .collect();
    let scrape =
        prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("Prometheus text");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("pg_up", None), Some(1.0));
    assert!(value("node_load1", None).is_some());
    assert!(value("node_memory_MemTotal_bytes", None).unwrap() > 0.0);
    assert!(value("xpg_database_size_bytes", Some(("datname", "postgres"))).unwrap() > 1e6);
    let commits = value(
        "pg_stat_database_xact_commit",
        Some(("datname", "postgres")),
    )
    .unwrap();
    let server: i64 = pg
        .client()
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        commits > 0.0 && commits <= server as f64,
        "{commits} vs {server}"
    );
    assert!(value("node_cpu_seconds_total", Some(("mode", "idle"))).unwrap() > 0.0);

    // /monitoring/config.
    assert_eq!(
        get("/monitoring/config").json(),
        json!({"dbnames": ["*"], "scheduler_interval": 1})
    );

    // The 2.x payloads of the same collections keep their probes and fields.
    let r = agent
        .request(
            "GET",
            "/monitoring/history?start=2000-01-01T00:00:00Z&limit=5",
            &[("X-TemBoard-Agent-Key", "s3cr3tk3y")],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    for p in r.json().as_array().unwrap() {
        assert!(
            p["data"].get("temp_files_size_delta").is_none(),
            "{}",
            p["data"]
        );
        assert!(p["data"].get("replication").is_some());
        assert!(p["instances"][0].get("v9").is_none());
        assert!(p["instances"][0]["max_connections"].is_string());
    }
}

/// The 9.x documents stored so far (every one kept), oldest first.
fn all_documents(agent: &Agent, key: &rsa::RsaPrivateKey) -> Vec<Value> {
    let r = Signed::get("/monitoring/history?start=1970-01-01T00:00:00Z&limit=0").send(agent, key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json().as_array().unwrap().clone()
}

fn ratio(doc: &Value, probe: &str, db: &str) -> Option<Value> {
    doc["data"][probe]
        .as_array()?
        .iter()
        .find(|r| r["dbname"] == db)
        .map(|r| r["ratio"].clone())
}

#[test]
fn bloat_probes_estimate_per_database_and_a_locked_one_costs_only_its_sample() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut c = pg.client();
    for name in ["bloated", "clean", "locked"] {
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }
    let db = |name: &str| pg.client_to(name);
    // The same table in two databases: in one, 90% of its rows deleted
    // (no VACUUM), then both analyzed.
    let table = "CREATE TABLE t (id int PRIMARY KEY, pad text);
                 INSERT INTO t SELECT i, repeat('x', 100) FROM generate_series(1, 100000) i;";
    let mut bloated = db("bloated");
    bloated
        .batch_execute(&format!(
            "{table} ALTER TABLE t SET (autovacuum_enabled = off);
             DELETE FROM t WHERE id % 10 <> 0; ANALYZE t;"
        ))
        .unwrap();
    db("clean")
        .batch_execute(&format!("{table} ANALYZE t;"))
        .unwrap();
    // Another session holds pg_statistic in `locked`: estimates there wait
    // for it, until lock_timeout.
    let mut locker = db("locked");
    locker
        .batch_execute("BEGIN; LOCK TABLE pg_statistic IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let mut files = AgentFiles::new(Some(&pg));
    files.set("monitoring", "scheduler_interval", "1");
    files.set(
        "monitoring",
        "probe_intervals",
        "heap_bloat:1, btree_bloat:1",
    );
    files.set("monitoring", "lock_timeout", "1");
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    let agent = Agent::start(files);

    let mut docs = vec![];
    let mut peak = 0i64;
    assert!(
        eventually(Duration::from_secs(90), || {
            peak = peak.max(agent_backends(&mut c));
            docs = all_documents(&agent, &key);
            docs.iter()
                .filter(|d| ratio(d, "heap_bloat", "bloated").is_some())
                .count()
                >= 2
        }),
        "no bloat estimates: {:?}",
        docs.last()
    );
    let with_bloat: Vec<&Value> = docs
        .iter()
        .filter(|d| ratio(d, "heap_bloat", "bloated").is_some())
        .collect();
    let doc = with_bloat[0];
    let heavy = ratio(doc, "heap_bloat", "bloated")
        .unwrap()
        .as_f64()
        .unwrap();
    let light = ratio(doc, "heap_bloat", "clean").unwrap().as_f64().unwrap();
    println!("heap bloat: bloated {heavy:.1} %, clean {light:.1} %");
    assert!(heavy > 70.0, "90% of the rows deleted: {heavy}");
    assert!(light < 25.0, "a fresh table: {light}");
    let heavy_i = ratio(doc, "btree_bloat", "bloated")
        .unwrap()
        .as_f64()
        .unwrap();
    let light_i = ratio(doc, "btree_bloat", "clean")
        .unwrap()
        .as_f64()
        .unwrap();
    println!("btree bloat: bloated {heavy_i:.1} %, clean {light_i:.1} %");
    // The ratio is over every btree index of the database: the catalogs'
    // (about as many pages as t_pkey here) dilute the 90% of t_pkey.
    assert!(heavy_i > 40.0 && light_i < 15.0, "{heavy_i} {light_i}");
    // The locked database timed out: no row, and the log says why.
    assert!(
        ratio(doc, "heap_bloat", "locked").is_none(),
        "{}",
        doc["data"]["heap_bloat"]
    );
    assert!(
        agent.log().contains("lock timeout"),
        "the lock timeout is not logged"
    );
    // Every document kept its other probes meanwhile.
    for d in &docs[1..] {
        assert!(
            !d["data"]["sessions"].as_array().unwrap().is_empty(),
            "a document without sessions: {}",
            d["datetime"]
        );
    }
    // Records of a per-database run carry its own ISO datetime.
    let r = &doc["data"]["heap_bloat"][0];
    assert!(is_iso_micro(r["datetime"].as_str().unwrap()), "{r}");
    assert!(peak <= 4, "the agent held {peak} connections (cap 4)");
    drop(locker);
}

#[test]
fn replication_probes_on_a_real_streaming_standby() {
    let (public, key) = test_keys();
    let primary = PgCluster::start();
    let standby = PgCluster::standby_of(&primary);
    let mut on_standby = standby.client();
    assert!(
        eventually(Duration::from_secs(60), || {
            on_standby
                .query(
                    "SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                    &[],
                )
                .map(|r| !r.is_empty())
                .unwrap_or(false)
        }),
        "the standby never streamed"
    );
    // Replay paused, WAL written on the primary: the standby receives it
    // and falls behind.
    on_standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    primary
        .client()
        .batch_execute("CREATE TABLE w AS SELECT generate_series(1, 200000) AS i")
        .unwrap();

    let mut files = AgentFiles::new(Some(&standby));
    files.set("monitoring", "scheduler_interval", "1");
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    let agent = Agent::start(files);
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(60), || {
            let docs = all_documents(&agent, &key);
            last = docs.last().cloned().unwrap_or(Value::Null);
            docs.iter().any(|d| {
                d["data"]["replication_lag"]
                    .as_array()
                    .and_then(|rows| rows.first())
                    .and_then(|r| r["lag"].as_i64())
                    .is_some_and(|lag| lag > 1_000_000)
            })
        }),
        "no lag seen on the standby: {}",
        last["data"]
    );
    let conn = &last["data"]["replication_connection"];
    assert_eq!(conn.as_array().map(Vec::len), Some(1), "{conn}");
    assert_eq!(conn[0]["connected"], 1, "{conn}");
    assert_eq!(
        conn[0]["upstream"],
        primary.socket_dir().display().to_string(),
        "{conn}"
    );
    assert_eq!(last["instances"][0]["standby"], true);
    assert_eq!(
        last["data"]["wal_files"],
        serde_json::json!([]),
        "no WAL files probe on a standby"
    );
    // Replay resumed: the lag falls back to (about) nothing.
    on_standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || {
            all_documents(&agent, &key)
                .last()
                .and_then(|d| d["data"]["replication_lag"][0]["lag"].as_i64())
                .is_some_and(|lag| lag < 1_000_000)
        }),
        "the lag never fell after replay resumed"
    );
}

#[test]
fn the_history_keeps_history_retention_seconds_of_documents() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("monitoring", "scheduler_interval", "1");
    files.set("monitoring", "history_retention", "60");
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    let agent = Agent::start(files);
    let epoch = |d: &Value| {
        chrono::NaiveDateTime::parse_from_str(
            d["datetime"].as_str().unwrap(),
            "%Y-%m-%d %H:%M:%S +0000",
        )
        .unwrap()
        .and_utc()
        .timestamp()
    };
    let mut first = 0;
    assert!(
        eventually(Duration::from_secs(30), || {
            match all_documents(&agent, &key).first() {
                Some(d) => {
                    first = epoch(d);
                    true
                }
                None => false,
            }
        }),
        "no document"
    );
    // Wait until the agent has run well past the retention...
    // (polling the newest document only: one document a request)
    assert!(
        eventually(Duration::from_secs(120), || {
            let newest = Signed::get("/monitoring/history").send(&agent, &key).json();
            newest
                .as_array()
                .and_then(|a| a.first())
                .is_some_and(|d| epoch(d) > first + 65)
        }),
        "collections stopped"
    );
    let docs = all_documents(&agent, &key);
    // ...then nothing older than 60 s before the newest is kept.
    let newest = epoch(docs.last().unwrap());
    let oldest = epoch(&docs[0]);
    assert!(oldest > first, "the first document is still kept");
    assert!(
        newest - oldest <= 60,
        "kept {} s of documents",
        newest - oldest
    );
    assert!(docs.len() >= 30, "only {} documents", docs.len());
}

/// Issue #28 (what UI 10.0 shows): the bloat estimates run hourly, yet
/// every document after the first run carries them, dated by the run that
/// measured them, so the UI's checks are never `UNDEF`.
#[test]
fn every_document_carries_the_last_bloat_estimates() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("monitoring", "scheduler_interval", "1");
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    let agent = Agent::start(files);
    let has = |d: &Value, probe: &str| d["data"][probe].as_array().is_some_and(|a| !a.is_empty());
    let mut docs = vec![];
    let mut first = 0;
    assert!(
        eventually(Duration::from_secs(90), || {
            docs = all_documents(&agent, &key);
            match docs.iter().position(|d| has(d, "heap_bloat")) {
                Some(i) => {
                    first = i;
                    docs.len() >= i + 4
                }
                None => false,
            }
        }),
        "no three documents after the first estimates: {} documents",
        docs.len()
    );
    let measured = docs[first]["data"]["heap_bloat"][0]["datetime"].clone();
    assert!(
        measured.is_string(),
        "{}",
        docs[first]["data"]["heap_bloat"]
    );
    for d in &docs[first..] {
        for probe in ["heap_bloat", "btree_bloat"] {
            assert!(has(d, probe), "{probe} missing from {}", d["datetime"]);
        }
        assert_eq!(d["data"]["heap_bloat"][0]["datetime"], measured, "re-dated");
    }
}
