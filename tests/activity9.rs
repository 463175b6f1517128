//! The activity plugin in the temBoard 9.x contract (issue #19, facts 9.x
//! section 4), against the real binary and a real PostgreSQL with a real
//! lock conflict: every route's shape and JSON types from signed requests,
//! `?limit=`, the lock columns of `/activity/locks` (not 9.0.1's), the kill
//! recorded with the signed user, the routing rules (trailing slash, 405),
//! the same paths unchanged for 2.x sessions, and the real 9.0.1 toolkit.

mod common;

use std::time::Duration;

use common::signed::*;
use common::*;
use serde_json::{json, Value};

const ACTIVITY_COLUMNS: [&str; 14] = [
    "pid",
    "database",
    "client",
    "duration",
    "wait",
    "user",
    "application_name",
    "state",
    "query",
    "iow",
    "read_s",
    "write_s",
    "cpu",
    "memory",
];

/// A lock conflict: `holder` keeps an ACCESS EXCLUSIVE lock on `t` in an
/// open transaction; `waiter` (application `waiter9`, in a thread) blocks
/// on `SELECT` from `t` until the holder ends or it is terminated.
struct Conflict {
    holder: postgres::Client,
    holder_pid: i32,
    waiter_pid: i32,
    waiter: Option<std::thread::JoinHandle<()>>,
}

impl Conflict {
    fn start(pg: &PgCluster) -> Conflict {
        let mut setup = pg.client();
        setup
            .batch_execute("CREATE TABLE IF NOT EXISTS t (i int); SET application_name = 'holder9'")
            .unwrap();
        let holder_pid: i32 = setup
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        setup
            .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        let mut waiter = pg.client();
        waiter
            .batch_execute("SET application_name = 'waiter9'")
            .unwrap();
        let waiter_pid: i32 = waiter
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        let handle = std::thread::spawn(move || {
            // Ends with an error once the backend is terminated: expected.
            let _ = waiter.query("SELECT count(*) FROM t", &[]);
        });
        let mut probe = pg.client();
        assert!(
            eventually(Duration::from_secs(30), || {
                probe
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                        &[&waiter_pid],
                    )
                    .map(|r| r.get::<_, i64>(0) == 1)
                    .unwrap_or(false)
            }),
            "the waiter never waited for the lock"
        );
        Conflict {
            holder: setup,
            holder_pid,
            waiter_pid,
            waiter: Some(handle),
        }
    }
}

impl Drop for Conflict {
    fn drop(&mut self) {
        let _ = self.holder.batch_execute("ROLLBACK");
        if let Some(h) = self.waiter.take() {
            let _ = h.join();
        }
    }
}

fn rows_of(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().expect("rows")
}

