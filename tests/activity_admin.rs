//! Activity and administration plugins against a real cluster and the real
//! binary: listings, lock conflicts, kill, pg_version, control actions as
//! operations, crash of the pg_ctl worker mid-action.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn rows(agent: &Agent, s: &str, path: &str) -> Vec<Value> {
    let r = agent.get_with_session(path, s);
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["rows"].as_array().unwrap().clone()
}

fn agent_pids(pg: &PgCluster) -> Vec<i32> {
    let mut c = pg.client();
    c.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'temboard-agent'",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn activity_lists_backends_and_kills_them() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let mut sleeper = pg.client();
    let sleeper_pid: i32 = sleeper
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let handle = std::thread::spawn(move || {
        sleeper
            .simple_query("SELECT pg_sleep(60)")
            .map(|_| ())
            .map_err(|e| e.to_string())
    });

    let mut row = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            row = rows(&agent, &s, "/activity")
                .into_iter()
                .find(|r| r["pid"] == sleeper_pid)
                .unwrap_or(Value::Null);
            row["state"] == "active" && row["duration"].as_f64().unwrap_or(0.0) > 0.0
        }),
        "pg_sleep session not listed as active: {row}"
    );
    let keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in [
        "pid", "database", "client", "duration", "wait", "user", "state", "query", "cpu", "memory",
        "read_s", "write_s", "iow",
    ] {
        assert!(keys.contains(&k), "missing {k} in {row}");
    }
    assert_eq!(keys.len(), 13, "{row}");
    assert_eq!(row["database"], "postgres");
    assert_eq!(row["user"], "postgres");
    assert_eq!(row["client"], Value::Null, "unix socket client");
    assert_eq!(row["wait"], "N");
    assert!(row["query"].as_str().unwrap().contains("pg_sleep(60)"));
    assert!(row["duration"].is_f64());
    // The agent's workers run as the cluster owner here, so /proc is readable.
    assert!(row["cpu"].is_number() && row["memory"].is_number(), "{row}");
    assert!(
        row["read_s"].as_str().unwrap().ends_with('B')
            || row["read_s"].as_str().unwrap().ends_with('K'),
        "{row}"
    );
    assert!(["Y", "N"].contains(&row["iow"].as_str().unwrap()));
    // Never the agent's own connections.
    let own = agent_pids(&pg);
    assert!(!own.is_empty());
    let listed: Vec<i64> = rows(&agent, &s, "/activity")
        .iter()
        .map(|r| r["pid"].as_i64().unwrap())
        .collect();
    for p in own {
        assert!(!listed.contains(&(p as i64)), "agent backend {p} listed");
    }

    // Kill it, and an unknown pid.
    let r = agent.post_json(
        "/activity/kill",
        &json!({"pids": [sleeper_pid, 999_999]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"backends": [{"pid": sleeper_pid, "killed": true}, {"pid": 999_999, "killed": false}]})
    );
    assert!(
        handle.join().unwrap().is_err(),
        "the killed session's query should fail"
    );
    let mut c = pg.client();
    assert!(eventually(Duration::from_secs(5), || {
        c.query(
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1",
            &[&sleeper_pid],
        )
        .unwrap()
        .is_empty()
    }));
    let owned = agent.notification_messages(&s);
    let messages: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert!(
        messages.contains(&format!("Backend {sleeper_pid} terminated").as_str()),
        "{messages:?}"
    );
    // Unlike 2.x, a pid that was not terminated records nothing (issue #15:
    // 50,000 unknown pids had replaced every notification).
    assert!(!messages.contains(&"Backend 999999 terminated"));

    // Validation of pids.
    for (body, msg) in [
        (json!({}), "Parameter 'pids' not sent."),
        (json!({"pids": "12"}), "Parameter 'pids' is malformed."),
        (json!({"pids": [1.5]}), "Parameter 'pids' is malformed."),
        (json!({"pids": [true]}), "Parameter 'pids' is malformed."),
        (json!({"pids": ["12"]}), "Parameter 'pids' is malformed."),
    ] {
        let r = agent.post_json("/activity/kill", &body, Some(&s));
        assert_eq!(
            (r.status, r.json()["error"].as_str().unwrap().to_string()),
            (406, msg.to_string()),
            "{body}"
        );
    }
}

