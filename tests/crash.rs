//! Crash suite (issue #9, part 1): under a steady authenticated load, every
//! worker role is killed with SIGKILL 20 times. Every request gets a whole
//! answer or a clean connection error, never a hang or a torn response; the
//! API is back after each kill; no acknowledged login is lost; no zombie is
//! left; a crash loop backs off and `/agent/self` shows it. (The supervisor's
//! own SIGKILL is in foundation.rs: `killing_the_supervisor_takes_every_worker_down`.)

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const ROLES: [&str; 5] = ["http", "scheduler", "probe", "pgctl", "task"];
const KILLS_PER_ROLE: usize = 20;

/// What the load threads saw.
#[derive(Default, Debug)]
struct Seen {
    /// 2xx answers to POST /login: each one acknowledged a Login notification.
    logins_ok: u64,
    /// Login requests whose answer was lost with the connection: they may or
    /// may not have happened.
    logins_unanswered: u64,
    /// Answers by status.
    statuses: BTreeMap<u16, u64>,
    /// Connection errors (reset, EOF before an answer).
    connection_errors: u64,
    /// Answers shorter than their Content-Length, or not JSON.
    torn: Vec<String>,
}

fn count_logins(agent: &Agent) -> u64 {
    let db = rusqlite::Connection::open(agent.files.home().join("agent.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row(
        "SELECT count(*) FROM notifications WHERE message = 'Login'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

/// One load thread: a keep-alive connection, reopened when it breaks.
fn load(port: u16, cert: &[u8], session: &str, login: bool, stop: &AtomicBool, seen: &Mutex<Seen>) {
    let paths = ["/profile", "/activity", "/dashboard", "/notifications"];
    let mut conn: Option<KeepAlive> = None;
    let mut i = 0usize;
    let body = br#"{"username": "alice", "password": "alice"}"#;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match KeepAlive::connect(port, cert) {
                Ok(c) => {
                    c.tls
                        .sock
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    conn.insert(c)
                }
                Err(_) => {
                    seen.lock().unwrap().connection_errors += 1;
                    continue;
                }
            },
        };
        let result = if login {
            c.request(
                "POST",
                "/login",
                &[("Content-Type", "application/json")],
                Some(body),
            )
        } else {
            c.request(
                "GET",
                paths[i % paths.len()],
                &[("X-Session", session)],
                None,
            )
        };
        let mut s = seen.lock().unwrap();
        match result {
            Ok(r) => {
                *s.statuses.entry(r.status).or_default() += 1;
                let announced: usize = r
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(usize::MAX);
                let json = serde_json::from_slice::<serde_json::Value>(&r.body).is_ok();
                if announced != r.body.len() || !json {
                    s.torn.push(format!(
                        "{} with {} of {announced} bytes: {}",
                        r.status,
                        r.body.len(),
                        String::from_utf8_lossy(&r.body)
                    ));
                }
                if login && (200..300).contains(&r.status) {
                    s.logins_ok += 1;
                }
            }
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "a request hung for 20 s"
                );
                s.connection_errors += 1;
                if login {
                    s.logins_unanswered += 1;
                }
                conn = None;
            }
        }
        drop(s);
        if login {
            // Bounded login rate: the notifications table keeps 10,000 rows.
            std::thread::sleep(Duration::from_millis(15));
        }
    }
}

