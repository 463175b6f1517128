//! The statements plugin (issue #19, facts 9.x section 8) against the real
//! binary and a PostgreSQL 15 with `pg_stat_statements` preloaded: 10,000
//! distinct statements with long texts answered whole and exact (`queryid`
//! as the signed 64-bit integer PostgreSQL has) while neither the http nor
//! the probe worker grows by more than a few MiB (peak RSS measured with
//! `VmHWM` after `clear_refs`, and printed); and the errors of a database
//! without the extension and of a server without the library.

mod common;

use std::collections::HashSet;

use common::signed::*;
use common::*;
use serde_json::Value;

const PLUGINS: &str = r#"["activity", "dashboard", "monitoring", "pgconf", "statements"]"#;

fn agent_for(pg: &PgCluster, public: &str) -> Agent {
    let mut files = AgentFiles::new(Some(pg));
    files.set("temboard", "plugins", PLUGINS);
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), public).unwrap();
    Agent::start(files)
}

fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn ten_thousand_statements_stream_whole_with_bounded_worker_memory() {
    let (public, key) = test_keys();
    let pg = PgCluster::start_with(
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000 -c pg_stat_statements.track=all",
    );
    let mut c = pg.client();
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .unwrap();
    // 9,800 distinct shapes (two arrays of 1 to 98 and 1 to 100 elements),
    // each text carrying a 2 KiB comment: an answer of about 20 MB, in a
    // view of 10,000 entries at most (the server evicts 5% of them when
    // full, so the rest of the view is the agent's own and the setup's).
    c.batch_execute(&format!(
        "SELECT pg_stat_statements_reset();
         DO $$
         DECLARE i int; j int;
         BEGIN
           FOR i IN 1..98 LOOP
             FOR j IN 1..100 LOOP
               EXECUTE format('/* %s */ SELECT ARRAY[%s], ARRAY[%s]', '{}',
                 rtrim(repeat('1,', i), ','), rtrim(repeat('2,', j), ','));
             END LOOP;
           END LOOP;
         END $$;",
        "x".repeat(2048)
    ))
    .unwrap();
    let agent = agent_for(&pg, &public);
    let (http, probe) = (
        agent.worker_pid("http").unwrap(),
        agent.worker_pid("probe").unwrap(),
    );
    // A first request, so both workers have run this code once.
    let warm = Signed::get("/statements").send(&agent, &key);
    assert_eq!(warm.status, 200, "{}", String::from_utf8_lossy(&warm.body));
    let measure = is_root();
    let before: Vec<u64> = [http, probe]
        .iter()
        .map(|p| {
            if measure {
                // Reset the peak (VmHWM) to the current RSS.
                std::fs::write(format!("/proc/{p}/clear_refs"), "5").unwrap();
                status_kib(*p, "VmRSS:")
            } else {
                0
            }
        })
        .collect();
    let r = Signed::get("/statements").send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let size = r.body.len();
    let doc: Value = serde_json::from_slice(&r.body).expect("a whole JSON document");
    let snapshot = doc["snapshot_datetime"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(snapshot, "%Y-%m-%d %H:%M:%S +0000").is_ok(),
        "{snapshot}"
    );
    let rows = doc["data"].as_array().unwrap();
    // The server's own view, right after: the same rows, the same ids.
    let server: HashSet<i64> = c
        .query(
            "SELECT queryid FROM pg_stat_statements WHERE query LIKE '/* xxx%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let answered: HashSet<i64> = rows
        .iter()
        .map(|r| {
            r["queryid"]
                .as_i64()
                .unwrap_or_else(|| panic!("queryid not an exact integer: {}", r["queryid"]))
        })
        .collect();
    assert_eq!(server.len(), 9_800, "the setup's statements were evicted");
    assert!(rows.len() >= 9_800, "{} rows", rows.len());
    let missing = server.difference(&answered).count();
    assert_eq!(
        missing, 0,
        "{missing} of the server's statements not answered"
    );
    assert!(
        answered.iter().any(|q| q.unsigned_abs() > 1 << 53),
        "no queryid beyond 2^53 to prove exactness"
    );
    let sample = &rows[0];
    for k in [
        "rolname",
        "datname",
        "userid",
        "dbid",
        "toplevel",
        "queryid",
        "query",
        "calls",
        "total_exec_time",
        "rows",
        "shared_blks_hit",
        "wal_bytes",
    ] {
        assert!(sample.get(k).is_some(), "row misses {k}: {sample}");
    }
    assert_eq!(sample["rolname"], "postgres");
    assert!(sample["calls"].is_u64() && sample["total_exec_time"].is_number());
    assert!(size > 19_000_000, "answer of {size} bytes");
    if measure {
        for ((name, pid), base) in [("http", http), ("probe", probe)].iter().zip(&before) {
            let peak = status_kib(*pid, "VmHWM:");
            let grew = peak.saturating_sub(*base);
            println!(
                "{name} worker: RSS {base} KiB before, peak {peak} KiB during a {size}-byte /statements answer (+{grew} KiB)"
            );
            assert!(
                grew < 8 * 1024,
                "the {name} worker grew by {grew} KiB for a {size}-byte answer"
            );
        }
    }
}

#[test]
fn statements_errors_say_what_is_missing() {
    let (public, key) = test_keys();
    // The library loaded, the extension not created in [statements] dbname.
    let pg = PgCluster::start_with("-c shared_preload_libraries=pg_stat_statements");
    let agent = agent_for(&pg, &public);
    let r = Signed::get("/statements").send(&agent, &key);
    assert_eq!(
        error(&r),
        (
            404,
            "pg_stat_statements not enabled on database postgres".into()
        )
    );
    drop(agent);
    drop(pg);
    // The extension created, the library not preloaded: PostgreSQL's own
    // message (9.0.1 answered a bare 500).
    let pg = PgCluster::start();
    pg.client()
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .unwrap();
    let agent = agent_for(&pg, &public);
    let r = Signed::get("/statements").send(&agent, &key);
    let (code, text) = error(&r);
    assert_eq!(code, 404, "{text}");
    assert!(text.contains("shared_preload_libraries"), "{text}");
    // Not a 2.x route.
    let session = agent.login("alice", "alice");
    assert_eq!(agent.get_with_session("/statements", &session).status, 404);
}
