//! The dashboard plugin in the temBoard 9.x contract (issue #19, facts 9.x
//! section 5) against the real binary and PostgreSQL: `/dashboard/config`,
//! `/dashboard/history` and `/dashboard` from signed requests, built from
//! the one collection that also feeds 2.x (whose answers do not change).

mod common;

use std::time::Duration;

use common::signed::*;
use common::*;
use serde_json::Value;

const SAMPLE_KEYS: [&str; 8] = [
    "buffers",
    "hitratio",
    "active_backends",
    "databases",
    "cpu",
    "loadaverage",
    "memory",
    "timestamp",
];

/// Checks one 9.x sample's keys and JSON types (facts 5).
fn check_sample(s: &Value, mem_total_kb: u64) {
    assert!(s["buffers"]["nb"].is_u64(), "{s}");
    assert!(s["hitratio"].is_f64() || s["hitratio"].is_null(), "{s}");
    assert!(s["active_backends"]["nb"].is_u64(), "{s}");
    let d = &s["databases"];
    assert_eq!(
        keys(d),
        sorted(&[
            "databases",
            "total_size",
            "nb",
            "total_size_bytes",
            "total_commit",
            "total_rollback"
        ])
    );
    assert_eq!(d["nb"], d["databases"]);
    assert!(d["databases"].as_u64().unwrap() >= 1);
    assert!(d["total_size"].as_str().unwrap().ends_with("B"), "{d}");
    // Real bytes: a database is megabytes, never a few thousand.
    assert!(d["total_size_bytes"].as_u64().unwrap() > 1_000_000, "{d}");
    assert_eq!(
        keys(&s["cpu"]),
        sorted(&["user", "system", "idle", "iowait", "steal"])
    );
    assert!(s["loadaverage"].is_number());
    let m = &s["memory"];
    assert_eq!(
        keys(m),
        sorted(&[
            "total",
            "free",
            "active",
            "cached",
            "free_bytes",
            "active_bytes",
            "cached_bytes"
        ])
    );
    // total stays in kB (the UI multiplies it by 1000); *_bytes are bytes.
    assert_eq!(m["total"].as_u64().unwrap(), mem_total_kb);
    let parts: u64 = ["free_bytes", "active_bytes", "cached_bytes"]
        .iter()
        .map(|k| m[*k].as_u64().unwrap())
        .sum();
    assert!(
        parts > mem_total_kb * 1024 / 2 && parts <= mem_total_kb * 1024,
        "bytes, not kB: {m}"
    );
    assert!(s["timestamp"].is_f64(), "{s}");
}

fn mem_total_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn dashboard_routes_answer_signed_requests_in_the_9x_shapes() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("dashboard", "scheduler_interval", "1");
    files.set("dashboard", "history_length", "4");
    files.write();
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    let agent = Agent::start(files);
    let get = |target: &str| {
        let r = Signed::get(target).send(&agent, &key);
        assert_eq!(
            r.status,
            200,
            "{target}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    };

    let config = get("/dashboard/config");
    assert_eq!(
        config,
        serde_json::json!({"scheduler_interval": 1, "history_length": 4})
    );

    // Two collections at least, then the history's samples, oldest first.
    let mut history = Value::Null;
    assert!(
        eventually(Duration::from_secs(60), || {
            history = get("/dashboard/history");
            history.as_array().is_some_and(|h| h.len() >= 2)
        }),
        "fewer than two samples: {history}"
    );
    let samples = history.as_array().unwrap();
    assert!(samples.len() <= 4, "over history_length: {}", samples.len());
    let total = mem_total_kb();
    for s in samples {
        assert_eq!(keys(s), sorted(&SAMPLE_KEYS), "{s}");
        check_sample(s, total);
    }
    let times: Vec<f64> = samples
        .iter()
        .map(|s| s["timestamp"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");

    // /dashboard: the last sample, notifications and the 9.x status.
    let dash = get("/dashboard");
    let mut expected = SAMPLE_KEYS.to_vec();
    expected.extend(["notifications", "status"]);
    assert_eq!(keys(&dash), sorted(&expected), "{dash}");
    check_sample(&dash, total);
    assert!(dash["notifications"].is_array());
    assert_eq!(dash["status"]["postgres"]["status"], "running");
    assert_eq!(dash["status"]["temboard"]["status"], "running");
    assert!(dash["timestamp"].as_f64().unwrap() >= times[0]);

    // 2.x routes absent in 9.x.
    let r = Signed::get("/dashboard/live").send(&agent, &key);
    assert_eq!(error(&r), (404, "Not found: '/dashboard/live'".into()));
    let r = Signed::get("/dashboard/hitratio").send(&agent, &key);
    assert_eq!(r.status, 404);

    // The same collection keeps its 2.x answers unchanged.
    let session = agent.login("alice", "alice");
    let v2 = agent.get_with_session("/dashboard", &session);
    assert_eq!(v2.status, 200);
    let text = String::from_utf8_lossy(&v2.body).to_string();
    assert!(!text.contains("total_size_bytes"), "{text}");
    assert!(!text.contains("free_bytes"), "{text}");
    assert!(v2.json().get("status").is_none());
    let d2 = agent
        .get_with_session("/dashboard/databases", &session)
        .json();
    assert!(d2["databases"].get("total_size_bytes").is_none(), "{d2}");
    let h2 = agent
        .get_with_session("/dashboard/history", &session)
        .json();
    assert!(!h2.to_string().contains("total_size_bytes"));
    let live = agent.get_with_session("/dashboard/live", &session).json();
    assert!(live.get("total_size_bytes").is_none(), "{live}");
}