fn row_of(v: &Value, pid: i32) -> Value {
    rows_of(v)
        .iter()
        .find(|r| r["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("no row for pid {pid} in {v}"))
}

fn columns(v: &Value) -> Vec<String> {
    v["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn get9(agent: &Agent, key: &rsa::RsaPrivateKey, target: &str) -> Value {
    let r = Signed::get(target).send(agent, key);
    assert_eq!(
        r.status,
        200,
        "{target}: {}\nagent log:\n{}",
        String::from_utf8_lossy(&r.body),
        agent.log()
    );
    r.json()
}

#[test]
fn activity_routes_answer_signed_requests_in_the_9x_shapes() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_key(Some(&pg), &public);
    let conflict = Conflict::start(&pg);
    let (holder, waiter) = (conflict.holder_pid, conflict.waiter_pid);

    // GET /activity: the 9.x envelope, columns and types.
    let all = get9(&agent, &key, "/activity");
    assert_eq!(columns(&all), ACTIVITY_COLUMNS);
    let w = row_of(&all, waiter);
    assert_eq!(w["application_name"], "waiter9");
    assert_eq!(w["wait"], "Y");
    assert_eq!(w["database"], "postgres");
    assert_eq!(w["user"], "postgres");
    assert_eq!(
        w["client"],
        Value::Null,
        "a Unix-socket client has no address"
    );
    assert!(w["duration"].is_f64() || w["duration"].is_u64(), "{w}");
    assert!(w["query"].as_str().unwrap().contains("FROM t"));
    for k in ACTIVITY_COLUMNS {
        assert!(w.get(k).is_some(), "row misses {k}: {w}");
    }
    assert_eq!(row_of(&all, holder)["wait"], "N");
    // The agent's own backends are not listed.
    assert!(rows_of(&all)
        .iter()
        .all(|r| r["application_name"] != "temboard-agent"));

    // ?limit=N caps the rows; anything but digits is a 406.
    let one = get9(&agent, &key, "/activity?limit=1");
    assert_eq!(rows_of(&one).len(), 1);
    for bad in ["x", "-1", "1.5"] {
        let target = format!("/activity?limit={bad}");
        let r = Signed::get(&target).send(&agent, &key);
        assert_eq!(
            error(&r),
            (406, "Parameter 'limit' is malformed.".into()),
            "limit={bad}"
        );
    }

    // waiting / blocking: lock rows with application_name, same columns.
    let waiting = get9(&agent, &key, "/activity/waiting");
    assert_eq!(columns(&waiting), ACTIVITY_COLUMNS);
    let w = row_of(&waiting, waiter);
    assert_eq!(w["mode"], "AccessShareLock");
    assert_eq!(w["type"], "relation");
    assert_eq!(w["relation"], "t");
    assert_eq!(w["application_name"], "waiter9");
    let blocking = get9(&agent, &key, "/activity/blocking");
    let h = row_of(&blocking, holder);
    assert_eq!(h["mode"], "AccessExclusiveLock");
    assert_eq!(h["application_name"], "holder9");

    // sessions: timestamps, waiting/blocking, cumulative /proc figures.
    let sessions = get9(&agent, &key, "/activity/sessions");
    assert_eq!(
        columns(&sessions),
        [
            "pid",
            "client_addr",
            "username",
            "application_name",
            "database",
            "state",
            "backend_start",
            "query_start",
            "duration",
            "query",
            "waiting",
            "blocking"
        ]
    );
    let w = row_of(&sessions, waiter);
    assert_eq!(
        (w["waiting"].clone(), w["blocking"].clone()),
        (json!(true), json!(false))
    );
    let h = row_of(&sessions, holder);
    assert_eq!(
        (h["waiting"].clone(), h["blocking"].clone()),
        (json!(false), json!(true))
    );
    let started = w["backend_start"].as_str().expect("backend_start");
    assert!(
        chrono::DateTime::parse_from_rfc3339(started).is_ok(),
        "not ISO 8601 with an offset: {started}"
    );
    assert!(w["duration"].is_f64(), "{w}");
    ci_runs_as_root();
    if is_root() {
        // /proc of postgres's processes is readable by root only here.
        assert!(w["cpu_time"].is_u64(), "{w}");
        assert!(w["memory"].as_u64().unwrap() > 0, "{w}");
        assert!(w["proc_state"].is_string(), "{w}");
        assert!(w["proc_read"].is_u64(), "{w}");
    }

    // locks: the lock columns (waitstart on 14+), never the sessions ones.
    let locks = get9(&agent, &key, "/activity/locks");
    assert_eq!(
        columns(&locks),
        [
            "pid",
            "locktype",
            "database",
            "schema",
            "relation",
            "mode",
            "granted",
            "blocking_pid",
            "waitstart",
            "waiting_pids"
        ]
    );
    let rows = rows_of(&locks);
    let ungranted = rows
        .iter()
        .find(|r| r["pid"] == waiter && r["granted"] == false)
        .unwrap_or_else(|| panic!("no ungranted lock of the waiter: {locks}"));
    assert_eq!(ungranted["blocking_pid"], holder);
    assert_eq!(ungranted["relation"], "t");
    assert_eq!(ungranted["schema"], "public");
    assert_eq!(ungranted["database"], "postgres");
    assert!(ungranted["waitstart"].is_string(), "{ungranted}");
    assert!(ungranted.get("min").is_none());
    let granted = rows
        .iter()
        .find(|r| r["pid"] == holder && r["granted"] == true)
        .unwrap_or_else(|| panic!("no blocking lock of the holder: {locks}"));
    assert_eq!(granted["mode"], "AccessExclusiveLock");
    assert_eq!(granted["waiting_pids"], json!([waiter]));
    assert_eq!(granted["blocking_pid"], Value::Null);

    // Routing: the plugin's bare prefix with a slash, 405, unknown path.
    assert_eq!(Signed::get("/activity/").send(&agent, &key).status, 200);
    let r = Signed::post("/activity", b"{}").send(&agent, &key);
    assert_eq!(error(&r), (405, "Method not allowed.".into()));
    let r = Signed::get("/activity/nope").send(&agent, &key);
    assert_eq!(error(&r), (404, "Not found: '/activity/nope'".into()));

    // The same paths for a 2.x session: unchanged shapes, no 9.x routes.
    let session = agent.login("alice", "alice");
    let v2 = agent.get_with_session("/activity", &session).json();
    assert!(v2.get("columns").is_none(), "{v2}");
    let w2 = row_of(&v2, waiter);
    assert!(
        w2.get("application_name").is_none(),
        "2.x row changed: {w2}"
    );
    let r = agent.get_with_session("/activity/sessions", &session);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, json!("URL not found."))
    );

    // POST /activity/kill: the 9.x body, a notification with the signed user.
    let body = format!("{{\"pids\": [{waiter}, 999999]}}");
    let r = Signed {
        user: "carol",
        ..Signed::post("/activity/kill", body.as_bytes())
    }
    .send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"backends": [{"pid": waiter, "killed": true}, {"pid": 999999, "killed": false}]})
    );
    let notes = get9(&agent, &key, "/notifications");
    let note = notes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["message"] == format!("Backend {waiter} terminated"))
        .unwrap_or_else(|| panic!("no kill notification: {notes}"));
    assert_eq!(note["username"], "carol");
    for (body, expected) in [
        (&b"{}"[..], "Parameter 'pids' not sent."),
        (
            &b"{\"pids\": [\"1\"]}"[..],
            "Parameter 'pids' is malformed.",
        ),
        (&b"{\"pids\": [1.0]}"[..], "Parameter 'pids' is malformed."),
    ] {
        let r = Signed::post("/activity/kill", body).send(&agent, &key);
        assert_eq!(error(&r), (406, expected.into()));
    }
    let r = Signed::post("/activity/kill", b"{not json").send(&agent, &key);
    assert_eq!(r.status, 400);
    assert!(
        error(&r).1.starts_with("Invalid JSON body"),
        "{:?}",
        error(&r)
    );
    drop(conflict);
}

#[test]
fn the_activity_routes_accept_what_the_real_toolkit_signs() {
    let (public, _) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_key(Some(&pg), &public);
    // The UI's activity page: blocking, running, waiting; then a kill.
    let spec = json!([
        {"method": "GET", "path": "/activity/blocking"},
        {"method": "GET", "path": "/activity"},
        {"method": "GET", "path": "/activity/waiting"},
        {"method": "GET", "path": "/activity?limit=5"},
        {"method": "POST", "path": "/activity/kill", "body": "{\"pids\": [999999]}"},
    ]);
    let answers = toolkit_requests(&agent, &spec);
    assert_eq!(answers.len(), 5);
    for a in &answers[..4] {
        assert_eq!(a["status"], 200, "{a}");
        assert_eq!(a["body"]["columns"].as_array().unwrap().len(), 14, "{a}");
    }
    assert_eq!(answers[4]["status"], 200, "{}", answers[4]);
    assert_eq!(
        answers[4]["body"],
        json!({"backends": [{"pid": 999999, "killed": false}]})
    );
}