#[test]
fn every_role_killed_twenty_times_under_load() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let session = agent.login("alice", "alice");
    let logins_before = count_logins(&agent);
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let mut recovery: BTreeMap<&str, Duration> = BTreeMap::new();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (cert, session, stop, seen) = (agent.files.cert_pem(), &session, &stop, &seen);
            let port = agent.port;
            scope.spawn(move || load(port, &cert, session, t == 0, stop, seen));
        }
        // Per role: when its current incarnation was first seen.
        let mut born: BTreeMap<&str, (i32, Instant)> = BTreeMap::new();
        for role in ROLES {
            born.insert(role, (agent.worker_pid(role).unwrap(), Instant::now()));
        }
        for round in 0..KILLS_PER_ROLE {
            for role in ROLES {
                let (old, since) = born[role];
                // Kill only incarnations that have served for a while: this is
                // the "killed after serving" case, which must not back off.
                if let Some(wait) = Duration::from_millis(2_200).checked_sub(since.elapsed()) {
                    std::thread::sleep(wait);
                }
                kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
                let t0 = Instant::now();
                let mut new = None;
                let back = eventually(Duration::from_secs(10), || {
                    new = new.or(agent.worker_pid(role).filter(|p| *p != old));
                    new.is_some()
                        && agent
                            .request("GET", "/health", &[], None)
                            .is_ok_and(|r| r.status == 200)
                });
                let took = t0.elapsed();
                assert!(
                    back,
                    "round {round}: API not back 10 s after killing {role}; log:\n{}",
                    agent.log()
                );
                // docs/reliability.md says about 0.2 s; 2 s is the bound,
                // generous for a loaded machine (100 ms restart delay, and
                // /health reuses a result up to 1 s old).
                assert!(
                    took <= Duration::from_secs(2),
                    "round {round}: {role} took {took:?} to come back"
                );
                let worst = recovery.entry(role).or_default();
                *worst = (*worst).max(took);
                born.insert(role, (new.unwrap(), Instant::now()));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let seen = seen.into_inner().unwrap();
    eprintln!("load: {seen:?}");
    eprintln!("slowest recovery (new worker and /health 200) per role: {recovery:?}");
    assert!(
        seen.torn.is_empty(),
        "torn or non-JSON answers: {:?}",
        seen.torn
    );
    // Only 200 and the honest 503 of a worker being restarted.
    for status in seen.statuses.keys() {
        assert!(
            *status == 200 || *status == 503,
            "unexpected status {status}: {:?}",
            seen.statuses
        );
    }
    assert!(seen.logins_ok > 100, "too little load: {seen:?}");
    // Nothing acknowledged is lost; nothing is invented.
    let logins = count_logins(&agent) - logins_before;
    assert!(
        logins >= seen.logins_ok && logins <= seen.logins_ok + seen.logins_unanswered,
        "{logins} Login notifications for {} acknowledged logins ({} unanswered)",
        seen.logins_ok,
        seen.logins_unanswered
    );
    assert!(
        eventually(Duration::from_secs(2), || zombies_of(agent.pid).is_empty()),
        "zombies left: {:?}",
        zombies_of(agent.pid)
    );
    // Each kill came after 2 s of service: never treated as a crash loop.
    let me = agent.get_with_session("/agent/self", &session).json();
    for w in me["workers"].as_array().unwrap() {
        assert_eq!(w["restarts"], KILLS_PER_ROLE as u64, "{w}");
        assert_eq!(w["restart_delay_ms"], 100, "{w}");
        assert_eq!(
            w["last_exit"].as_str(),
            Some("killed by signal SIGKILL"),
            "{w}"
        );
    }
}

#[test]
fn a_crash_loop_backs_off_and_shows_in_agent_self() {
    let agent = Agent::start(AgentFiles::new(None));
    let session = agent.login("alice", "alice");
    // Kill the scheduler as soon as each incarnation appears.
    let mut old = agent.worker_pid("scheduler").unwrap();
    let mut gaps = vec![];
    for _ in 0..6 {
        kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
        let t0 = Instant::now();
        let mut new = None;
        assert!(eventually(Duration::from_secs(20), || {
            new = agent.worker_pid("scheduler").filter(|p| *p != old);
            new.is_some()
        }));
        gaps.push(t0.elapsed());
        old = new.unwrap();
    }
    eprintln!("time to each restart: {gaps:?}");
    let me = agent.get_with_session("/agent/self", &session).json();
    let sched = me["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["role"] == "scheduler")
        .cloned()
        .unwrap();
    assert_eq!(sched["restarts"], 6, "{sched}");
    assert_eq!(sched["consecutive_failures"], 6, "{sched}");
    // 100, 200, 400, 800, 1600, then 3200 ms before the last start.
    assert_eq!(sched["restart_delay_ms"], 3200, "{sched}");
    // The delays really were applied: the last restart waited the longest.
    assert!(gaps[5] > gaps[0], "{gaps:?}");
    assert!(gaps[5] >= Duration::from_millis(3200), "{gaps:?}");
    // It stays up now, and the API never stopped answering.
    assert_eq!(agent.get("/status").unwrap().status, 200);
    assert!(zombies_of(agent.pid).is_empty());
}