#[test]
fn lock_conflicts_show_waiting_and_blocking() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let mut holder = pg.client();
    holder.batch_execute("CREATE TABLE t (i int)").unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut waiter = pg.client();
    let waiter_pid: i32 = waiter
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let handle = std::thread::spawn(move || {
        waiter
            .simple_query("SELECT count(*) FROM t")
            .map(|_| ())
            .map_err(|e| e.to_string())
    });

    let mut waiting = vec![];
    assert!(
        eventually(Duration::from_secs(10), || {
            waiting = rows(&agent, &s, "/activity/waiting");
            waiting.iter().any(|r| r["pid"] == waiter_pid)
        }),
        "{waiting:?}"
    );
    let w = waiting.iter().find(|r| r["pid"] == waiter_pid).unwrap();
    assert_eq!(w["relation"], "t");
    assert_eq!(w["type"], "relation");
    assert_eq!(w["mode"], "AccessShareLock");
    for k in [
        "pid", "database", "user", "mode", "type", "relation", "duration", "state", "query", "cpu",
        "memory", "read_s", "write_s", "iow",
    ] {
        assert!(w.get(k).is_some(), "missing {k} in {w}");
    }
    let blocking = rows(&agent, &s, "/activity/blocking");
    let b = blocking
        .iter()
        .find(|r| r["pid"] == holder_pid)
        .unwrap_or_else(|| panic!("holder not blocking: {blocking:?}"));
    assert_eq!(b["mode"], "AccessExclusiveLock");
    assert_eq!(b["relation"], "t");
    let all = rows(&agent, &s, "/activity");
    assert_eq!(
        all.iter().find(|r| r["pid"] == waiter_pid).unwrap()["wait"],
        "Y"
    );

    // Kill the holder through the API: the waiter goes on.
    let r = agent.post_json("/activity/kill", &json!({"pids": [holder_pid]}), Some(&s));
    assert_eq!(r.json()["backends"][0]["killed"], true);
    assert!(handle.join().unwrap().is_ok(), "waiter still blocked");
    let mut c = pg.client();
    assert!(c
        .query(
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1",
            &[&holder_pid]
        )
        .unwrap()
        .is_empty());
    assert!(rows(&agent, &s, "/activity/waiting").is_empty());
}

#[test]
fn terminated_agent_connections_are_replaced_transparently() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    for _ in 0..3 {
        rows(&agent, &s, "/activity");
        let mut c = pg.client();
        let n = c
            .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'temboard-agent'", &[])
            .unwrap()
            .len();
        assert!(n >= 1);
        rows(&agent, &s, "/activity");
    }
    assert!(
        agent_pids(&pg).len() <= 4,
        "more connections than the pool's cap"
    );
}

#[test]
fn pg_version_keeps_the_2x_formula() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let v = agent
        .get_with_session("/administration/pg_version", &s)
        .json();
    let mut c = pg.client();
    let row = c
        .query_one("SELECT version(), current_setting('server_version')", &[])
        .unwrap();
    assert_eq!(v["full"], row.get::<_, String>(0));
    let sv: String = row.get(1);
    let parts: Vec<u32> = sv
        .split_whitespace()
        .next()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    let digits: String = parts.iter().map(|p| format!("{p:02}")).collect();
    let mut expected: i64 = digits.parse().unwrap();
    if expected < 10_000 {
        expected *= 100;
    }
    assert_eq!(v["numeric"], expected);
    assert!(v["numeric"].as_i64().unwrap() >= 90400);
}

