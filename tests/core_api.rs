//! Core API over HTTPS against the real binary: login, sessions, notifications,
//! discover, the error catalogue of 2.x, and the users tools.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn error_of(r: &HttpResponse) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn login_profile_notifications_logout() {
    let agent = Agent::start(AgentFiles::new(None));
    let s = agent.login("alice", "alice");
    assert_eq!(s.len(), 64);
    assert!(s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    // A live session is returned again on re-login by the same user (2.x).
    assert_eq!(agent.login("alice", "alice"), s);

    let r = agent.get_with_session("/profile", &s);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"username": "alice"}));

    let r = agent.get_with_session("/notifications", &s);
    assert_eq!(r.status, 200);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["message"], "Login");
    assert_eq!(list[0]["username"], "alice");
    assert!(chrono::NaiveDateTime::parse_from_str(
        list[0]["date"].as_str().unwrap(),
        "%Y-%m-%dT%H:%M:%S"
    )
    .is_ok());
    assert_eq!(list[0].as_object().unwrap().len(), 3);

    let r = agent.get_with_session("/logout", &s);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"logout": true}));
    let r = agent.get_with_session("/profile", &s);
    assert_eq!((r.status, error_of(&r)), (401, "Invalid session.".into()));
    let r = agent.get_with_session("/logout", &s);
    assert_eq!(r.status, 401);

    let s2 = agent.login("alice", "alice");
    assert_ne!(s2, s, "a new session after logout");
    let owned = agent.notification_messages(&s2);
    let messages: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_eq!(messages, vec!["Login", "Logout", "Login", "Login"]);
    // Passwords never reach the log.
    assert!(
        !agent.log().contains("\"alice\"") && !agent.log().to_lowercase().contains("password\":")
    );
}

