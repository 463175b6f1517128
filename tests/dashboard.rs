//! Dashboard plugin: periodic collection into a bounded history, every route's
//! shape and types, values checked against PostgreSQL and /proc.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn agent_with_dashboard(pg: Option<&PgCluster>, interval: u64, length: u64) -> Agent {
    let mut files = AgentFiles::new(pg);
    files.set("dashboard", "scheduler_interval", &interval.to_string());
    files.set("dashboard", "history_length", &length.to_string());
    files.write();
    Agent::start(files)
}

fn history(agent: &Agent, s: &str) -> Vec<Value> {
    let r = agent.get_with_session("/dashboard/history", s);
    assert_eq!(r.status, 200);
    r.json().as_array().unwrap().clone()
}

fn assert_full_set(set: &Value, with_notifications: bool) {
    let m = set
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {set}"));
    for k in [
        "buffers",
        "hitratio",
        "active_backends",
        "max_connections",
        "cpu",
        "loadaverage",
        "memory",
        "hostname",
        "os_version",
        "linux_distribution",
        "cpu_models",
        "databases",
        "pg_uptime",
        "n_cpu",
        "pg_version",
        "pg_data",
        "pg_port",
    ] {
        assert!(m.contains_key(k), "{k} missing in {set}");
    }
    assert_eq!(m.contains_key("notifications"), with_notifications, "{set}");
    assert!(set["buffers"]["nb"].is_i64() && set["buffers"]["time"].is_f64());
    assert!(set["hitratio"].is_f64() || set["hitratio"].is_null());
    assert!(set["active_backends"]["nb"].as_i64().unwrap() >= 1);
    assert!(set["max_connections"].is_i64());
    for k in ["user", "system", "idle", "iowait", "steal"] {
        assert!(set["cpu"][k].is_f64(), "cpu.{k} in {}", set["cpu"]);
    }
    assert!(set["loadaverage"].is_f64());
    assert!(set["memory"]["total"].is_u64());
    for k in ["free", "active", "cached"] {
        assert!(set["memory"][k].is_f64());
    }
    let d = &set["databases"];
    assert!(d["databases"].is_i64() && d["total_size"].is_string() && d["time"].is_string());
    assert!(d["total_commit"].is_i64() && d["total_rollback"].is_i64() && d["timestamp"].is_f64());
    assert!(
        set["pg_uptime"].is_string() && set["pg_port"].is_string() && set["pg_data"].is_string()
    );
    assert!(set["cpu_models"].is_object());
    assert!(set["n_cpu"].is_u64());
}

#[test]
fn history_fills_and_stays_bounded() {
    let pg = PgCluster::start();
    let agent = agent_with_dashboard(Some(&pg), 1, 3);
    let s = agent.login("alice", "alice");
    let stamps = |h: &[Value]| -> Vec<f64> {
        h.iter()
            .map(|s| s["databases"]["timestamp"].as_f64().unwrap())
            .collect()
    };
    let mut first = vec![];
    assert!(
        eventually(Duration::from_secs(10), || {
            first = history(&agent, &s);
            !first.is_empty()
        }),
        "no entry within 10 s"
    );
    let t0 = stamps(&first)[0];
    // Bounded: while collections go on, never more than history_length
    // kept; and the first entry is dropped once a fourth set is stored.
    let mut h = vec![];
    assert!(
        eventually(Duration::from_secs(60), || {
            h = history(&agent, &s);
            assert!(h.len() <= 3, "over history_length: {}", h.len());
            h.len() == 3 && stamps(&h)[0] > t0
        }),
        "the oldest set was never dropped"
    );
    for set in &h {
        assert_full_set(set, false);
    }
    let t = stamps(&h);
    assert!(t.windows(2).all(|w| w[0] < w[1]), "oldest first: {t:?}");
    // /dashboard answers the newest set: at least as new as the newest of a
    // history read just before, no newer than the newest of one just after.
    let last = agent.get_with_session("/dashboard", &s).json();
    let after = stamps(&history(&agent, &s));
    assert_full_set(&last, true);
    let shown = last["databases"]["timestamp"].as_f64().unwrap();
    let newest_before = *t.last().unwrap();
    let newest_after = after.last().copied().unwrap_or(f64::MAX);
    assert!(
        newest_before <= shown && shown <= newest_after,
        "/dashboard shows {shown}; history had {t:?}, then {after:?}"
    );
    assert_eq!(last["notifications"][0]["message"], "Login");
    // The answer is reused for 100 ms at most, and never across a write of
    // this worker: a new login shows at once.
    let again = agent.get_with_session("/dashboard", &s).json();
    assert_eq!(
        again["notifications"].as_array().unwrap().len(),
        last["notifications"].as_array().unwrap().len()
    );
    let s2 = agent.login("alice", "alice");
    let after = agent.get_with_session("/dashboard", &s2).json();
    assert_eq!(
        after["notifications"].as_array().unwrap().len(),
        (last["notifications"].as_array().unwrap().len() + 1).min(15),
        "{after}"
    );
    assert_eq!(after["notifications"][0]["message"], "Login");
    let cfg = agent.get_with_session("/dashboard/config", &s).json();
    assert_eq!(
        cfg,
        serde_json::json!({"scheduler_interval": 1, "history_length": 3})
    );
}