fn control(agent: &Agent, s: &str, action: &str) -> HttpResponse {
    agent.post_json(
        "/administration/control",
        &json!({ "action": action }),
        Some(s),
    )
}

fn postmaster_start(pg: &PgCluster) -> String {
    pg.client()
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .unwrap()
        .get(0)
}

#[test]
fn control_actions_are_operations() {
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("administration", "pg_ctl", &pg.pg_ctl_template());
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");

    let r = control(&agent, &s, "reload");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["action"], "reload");
    assert_eq!(r.json()["state"], "ok");

    let before = postmaster_start(&pg);
    let r = control(&agent, &s, "restart");
    assert_eq!(
        (r.status, r.json()["state"].clone()),
        (200, json!("ok")),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let op = r.json()["operation"].as_str().unwrap().to_string();
    assert_ne!(
        postmaster_start(&pg),
        before,
        "PostgreSQL was not restarted"
    );

    let r = control(&agent, &s, "stop");
    assert_eq!(
        r.json()["state"],
        "ok",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(postgres::Config::new()
        .host_path(pg.socket_dir())
        .port(pg.port)
        .user("postgres")
        .connect(postgres::NoTls)
        .is_err());
    let r = control(&agent, &s, "start");
    assert_eq!(
        r.json()["state"],
        "ok",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    postmaster_start(&pg);

    let list = agent.get_with_session("/operations", &s).json();
    let ops = list["operations"].as_array().unwrap();
    let kinds: Vec<&str> = ops.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["start", "stop", "restart", "reload"]);
    assert!(ops.iter().all(|o| o["state"] == "DONE"
        && o["username"] == "alice"
        && o["end_datetime"].is_string()));
    let one = agent
        .get_with_session(&format!("/operations/{op}"), &s)
        .json();
    assert_eq!(one["id"], op.as_str());
    assert_eq!(one["type"], "restart");
    let r = agent.get_with_session(&format!("/operations/{}", "0".repeat(32)), &s);
    assert_eq!(r.status, 404);
    let r = agent.get_with_session("/operations/../../etc/passwd", &s);
    assert_eq!(r.status, 404);

    let owned = agent.notification_messages(&s);
    let messages: Vec<&str> = owned.iter().map(String::as_str).collect();
    for m in [
        "PostgreSQL reload",
        "PostgreSQL restart",
        "PostgreSQL stop",
        "PostgreSQL start",
    ] {
        assert!(messages.contains(&m), "{m} missing: {messages:?}");
    }
    for (body, msg) in [
        (json!({}), "Parameter 'action' not sent."),
        (
            json!({"action": "explode"}),
            "Parameter 'action' is malformed.",
        ),
        (json!({"action": 1}), "Parameter 'action' is malformed."),
    ] {
        let r = agent.post_json("/administration/control", &body, Some(&s));
        assert_eq!((r.status, r.json()["error"].clone()), (406, json!(msg)));
    }
}

fn agent_with_pg_ctl(pg: Option<&PgCluster>, template: &str) -> Agent {
    let mut files = AgentFiles::new(pg);
    files.set("administration", "pg_ctl", template);
    files.write();
    Agent::start(files)
}

fn operations(agent: &Agent, s: &str) -> Vec<Value> {
    agent.get_with_session("/operations", s).json()["operations"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn failing_concurrent_and_unset_commands() {
    // A failing command: FAILED with its output, a clear 500.
    let agent = agent_with_pg_ctl(None, "sh -c 'echo boom; exit 3' %s");
    let s = agent.login("alice", "alice");
    let r = control(&agent, &s, "reload");
    assert_eq!(r.status, 500);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("PostgreSQL reload failed") && msg.contains("exit status 3"),
        "{msg}"
    );
    let op = &operations(&agent, &s)[0];
    assert_eq!(op["state"], "FAILED");
    assert_eq!(op["output"], "boom\n");
    drop(agent);

    // One action at a time.
    let agent = agent_with_pg_ctl(None, "sh -c 'sleep 2' %s");
    let s = agent.login("alice", "alice");
    let (port, cert, s2) = (agent.port, agent.files.cert_pem(), s.clone());
    let first = std::thread::spawn(move || {
        let body = json!({"action": "reload"}).to_string();
        https_request(
            port,
            &cert,
            "POST",
            "/administration/control",
            &[("X-Session", &s2)],
            Some(body.as_bytes()),
        )
        .unwrap()
    });
    assert!(eventually(Duration::from_secs(5), || operations(
        &agent, &s
    )
    .first()
    .is_some_and(|o| o["state"] == "IN_PROGRESS")));
    let r = control(&agent, &s, "restart");
    assert_eq!(r.status, 409);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Another control action is in progress"));
    assert_eq!(first.join().unwrap().json()["state"], "ok");
    drop(agent);

    // The command inherits no agent descriptor (no socket among its fds).
    let agent = agent_with_pg_ctl(None, "sh -c 'ls -l /proc/self/fd/; exit 1' %s");
    let s = agent.login("alice", "alice");
    assert_eq!(control(&agent, &s, "reload").status, 500);
    let out = operations(&agent, &s)[0]["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(out.contains("0 -> /dev/null"), "{out}");
    assert!(
        !out.contains("socket:"),
        "agent socket inherited by the command:\n{out}"
    );
    drop(agent);

    // pg_ctl unset: a clear error.
    let agent = Agent::start(AgentFiles::new(None));
    let s = agent.login("alice", "alice");
    let r = control(&agent, &s, "reload");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["error"],
        "PostgreSQL control is not configured: set [administration] pg_ctl"
    );
    assert!(operations(&agent, &s).is_empty());
}

#[test]
fn killed_pgctl_worker_never_leaves_an_operation_in_progress() {
    let agent = agent_with_pg_ctl(None, "sh -c 'sleep 3' %s");
    let s = agent.login("alice", "alice");
    let (port, cert, s2) = (agent.port, agent.files.cert_pem(), s.clone());
    let call = std::thread::spawn(move || {
        let body = json!({"action": "restart"}).to_string();
        https_request(
            port,
            &cert,
            "POST",
            "/administration/control",
            &[("X-Session", &s2)],
            Some(body.as_bytes()),
        )
        .unwrap()
    });
    assert!(eventually(Duration::from_secs(5), || operations(
        &agent, &s
    )
    .first()
    .is_some_and(|o| o["state"] == "IN_PROGRESS")));
    let pid = agent.worker_pid("pgctl").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The API keeps answering meanwhile.
    assert_eq!(agent.get("/status").unwrap().status, 200);
    let r = call.join().unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(eventually(Duration::from_secs(5), || operations(
        &agent, &s
    )[0]["state"]
        == "FAILED"));
    let op = &operations(&agent, &s)[0];
    assert!(
        op["reason"].as_str().unwrap().starts_with("interrupted"),
        "{op}"
    );
    // And the next action runs, on the restarted worker, to its end.
    assert!(eventually(Duration::from_secs(5), || agent
        .worker_pid("pgctl")
        .is_some_and(|p| p != pid)));
    let next = agent.post_json(
        "/administration/control",
        &json!({"action": "reload"}),
        Some(&s),
    );
    assert_eq!(next.status, 200, "{}", String::from_utf8_lossy(&next.body));
    let id = next.json()["operation"].as_str().unwrap().to_string();
    let op = &operations(&agent, &s)[0];
    assert_eq!(op["id"], id.as_str(), "{op}");
    assert_eq!(op["state"], "DONE", "{op}");
}

#[test]
fn plugin_routes_exist_only_when_loaded() {
    let mut files = AgentFiles::new(None);
    files.set("temboard", "plugins", r#"["dashboard"]"#);
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");
    for path in ["/activity", "/administration/pg_version", "/operations"] {
        let r = agent.get_with_session(path, &s);
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (404, json!("URL not found.")),
            "{path}"
        );
    }
}