#[test]
fn error_catalogue_of_the_python_agent() {
    let agent = Agent::start(AgentFiles::new(None));
    let check = |r: HttpResponse, status: u16, msg: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(error_of(&r), msg);
    };
    // Sessions.
    check(
        agent.get("/profile").unwrap(),
        406,
        "Parameter 'X-Session' not sent.",
    );
    check(
        agent.get_with_session("/profile", "abc"),
        406,
        "Parameter 'X-Session' is malformed.",
    );
    check(
        agent.get_with_session("/profile", &"A".repeat(64)),
        406,
        "Parameter 'X-Session' is malformed.",
    );
    check(
        agent.get_with_session("/profile", &"0".repeat(64)),
        401,
        "Invalid session.",
    );
    // Login parameters.
    check(
        agent.post_json("/login", &json!({"password": "alice"}), None),
        406,
        "Parameter 'username' not sent.",
    );
    check(
        agent.post_json(
            "/login",
            &json!({"username": "A!", "password": "alice"}),
            None,
        ),
        406,
        "Parameter 'username' is malformed.",
    );
    check(
        agent.post_json(
            "/login",
            &json!({"username": 42, "password": "alice"}),
            None,
        ),
        406,
        "Parameter 'username' is malformed.",
    );
    check(
        agent.post_json("/login", &json!({"username": "alice"}), None),
        406,
        "Parameter 'password' not sent.",
    );
    check(
        agent.post_json(
            "/login",
            &json!({"username": "alice", "password": "abc"}),
            None,
        ),
        406,
        "Parameter 'password' is malformed.",
    );
    check(
        agent.post_json("/login", &json!(["not", "an", "object"]), None),
        406,
        "Parameter 'username' not sent.",
    );
    let t0 = Instant::now();
    check(
        agent.post_json(
            "/login",
            &json!({"username": "alice", "password": "wrong"}),
            None,
        ),
        404,
        "Invalid username/password.",
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "failed login answered before the fixed delay"
    );
    let t0 = Instant::now();
    check(
        agent.post_json(
            "/login",
            &json!({"username": "nobody", "password": "wrong"}),
            None,
        ),
        404,
        "Invalid username/password.",
    );
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // Routes, methods, bodies.
    check(agent.get("/nosuchroute").unwrap(), 404, "URL not found.");
    check(agent.get("/status/").unwrap(), 404, "URL not found.");
    check(agent.get("/login").unwrap(), 404, "URL not found.");
    check(
        agent
            .request("POST", "/login", &[], Some(b"{not json"))
            .unwrap(),
        400,
        "Invalid json format",
    );
    check(
        agent.request("POST", "/login", &[], Some(b"")).unwrap(),
        400,
        "Invalid json format",
    );
    check(
        agent.request("POST", "/login", &[], None).unwrap(),
        400,
        "Unable to read post data",
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    check(
        agent
            .request("POST", "/login", &[], Some(deep.as_bytes()))
            .unwrap(),
        400,
        "Invalid json format",
    );
    // Oversized: refused from the announced length, before reading the body.
    let big = agent
        .request("POST", "/login", &[("Content-Length", "2097152")], None)
        .unwrap();
    assert_eq!(big.status, 413);
    assert!(error_of(&big).contains("too large"));
    for m in ["PUT", "PATCH", "TRACE"] {
        check(
            agent.request(m, "/status", &[], None).unwrap(),
            405,
            "Method not allowed.",
        );
    }
    let r = agent.request("OPTIONS", "/anything", &[], None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("POST, GET, DELETE, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("X-Requested-With, X-Session, Content-Type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("1728000"));
    // Header names are case-insensitive.
    let s = agent.login("alice", "alice");
    let r = agent
        .request("GET", "/profile", &[("x-SESSION", &s)], None)
        .unwrap();
    assert_eq!(r.status, 200);
    // An unreadable users file is a 500, not a crash.
    std::fs::set_permissions(
        agent.files.etc().join("users"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // (the http worker never runs as root, so mode 000 is unreadable to it)
    let r = agent.post_json(
        "/login",
        &json!({"username": "alice", "password": "alice"}),
        None,
    );
    check(r, 500, "Internal error.");
    assert!(eventually(Duration::from_secs(2), || agent
        .log()
        .contains("cannot read users file")));
}

#[test]
fn malformed_users_lines_are_skipped_with_a_warning() {
    let files = AgentFiles::new(None);
    let users = files.etc().join("users");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.insert_str(0, "garbage line without colon\n");
    std::fs::write(&users, text).unwrap();
    let agent = Agent::start(files);
    agent.login("alice", "alice");
    assert!(
        eventually(Duration::from_secs(2), || agent
            .log()
            .contains("line 1: malformed users file line skipped")),
        "{}",
        agent.log()
    );
}

#[test]
fn sessions_survive_worker_crash_and_agent_restart() {
    let agent = Agent::start(AgentFiles::new(None));
    let s = agent.login("alice", "alice");
    let http = agent.worker_pid("http").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(http),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let r = agent.get_with_session("/profile", &s);
    assert_eq!(r.status, 200, "session lost with the http worker");
    let files = {
        let mut agent = agent;
        agent.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(agent.wait_exit(Duration::from_secs(5)).is_some());
        std::mem::replace(&mut agent.files, AgentFiles::new(None))
    };
    let agent = Agent::start(files);
    let r = agent.get_with_session("/profile", &s);
    assert_eq!(r.status, 200, "session lost across a restart");
    assert_eq!(r.json()["username"], "alice");
}

#[test]
fn sessions_expire_after_the_ttl_with_a_notification() {
    let mut files = AgentFiles::new(None);
    files.set("temboard", "session_ttl", "2");
    files.set("logging", "level", "DEBUG");
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");
    assert_eq!(agent.get_with_session("/profile", &s).status, 200);
    // Any use refreshes the session: leave it alone longer than its TTL.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        agent.get_with_session("/profile", &s).status,
        401,
        "session valid after its TTL"
    );
    let s2 = agent.login("alice", "alice");
    assert_ne!(s2, s);
    let owned = agent.notification_messages(&s2);
    let messages: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert!(
        eventually(Duration::from_secs(3), || {
            let list = agent.get_with_session("/notifications", &s2).json();
            list.as_array()
                .unwrap()
                .iter()
                .any(|n| n["message"] == "Session expired" && n["username"] == "alice")
        }),
        "{messages:?}\n{}",
        agent.log()
    );
}

#[test]
fn discover_matches_postgresql_and_fails_cleanly_when_it_is_down() {
    let mut pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let r = agent.get("/discover").unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d = r.json();
    let mut c = pg.client();
    let row = c
        .query_one(
            "SELECT version(), current_setting('port'), current_setting('data_directory')",
            &[],
        )
        .unwrap();
    let version: String = row.get(0);
    assert_eq!(d["pg_version"], version);
    assert_eq!(d["pg_port"], row.get::<_, String>(1));
    assert!(d["pg_port"].is_string(), "pg_port is a string in 2.x");
    assert_eq!(d["pg_data"], row.get::<_, String>(2));
    assert_eq!(
        d["pg_version_summary"],
        version.split(' ').take(2).collect::<Vec<_>>().join(" ")
    );
    assert_eq!(d["hostname"], "agent.example.org");
    assert_eq!(
        d["cpu"],
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(d["memory_size"].as_u64().unwrap() > 100 * 1024 * 1024);
    assert_eq!(
        d["plugins"],
        json!([
            "monitoring",
            "dashboard",
            "pgconf",
            "administration",
            "activity"
        ])
    );
    drop(c);

    pg.stop();
    let t0 = Instant::now();
    let r = agent.get("/discover").unwrap();
    assert_eq!(r.status, 500);
    assert!(
        error_of(&r).starts_with("Failed to connect to PostgreSQL"),
        "{}",
        error_of(&r)
    );
    // Where it was tried goes to the log, not to an anonymous client.
    assert!(!error_of(&r).contains("tried"), "{}", error_of(&r));
    let socket = format!(
        "tried socket {}/.s.PGSQL.{}",
        pg.socket_dir().display(),
        pg.port
    );
    assert!(
        eventually(Duration::from_secs(10), || agent.log().contains(&socket)),
        "no log line naming {socket}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(agent.get("/status").unwrap().status, 200);

    pg.start_again();
    assert!(eventually(Duration::from_secs(10), || agent
        .get("/discover")
        .map(|r| r.status == 200)
        .unwrap_or(false)));
}

#[test]
fn discover_refuses_a_hostname_that_is_not_a_fqdn() {
    let mut files = AgentFiles::new(None);
    files.set("temboard", "hostname", "localhost");
    files.write();
    let agent = Agent::start(files);
    let r = agent.get("/discover").unwrap();
    assert_eq!(r.status, 500);
    assert!(error_of(&r).contains("not a fully qualified domain name"));
}

#[test]
fn concurrent_logins_and_keepalive_requests() {
    let agent = Agent::start(AgentFiles::new(None));
    let port = agent.port;
    let cert = agent.files.cert_pem();
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let cert = cert.clone();
            std::thread::spawn(move || {
                let body = json!({"username": "alice", "password": "alice"}).to_string();
                let r = https_request(port, &cert, "POST", "/login", &[], Some(body.as_bytes()))
                    .unwrap();
                assert_eq!(r.status, 200);
                r.json()["session"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let ids: std::collections::HashSet<String> =
        logins.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one live session per user");
    let s = ids.into_iter().next().unwrap();
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let cert = cert.clone();
            let s = s.clone();
            std::thread::spawn(move || {
                let mut conn = KeepAlive::connect(port, &cert).unwrap();
                for _ in 0..100 {
                    let r = conn
                        .request("GET", "/profile", &[("X-Session", &s)], None)
                        .unwrap();
                    assert_eq!(r.status, 200);
                    assert_eq!(r.json()["username"], "alice");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn repeated_failures_from_one_address_are_throttled() {
    let agent = Agent::start(AgentFiles::new(None));
    let port = agent.port;
    let cert = agent.files.cert_pem();
    let attempts: Vec<_> = (0..5)
        .map(|_| {
            let cert = cert.clone();
            std::thread::spawn(move || {
                let body = json!({"username": "alice", "password": "wrong!"}).to_string();
                https_request(port, &cert, "POST", "/login", &[], Some(body.as_bytes()))
                    .unwrap()
                    .status
            })
        })
        .collect();
    for a in attempts {
        assert_eq!(a.join().unwrap(), 404);
    }
    let r = agent.post_json(
        "/login",
        &json!({"username": "alice", "password": "alice"}),
        None,
    );
    assert_eq!(r.status, 429);
    assert!(error_of(&r).starts_with("Too many failed logins"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        agent.log().matches("locked out").count(),
        1,
        "lockout logged once:\n{}",
        agent.log()
    );
}

#[test]
fn password_tool_and_adduser() {
    // Argon2id by default (issue #15), the 2.x hash on request.
    let out = Command::new(env!("CARGO_BIN_EXE_temboard-agent-password"))
        .arg("alice:alice")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(line.starts_with("alice:$argon2id$v=19$"), "{line}");
    let out = Command::new(env!("CARGO_BIN_EXE_temboard-agent-password"))
        .args(["--legacy-hash", "alice:alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alice:Xm4iJH8aQmXRvrsLy/fNbQU23K6/FlEVRhhPZKO2aHvYVGzCft+u7RXQ9Z48IyVtnS+n47UM3QUM4is0BVTPOA==\n"
    );
    // The main binary's hash-password does the same.
    let out = Command::new(AGENT)
        .args(["hash-password", "alice:alice"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("alice:$argon2id$"));
    let out = Command::new(AGENT)
        .args(["hash-password", "--legacy-hash", "alice:alice"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("alice:Xm4iJH8aQmXRvrsLy"));
    let bad = Command::new(env!("CARGO_BIN_EXE_temboard-agent-password"))
        .arg("no-colon")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));

    let agent = Agent::start(AgentFiles::new(None));
    let users = agent.files.etc().join("users");
    let mode_before = std::fs::metadata(&users).unwrap().permissions().mode();
    let mut child = Command::new(env!("CARGO_BIN_EXE_temboard-agent-adduser"))
        .arg("-c")
        .arg(agent.files.conf())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // alice exists, "Bad!" is invalid, then bob; passwords: mismatch, too short, ok.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"alice\nBad!\nbob\nsecret1\nsecret2\nabc\nabc\nsecret1\nsecret1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for msg in [
        "User already exists.",
        "Invalid username.",
        "Sorry, passwords do not match.",
        "Invalid password.",
        "Done.",
    ] {
        assert!(stdout.contains(msg), "{msg} missing in: {stdout}");
    }
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.starts_with("alice:"), "existing lines kept: {text}");
    assert_eq!(text.lines().count(), 2);
    assert!(
        text.lines().nth(1).unwrap().starts_with("bob:$argon2id$"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&users).unwrap().permissions().mode(),
        mode_before
    );
    // No reload needed; the Argon2id line logs in beside the 2.x one.
    agent.login("bob", "secret1");
    agent.login("alice", "alice");

    // Input ending early: an error, and the file is untouched.
    let out = Command::new(env!("CARGO_BIN_EXE_temboard-agent-adduser"))
        .arg("-c")
        .arg(agent.files.conf())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&users).unwrap(), text);
}

/// Raw TLS exchange: the bytes the server sends until it closes, and whether
/// it closed with a TLS close_notify (clean) or by dropping the TCP connection.
fn raw_exchange(agent: &Agent, request: &[u8]) -> (Vec<u8>, bool) {
    use std::io::Read;
    let mut tls = KeepAlive::connect(agent.port, &agent.files.cert_pem())
        .unwrap()
        .tls;
    tls.write_all(request).unwrap();
    let mut out = Vec::new();
    let clean = loop {
        let mut buf = [0u8; 4096];
        match tls.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (out, clean)
}

#[test]
fn http10_clients_and_clean_tls_shutdown() {
    let agent = Agent::start(AgentFiles::new(None));
    let (bytes, clean) = raw_exchange(&agent, b"GET /status HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.to_lowercase().contains("content-length: "), "{text}");
    assert!(text.contains("\"version\""), "{text}");
    assert!(clean, "no TLS close_notify after an HTTP/1.0 response");
    let (bytes, clean) = raw_exchange(
        &agent,
        b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(clean, "no TLS close_notify after Connection: close");
}
