//! PostgreSQL fault suite (issue #9, part 2): the agent started while
//! PostgreSQL is down, PostgreSQL restarted under load, the agent's backends
//! terminated under load. While PostgreSQL is away the agent answers with
//! clear JSON errors; once it is back, normal answers; the agent never holds
//! more connections than its pool's cap.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

/// Cap of the probe worker's pool (src/workers/probe/pool.rs): the only
/// PostgreSQL connections of the agent.
const CAP: i64 = temboard_agent::pg::MAX_CONNECTIONS as i64;

/// Routes that need PostgreSQL, with a session.
const PG_ROUTES: &[&str] = &[
    "/activity",
    "/discover",
    "/dashboard/live",
    "/pgconf/configuration/status",
    "/monitoring/probe/sessions",
    "/administration/pg_version",
];

#[derive(Default, Debug)]
struct Seen {
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    connection_errors: u64,
    bad: Vec<String>,
}

/// Checks one answer: 200, or a 5xx with a JSON `error` string.
fn record(seen: &Mutex<Seen>, path: &str, r: std::io::Result<HttpResponse>) {
    let mut s = seen.lock().unwrap();
    match r {
        Ok(r) => {
            *s.statuses.entry(r.status).or_default() += 1;
            let body = serde_json::from_slice::<serde_json::Value>(&r.body).ok();
            let error = body
                .as_ref()
                .and_then(|b| b["error"].as_str())
                .map(str::to_string);
            match (r.status, error) {
                (200, _) if body.is_some() => {}
                (500..=599, Some(e)) if !e.is_empty() => {
                    // Group by message without numbers (pids, ports).
                    let key: String = e.chars().filter(|c| !c.is_ascii_digit()).take(90).collect();
                    *s.errors.entry(key).or_default() += 1;
                }
                _ => s.bad.push(format!(
                    "{path}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )),
            }
        }
        Err(e) => {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{path} hung"
            );
            s.connection_errors += 1;
        }
    }
}

/// Samples the agent's connection count until `stop`; keeps the maximum.
fn sample_connections(socket_dir: &std::path::Path, port: u16, stop: &AtomicBool, max: &AtomicI64) {
    let mut client: Option<postgres::Client> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if client.is_none() {
            client = postgres::Config::new()
                .host_path(socket_dir)
                .port(port)
                .user("postgres")
                .dbname("postgres")
                .connect_timeout(Duration::from_secs(1))
                .connect(postgres::NoTls)
                .ok();
        }
        let Some(c) = client.as_mut() else { continue };
        match c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'temboard-agent'",
            &[],
        ) {
            Ok(row) => {
                max.fetch_max(row.get::<_, i64>(0), Ordering::Relaxed);
            }
            Err(_) => client = None,
        }
    }
}

fn load(agent: &Agent, session: &str, stop: &AtomicBool, seen: &Mutex<Seen>, offset: usize) {
    let mut i = offset;
    while !stop.load(Ordering::Relaxed) {
        let path = PG_ROUTES[i % PG_ROUTES.len()];
        i += 1;
        record(
            seen,
            path,
            agent.request("GET", path, &[("X-Session", session)], None),
        );
    }
}

fn all_answer(agent: &Agent, session: &str) -> bool {
    PG_ROUTES.iter().all(|p| {
        agent
            .request("GET", p, &[("X-Session", session)], None)
            .is_ok_and(|r| r.status == 200)
    })
}