#[test]
fn every_route_and_values_agree_with_postgresql_and_proc() {
    let mut pg = PgCluster::start();
    let agent = agent_with_dashboard(Some(&pg), 60, 10);
    let s = agent.login("alice", "alice");
    let get = |path: &str| {
        let r = agent.get_with_session(path, &s);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    };
    let live = get("/dashboard/live");
    assert_full_set(&live, true);
    let mut c = pg.client();
    let max: String = c.query_one("SHOW max_connections", &[]).unwrap().get(0);
    assert_eq!(live["max_connections"].as_i64().unwrap().to_string(), max);
    assert_eq!(
        live["n_cpu"],
        std::thread::available_parallelism().unwrap().get()
    );
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(live["memory"]["total"], mem_kb);
    let version: String = c.query_one("SELECT version()", &[]).unwrap().get(0);
    assert_eq!(live["pg_version"], version.as_str());
    assert_eq!(live["hostname"], "agent.example.org");
    let ndb: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_database WHERE NOT datistemplate",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(live["databases"]["databases"], ndb);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(live["os_version"], release.as_str());

    // total_commit grows after transactions.
    let before = get("/dashboard/databases")["databases"]["total_commit"]
        .as_i64()
        .unwrap();
    for _ in 0..20 {
        c.batch_execute("BEGIN; SELECT 1; COMMIT").unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || get(
        "/dashboard/databases"
    )["databases"]["total_commit"]
        .as_i64()
        .unwrap()
        >= before + 20));

    // Single-metric routes: shape and types.
    assert!(get("/dashboard/buffers")["buffers"]["nb"].is_i64());
    // Null only before PostgreSQL has counted a block: after the traffic
    // above it is a number (a null in every sample would hide a broken
    // query).
    assert!(
        eventually(Duration::from_secs(10), || get("/dashboard/hitratio")
            ["hitratio"]
            .is_f64()),
        "hitratio stays null: {}",
        get("/dashboard/hitratio")
    );
    assert!(
        get("/dashboard/active_backends")["active_backends"]["nb"]
            .as_i64()
            .unwrap()
            >= 1
    );
    assert_eq!(
        get("/dashboard/max_connections")["max_connections"]
            .as_i64()
            .unwrap()
            .to_string(),
        max
    );
    assert_eq!(get("/dashboard/pg_version")["pg_version"], version.as_str());
    let info = get("/dashboard/info");
    for k in [
        "hostname",
        "os_version",
        "pg_uptime",
        "pg_version",
        "pg_data",
        "pg_port",
    ] {
        assert!(info[k].is_string(), "info.{k}: {info}");
    }
    assert_eq!(info["os_version"], format!("Linux {release}"));
    assert!(get("/dashboard/cpu")["cpu"]["idle"].is_f64());
    assert!(get("/dashboard/loadaverage")["loadaverage"].is_f64());
    assert_eq!(get("/dashboard/memory")["memory"]["total"], mem_kb);
    assert_eq!(get("/dashboard/hostname")["hostname"], "agent.example.org");
    assert_eq!(
        get("/dashboard/os_version")["os_version"],
        format!("Linux {release}")
    );
    assert_eq!(
        get("/dashboard/n_cpu")["n_cpu"],
        std::thread::available_parallelism().unwrap().get()
    );
    assert_eq!(
        agent.get_with_session("/dashboard/nosuchmetric", &s).status,
        404
    );
    drop(c);

    // PostgreSQL stopped: the agent runs on, routes answer JSON. (The
    // collection at start stored a set first.)
    assert!(
        eventually(Duration::from_secs(10), || !history(&agent, &s).is_empty()),
        "no set collected at start"
    );
    pg.stop();
    let r = agent.get_with_session("/dashboard/live", &s);
    assert_eq!(r.status, 500);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Failed to connect to PostgreSQL"));
    // /dashboard answers the last stored set: PostgreSQL being away does
    // not take it away.
    let r = agent.get_with_session("/dashboard", &s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["databases"]["timestamp"].is_f64(), "{}", r.json());
    assert!(
        get("/dashboard/cpu")["cpu"]["idle"].is_f64(),
        "host metrics still work"
    );
    assert_eq!(agent.get("/status").unwrap().status, 200);
}

#[test]
fn failed_collections_store_nothing_and_log_once() {
    let agent = agent_with_dashboard(None, 1, 10);
    let s = agent.login("alice", "alice");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(history(&agent, &s).is_empty());
    let log = agent.log();
    assert_eq!(
        log.matches("dashboard collection failed").count(),
        1,
        "{log}"
    );
    // /dashboard with no history and no PostgreSQL: a JSON error.
    let r = agent.get_with_session("/dashboard", &s);
    assert_eq!(r.status, 500);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Failed to connect to PostgreSQL"));
}
