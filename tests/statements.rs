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
    agent_with_plugins(pg, public, PLUGINS)
}

/// A cluster with `pg_stat_statements` preloaded (10,000 entries, every
/// statement tracked) and the extension created, and a client to it.
fn tracking_cluster() -> (PgCluster, postgres::Client) {
    let pg = PgCluster::start_with(
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000 -c pg_stat_statements.track=all",
    );
    let mut c = pg.client();
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .unwrap();
    (pg, c)
}

/// `i × j` distinct statements (two arrays of 1..=i and 1..=j elements),
/// each text carrying a comment of `pad` bytes, run from a DO block
/// (tracked with `pg_stat_statements.track = all`).
fn fill(c: &mut postgres::Client, i: u32, j: u32, pad: usize) {
    c.batch_execute(&format!(
        "DO $$
         DECLARE i int; j int;
         BEGIN
           FOR i IN 1..{i} LOOP
             FOR j IN 1..{j} LOOP
               EXECUTE format('/* %s */ SELECT ARRAY[%s], ARRAY[%s]', '{}',
                 rtrim(repeat('1,', i), ','), rtrim(repeat('2,', j), ','));
             END LOOP;
           END LOOP;
         END $$;",
        "x".repeat(pad)
    ))
    .unwrap();
}

#[test]
fn ten_thousand_statements_stream_whole_with_bounded_worker_memory() {
    let (public, key) = test_keys();
    let (pg, mut c) = tracking_cluster();
    // 9,800 distinct shapes (two arrays of 1 to 98 and 1 to 100 elements),
    // each text carrying a 2 KiB comment: an answer of about 20 MB, in a
    // view of 10,000 entries at most (the server evicts 5% of them when
    // full, so the rest of the view is the agent's own and the setup's).
    c.batch_execute("SELECT pg_stat_statements_reset()")
        .unwrap();
    fill(&mut c, 98, 100, 2048);
    let agent = agent_for(&pg, &public);
    let (http, probe) = (
        agent.worker_pid("http").unwrap(),
        agent.worker_pid("probe").unwrap(),
    );
    // A first request, so both workers have run this code once.
    let warm = Signed::get("/statements").send(&agent, &key);
    assert_eq!(warm.status, 200, "{}", String::from_utf8_lossy(&warm.body));
    // Clearing another user's peak needs root; CI runs as root and must
    // measure (a non-root run outside CI prints no figure).
    ci_runs_as_root();
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

/// Sends a signed GET on a connection of its own and reads only the first
/// bytes of the answer: the rest waits in the kernel's buffers and the
/// agent's stream stalls (backpressure).
fn stalled(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str) -> (KeepAlive, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn = KeepAlive::connect(agent.port, &agent.files.cert_pem()).unwrap();
    let s = Signed::get(target);
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in s.headers(key) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.tls.write_all(req.as_bytes()).unwrap();
    conn.tls.flush().unwrap();
    let mut got = vec![0u8; 16 * 1024];
    let mut have = 0;
    while have < got.len() {
        let n = conn.tls.read(&mut got[have..]).unwrap();
        assert!(n > 0, "closed early");
        have += n;
    }
    got.truncate(have);
    (conn, got)
}

#[test]
fn stalled_statements_readers_block_no_other_route() {
    use std::io::Read;
    let (public, key) = test_keys();
    let (pg, mut c) = tracking_cluster();
    fill(&mut c, 60, 60, 4096);
    let agent = agent_for(&pg, &public);
    // Two clients that stop reading a 15 MB answer after 16 KiB.
    let (mut first, mut first_bytes) = stalled(&agent, &key, "/statements");
    let (second, _) = stalled(&agent, &key, "/statements");
    assert!(String::from_utf8_lossy(&first_bytes).starts_with("HTTP/1.1 200"));
    // Meanwhile every 9.x read route answers, one after the other.
    for target in [
        "/status",
        "/notifications",
        "/activity",
        "/activity/waiting",
        "/activity/blocking",
        "/activity/sessions",
        "/activity/locks",
        "/dashboard",
        "/dashboard/config",
        "/dashboard/history",
        "/pgconf/settings",
        "/pgconf/configuration?filter=work_mem",
        "/pgconf/configuration/status",
        "/monitoring/history",
        "/monitoring/config",
        "/monitoring/metrics",
        "/discover",
    ] {
        let r = Signed::get(target).send(&agent, &key);
        assert_eq!(
            r.status,
            200,
            "{target} while two answers stall: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The stalled answers were only paused: the first reads to its end,
    // whole; the second client just goes away.
    drop(second);
    let mut rest = vec![];
    let mut buf = [0u8; 65536];
    while !rest.ends_with(b"0\r\n\r\n") {
        let n = first.tls.read(&mut buf).unwrap();
        assert!(n > 0, "the stalled answer was cut");
        rest.extend_from_slice(&buf[..n]);
    }
    first_bytes.extend_from_slice(&rest);
    let r = read_response(&mut std::io::Cursor::new(first_bytes)).unwrap();
    let doc: Value = serde_json::from_slice(&r.body).expect("a whole document after the stall");
    assert!(doc["data"].as_array().unwrap().len() >= 3_600);
    // The agent answers after the dropped one too.
    assert_eq!(Signed::get("/statements").send(&agent, &key).status, 200);
}

/// Issue #27 finding 1: four readers that stop reading a large answer hold
/// no PostgreSQL connection and no snapshot (the answer is spooled, the
/// query over before the first byte leaves), so every route that needs
/// PostgreSQL still answers, in both contracts.
#[test]
fn stalled_statements_readers_hold_no_connection_and_no_snapshot() {
    let (public, key) = test_keys();
    let (pg, mut c) = tracking_cluster();
    fill(&mut c, 60, 60, 4096);
    let agent = agent_for(&pg, &public);
    let readers: Vec<_> = (0..4)
        .map(|_| stalled(&agent, &key, "/statements"))
        .collect();
    for (_, head) in &readers {
        assert!(
            String::from_utf8_lossy(head).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head[..head.len().min(200)])
        );
    }
    // While the four stall: no backend of the agent is in a transaction or
    // holds back the xmin horizon.
    let held: Vec<(i32, Option<String>)> = c
        .query(
            "SELECT pid, state FROM pg_stat_activity
             WHERE application_name = 'temboard-agent'
               AND (state LIKE 'idle in transaction%' OR backend_xmin IS NOT NULL
                    OR xact_start IS NOT NULL)",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        held.is_empty(),
        "agent backends held by stalled readers: {held:?}"
    );
    // Every route that needs PostgreSQL answers, both contracts.
    for target in ["/activity", "/activity/sessions", "/pgconf/settings"] {
        let started = std::time::Instant::now();
        let r = Signed::get(target).send(&agent, &key);
        assert_eq!(
            r.status,
            200,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        // Printed, not asserted: a figure, not a timing threshold.
        println!(
            "{target} while four readers stall: 200 in {} ms",
            started.elapsed().as_millis()
        );
    }
    let session = agent.login("alice", "alice");
    let r = agent.get_with_session("/activity", &session);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // A fifth reader gets the whole answer.
    let r = Signed::get("/statements").send(&agent, &key);
    assert_eq!(r.status, 200);
    let doc: Value = serde_json::from_slice(&r.body).expect("a whole document");
    assert!(doc["data"].as_array().unwrap().len() >= 3_600);
    drop(readers);
}