#[test]
fn started_with_postgresql_down_then_up() {
    let mut pg = PgCluster::start();
    pg.stop();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let session = agent.login("alice", "alice");
    let seen = Mutex::new(Seen::default());
    for p in PG_ROUTES {
        let r = agent.request("GET", p, &[("X-Session", &session)], None);
        if let Ok(r) = &r {
            if p.starts_with("/monitoring/probe/") {
                // The 2.x contract (facts 10.1): a failing probe yields [].
                assert_eq!(r.status, 200);
                assert_eq!(r.json()["sessions"], serde_json::json!([]));
                continue;
            }
            assert_ne!(
                r.status,
                200,
                "{p} with PostgreSQL down: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
        record(&seen, p, r);
    }
    let health = agent.get("/health").unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(
        health.json()["components"]["postgresql"]["status"],
        "failing"
    );
    let seen = seen.into_inner().unwrap();
    eprintln!("PostgreSQL down: {seen:?}");
    assert!(seen.bad.is_empty(), "{:?}", seen.bad);
    assert_eq!(seen.statuses.get(&200), None, "{seen:?}");
    // The errors say what is wrong (and there are some to read).
    assert!(!seen.errors.is_empty(), "no error seen: {seen:?}");
    assert!(
        seen.errors
            .keys()
            .all(|e| e.to_lowercase().contains("postgres") || e.contains("connect")),
        "{:?}",
        seen.errors
    );
    // Routes that do not need PostgreSQL keep working.
    assert_eq!(agent.get("/status").unwrap().status, 200);
    assert_eq!(agent.get_with_session("/profile", &session).status, 200);

    pg.start_again();
    assert!(
        eventually(Duration::from_secs(10), || all_answer(&agent, &session)),
        "routes did not recover once PostgreSQL started"
    );
    assert!(eventually(Duration::from_secs(5), || agent
        .get("/health")
        .is_ok_and(|r| r.status == 200)));
}

#[test]
fn postgresql_restarts_and_terminated_backends_under_load() {
    let mut pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let session = agent.login("alice", "alice");
    let stop = AtomicBool::new(false);
    let max = AtomicI64::new(0);
    let seen = Mutex::new(Seen::default());
    let mut terminated = 0u64;
    let (socket_dir, port) = (pg.socket_dir(), pg.port);
    std::thread::scope(|scope| {
        scope.spawn(|| sample_connections(&socket_dir, port, &stop, &max));
        for t in 0..4 {
            let (agent, session, stop, seen) = (&agent, &session, &stop, &seen);
            scope.spawn(move || load(agent, session, stop, seen, t));
        }
        // Terminated backends: 30 times, every agent backend at once.
        let mut admin = pg.client();
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            let row = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'temboard-agent'",
                    &[],
                )
                .unwrap();
            terminated += row.get::<_, i64>(0) as u64;
        }
        drop(admin);
        assert!(
            eventually(Duration::from_secs(10), || all_answer(&agent, &session)),
            "not back after terminated backends"
        );
        stop.store(true, Ordering::Relaxed);
    });
    let after_terminations = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!("{terminated} backends terminated: {after_terminations:?}");
    assert!(terminated >= 10, "the load kept no backend open");
    assert!(
        after_terminations.bad.is_empty(),
        "{:?}",
        after_terminations.bad
    );

    // PostgreSQL restarted (immediate stop, start) 5 times under load.
    stop.store(false, Ordering::Relaxed);
    std::thread::scope(|scope| {
        scope.spawn(|| sample_connections(&socket_dir, port, &stop, &max));
        for t in 0..4 {
            let (agent, session, stop, seen) = (&agent, &session, &stop, &seen);
            scope.spawn(move || load(agent, session, stop, seen, t));
        }
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(500));
            pg.stop();
            std::thread::sleep(Duration::from_millis(500));
            pg.start_again();
            assert!(
                eventually(Duration::from_secs(10), || all_answer(&agent, &session)),
                "not back after a PostgreSQL restart; log:\n{}",
                agent.log()
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    let restarts = seen.into_inner().unwrap();
    eprintln!("5 PostgreSQL restarts: {restarts:?}");
    assert!(restarts.bad.is_empty(), "{:?}", restarts.bad);
    assert!(
        restarts.errors.keys().any(|_| true),
        "no request saw PostgreSQL down: the load missed the restarts"
    );
    // The http and probe workers never died over it.
    let me = agent.get_with_session("/agent/self", &session).json();
    for w in me["workers"].as_array().unwrap() {
        assert_eq!(w["restarts"], 0, "{w}");
    }
    let peak = max.load(Ordering::Relaxed);
    eprintln!("peak agent connections: {peak} (cap {CAP})");
    assert!((1..=CAP).contains(&peak), "peak {peak}, cap {CAP}");
}

/// A lasting condition is logged once when it starts and once when it ends
/// (with a count), from one process: here an unusable syslog socket and a
/// PostgreSQL that stops for several collections.
#[test]
fn lasting_failures_are_logged_when_they_start_and_end_not_every_cycle() {
    let mut pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("logging", "method", "syslog");
    files.set("logging", "destination", "/nonexistent/dev-log");
    // INFO: the workers say the fallback at DEBUG only.
    files.set("logging", "level", "INFO");
    files.set("monitoring", "scheduler_interval", "1");
    files.set("dashboard", "scheduler_interval", "1");
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");
    let count = |needle: &str| agent.log().matches(needle).count();
    assert_eq!(
        count("cannot log to syslog socket /nonexistent/dev-log"),
        1,
        "one fallback warning for five processes:\n{}",
        agent.log()
    );
    let collected = || {
        agent
            .get_with_session("/monitoring/history?limit=1000", &s)
            .json()
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    pg.stop();
    assert!(
        eventually(Duration::from_secs(30), || count(
            "cannot connect to PostgreSQL"
        ) > 0),
        "the failure was not logged:\n{}",
        agent.log()
    );
    let before = collected();
    assert!(
        eventually(Duration::from_secs(60), || collected() >= before + 3),
        "no collections without PostgreSQL"
    );
    // Three collections and more later: each condition said once.
    assert_eq!(count("cannot connect to PostgreSQL"), 1, "{}", agent.log());
    assert_eq!(count("dashboard collection failed"), 1, "{}", agent.log());
    assert!(count("PostgreSQL is not reachable") <= 1, "{}", agent.log());
    assert_eq!(
        count("probe sessions failed"),
        0,
        "PostgreSQL down is the pool's to say, not each probe's:\n{}",
        agent.log()
    );
    pg.start_again();
    assert!(
        eventually(Duration::from_secs(60), || {
            count("connected to PostgreSQL again after") == 1
                && count("dashboard collection works again") == 1
        }),
        "the end of the failure was not logged:\n{}",
        agent.log()
    );
}
