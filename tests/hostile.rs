//! Regression tests of the third adversarial review (issue #27): hostile and
//! stalled clients against the real binary over HTTPS and a real
//! PostgreSQL. Each test plays what was seen and checks the bound now holds.

mod common;

use std::io::Write;

use common::signed::*;
use common::*;

const PLUGINS: &str = r#"["activity", "dashboard", "monitoring", "pgconf", "maintenance"]"#;

/// Private memory of a process (KiB): what it alone costs the host.
fn private_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Private_Clean:") || l.starts_with("Private_Dirty:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// A TLS connection to the agent from `source`.
fn tls_from(
    source: std::net::Ipv4Addr,
    agent: &Agent,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let tcp = connect_from(source, agent.port);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(tls_config(&agent.files.cert_pem()), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Finding 2: 300 uploads of 1 MiB that stall 10 bytes short, half in the
/// 2.x contract without a session, half signed with a forged signature,
/// leave the http worker's peak memory under +32 MiB, and a signed
/// `GET /activity` from another address answers meanwhile.
#[test]
fn stalled_unauthenticated_uploads_hold_little_memory() {
    const DECLARED: usize = 1_048_576;
    const SENT: usize = 1_048_566;
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_plugins(&pg, &public, PLUGINS);
    assert_eq!(Signed::get("/activity").send(&agent, &key).status, 200);
    let http = agent.worker_pid("http").unwrap();
    std::fs::write(format!("/proc/{http}/clear_refs"), "5").unwrap();
    let base = status_kib(http, "VmRSS:");
    let private_before = private_kib(http);
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let body = vec![b' '; SENT];
    // A forged signature of the right size: every header check passes,
    // only the body would tell (the signature covers it).
    let forged = {
        let s = Signed::post("/activity/kill", b"{}");
        let mut h = s.headers(&key);
        for (k, v) in h.iter_mut() {
            if k == "X-TemBoard-Signature" {
                let flip = if v.ends_with("A==") { "B==" } else { "A==" };
                *v = format!("{}{flip}", &v[..v.len() - 3]);
            }
        }
        h
    };
    let heads: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            let mut head = format!(
                "POST /activity/kill HTTP/1.1\r\nHost: localhost\r\nContent-Length: {DECLARED}\r\n"
            );
            if i % 2 == 1 {
                for (k, v) in &forged {
                    if k != "X-TemBoard-Request-Id" {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                }
                head.push_str(&format!("X-TemBoard-Request-Id: {}\r\n", uuid()));
            }
            head.push_str("\r\n");
            head.into_bytes()
        })
        .collect();
    let held: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = heads
            .chunks(75)
            .map(|part| {
                let agent = &agent;
                let body = &body;
                scope.spawn(move || {
                    part.iter()
                        .map(|head| {
                            let mut conn = tls_from(attacker, agent);
                            // The agent may answer and close first: fine.
                            let _ = conn
                                .write_all(head)
                                .and_then(|()| conn.write_all(body))
                                .and_then(|()| conn.flush());
                            conn
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    // Meanwhile, another address is served.
    let r = Signed::get("/activity").send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let peak = status_kib(http, "VmHWM:");
    let grown = peak.saturating_sub(base);
    let private_during = private_kib(http);
    println!("http worker: RSS {base} KiB before, peak {peak} KiB during 300 stalled uploads (+{grown} KiB)");
    println!(
        "http worker: private {private_before} KiB before, {private_during} KiB with the 300 connections held (+{} KiB)",
        private_during.saturating_sub(private_before)
    );
    assert!(
        grown < 32 * 1024,
        "300 stalled unauthenticated uploads grew the http worker by {grown} KiB"
    );
    assert!(
        private_during.saturating_sub(private_before) < 32 * 1024,
        "300 stalled unauthenticated uploads took {private_during} KiB of private memory"
    );
    drop(held);
}

/// Finding 2: what can be checked before a body is checked first; a peer
/// that fails gets its answer without the agent reading the body, and a
/// head past 32 KiB is refused with 431.
#[test]
fn requests_are_refused_before_their_body_and_heads_are_bounded() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_plugins(&pg, &public, PLUGINS);
    let mut conn = KeepAlive::connect(agent.port, &agent.files.cert_pem()).unwrap();
    // 2.x: no session, a body announced but never sent: answered at once.
    let head = "POST /activity/kill HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n";
    conn.tls.write_all(head.as_bytes()).unwrap();
    conn.tls.flush().unwrap();
    let r = read_response(&mut conn.tls).unwrap();
    assert_eq!(r.status, 406, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("connection"), Some("close"));
    // 9.x: a date out of the window, same.
    let mut conn = KeepAlive::connect(agent.port, &agent.files.cert_pem()).unwrap();
    let mut s = Signed::post("/activity/kill", b"{}");
    s.date = "20200101T000000Z".into();
    let mut head =
        "POST /activity/kill HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n".to_string();
    for (k, v) in s.headers(&key) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.tls.write_all(head.as_bytes()).unwrap();
    conn.tls.flush().unwrap();
    let r = read_response(&mut conn.tls).unwrap();
    assert_eq!(
        error(&r),
        (400, "Request older than 2 hours.".into()),
        "answered before the body"
    );
    // 95 header lines of 4 KB: 431, not 380 KB held.
    let mut conn = KeepAlive::connect(agent.port, &agent.files.cert_pem()).unwrap();
    let mut head = "GET /status HTTP/1.1\r\nHost: localhost\r\n".to_string();
    for i in 0..95 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "p".repeat(4000)));
    }
    head.push_str("\r\n");
    let _ = conn.tls.write_all(head.as_bytes());
    let _ = conn.tls.flush();
    let r = read_response(&mut conn.tls).unwrap();
    assert_eq!(r.status, 431);
    // A valid signed POST still works.
    let r = Signed::post("/activity/kill", br#"{"pids": []}"#).send(&agent, &key);
    assert!(
        r.status < 500,
        "{} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
}

/// Finding 7: a FIFO (or a link) put where the UI's public key was does not
/// hang the supervisor: the reload is refused at once, naming the file, and
/// the agent goes on serving signed requests with the key it had; a second
/// signal is still handled.
#[test]
fn a_fifo_at_the_signing_key_path_is_refused_without_hanging() {
    use nix::sys::signal::Signal;
    use std::time::Duration;
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_plugins(&pg, &public, PLUGINS);
    let path = agent.files.etc().join("signing-public.pem");
    std::fs::remove_file(&path).unwrap();
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(20), || agent
            .log()
            .contains("is not a regular file")),
        "the reload was not refused:\n{}",
        agent.log()
    );
    assert_eq!(Signed::get("/activity").send(&agent, &key).status, 200);
    // A link is refused too; the real file again is taken.
    std::fs::remove_file(&path).unwrap();
    let real = agent.files.etc().join("real.pem");
    std::fs::write(&real, &public).unwrap();
    std::os::unix::fs::symlink(&real, &path).unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(20), || agent
            .log()
            .contains("is a symbolic link")),
        "{}",
        agent.log()
    );
    assert_eq!(Signed::get("/activity").send(&agent, &key).status, 200);
}

/// Finding 9 and the encoded slash: names no PostgreSQL object can have
/// are a clear 406, never a 500; `%2F` stays inside its signed segment.
#[test]
fn impossible_names_and_encoded_slashes_in_maintenance_paths() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_plugins(&pg, &public, PLUGINS);
    let long = format!("/maintenance/{}", "x".repeat(5000));
    for target in [
        "/maintenance/%00",
        "/maintenance/a%00b",
        "/maintenance/postgres/schema/a%00b",
        "/maintenance/postgres/schema/public/table/t%00/vacuum/scheduled",
        long.as_str(),
    ] {
        let r = Signed::get(target).send(&agent, &key);
        let (status, text) = error(&r);
        assert_eq!(status, 406, "{}: {text}", &target[..target.len().min(60)]);
        assert!(
            text.contains("PostgreSQL names have 1 to 63 bytes"),
            "{text}"
        );
    }
    let r = Signed::post("/maintenance/a%00b/vacuum", b"{}").send(&agent, &key);
    assert_eq!(r.status, 406, "{}", String::from_utf8_lossy(&r.body));
    // One signed segment is one name: the database "postgres/schema/public"
    // does not exist, it does not reach the schema page.
    let r = Signed::get("/maintenance/postgres%2Fschema%2Fpublic").send(&agent, &key);
    assert_eq!(
        error(&r),
        (404, "Database postgres/schema/public not found".into())
    );
    assert_eq!(
        Signed::get("/maintenance/postgres/schema/public")
            .send(&agent, &key)
            .status,
        200
    );
}

/// Sends `s` signed with `key`, with its own `Host` header on the wire.
fn send_as_signed(agent: &Agent, key: &rsa::RsaPrivateKey, s: &Signed<'_>) -> HttpResponse {
    let mut conn = KeepAlive::connect(agent.port, &agent.files.cert_pem()).unwrap();
    let mut req = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", s.method, s.target, s.host);
    for (k, v) in s.headers(key) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.tls.write_all(req.as_bytes()).unwrap();
    conn.tls.flush().unwrap();
    read_response(&mut conn.tls).unwrap()
}

/// Finding 3: a request signed for another agent is refused with 403
/// naming the accepted hosts (9.0.1 served it), the log names the host to
/// add, and `accepted_hosts` admits a NAT or alias name after a reload.
#[test]
fn requests_signed_for_another_agent_are_refused() {
    use nix::sys::signal::Signal;
    use std::time::Duration;
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_plugins(&pg, &public, PLUGINS);
    let port = agent.port;
    let elsewhere = format!("other-agent.example:{port}");
    let other_port = format!("localhost:{}", port.wrapping_add(1).max(1));
    for host in [elsewhere.as_str(), other_port.as_str()] {
        let s = Signed {
            host,
            ..Signed::get("/activity")
        };
        let r = send_as_signed(&agent, &key, &s);
        let (status, text) = error(&r);
        assert_eq!(status, 403, "{host}: {text}");
        assert!(
            text.contains("accepted hosts are") && text.contains("accepted_hosts"),
            "{text}"
        );
        assert!(text.contains(&format!("port {port}")), "{text}");
    }
    assert!(
        agent
            .log()
            .contains("signed request for host 'other-agent.example"),
        "{}",
        agent.log()
    );
    // This agent's own names pass: an interface address, localhost with
    // the port (what the real UI signs when registered so).
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let s = Signed {
            host: &host,
            ..Signed::get("/activity")
        };
        assert_eq!(send_as_signed(&agent, &key, &s).status, 200, "{host}");
    }
    // A name the UI reaches the agent under through NAT: accepted once
    // listed.
    let conf = std::fs::read_to_string(agent.files.conf()).unwrap();
    std::fs::write(
        agent.files.conf(),
        conf.replace(
            "[temboard]\n",
            "[temboard]\naccepted_hosts = other-agent.example, proxy.example:443\n",
        ),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(20), || {
            let s = Signed {
                host: &elsewhere,
                ..Signed::get("/activity")
            };
            send_as_signed(&agent, &key, &s).status == 200
        }),
        "accepted_hosts not taken:\n{}",
        agent.log()
    );
    let s = Signed {
        host: "proxy.example:443",
        ..Signed::get("/activity")
    };
    assert_eq!(send_as_signed(&agent, &key, &s).status, 200);
}

/// Finding 5: scheduling floods are capped (1,000 tasks not yet ended, then
/// 429 saying so), and the audit records from before the flood (a login,
/// a setting changed) are still listed after it.
#[test]
fn a_scheduling_flood_is_capped_and_keeps_the_audit_trail() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_plugins(&pg, &public, PLUGINS);
    agent.login("alice", "alice");
    let r = Signed::post(
        "/pgconf/configuration",
        br#"{"settings": [{"name": "work_mem", "setting": "8MB"}]}"#,
    )
    .send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let start = chrono::NaiveDate::from_ymd_opt(2099, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let body = |i: i64| {
        let at = start + chrono::TimeDelta::seconds(i);
        format!(r#"{{"datetime": "{}"}}"#, at.format("%Y-%m-%dT%H:%M:%SZ"))
    };
    for i in 0..1_000 {
        let b = body(i);
        let r = Signed::post("/maintenance/postgres/vacuum", b.as_bytes()).send(&agent, &key);
        assert_eq!(
            r.status,
            200,
            "task {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let b = body(1_000);
    let r = Signed::post("/maintenance/postgres/vacuum", b.as_bytes()).send(&agent, &key);
    let (status, text) = error(&r);
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("1000 maintenance tasks are already scheduled"),
        "{text}"
    );
    let all = notification_pairs(&agent, &key);
    assert!(
        all.iter().any(|(u, m)| u == "alice" && m == "Login"),
        "login gone"
    );
    assert!(
        all.iter().any(|(_, m)| m.contains("work_mem")),
        "setting change gone: {:?}",
        &all[..3]
    );
}

/// "Settings that run programs": with `[pgconf] protected_settings`, a
/// change of a listed setting is refused (403, saying why) through both
/// contracts, before any setting of the request is applied.
#[test]
fn protected_settings_are_refused_through_both_contracts() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut files = signed_files(&pg, &public, PLUGINS);
    files.set(
        "pgconf",
        "protected_settings",
        "archive_command, Shared_Preload_Libraries",
    );
    files.write();
    let agent = Agent::start(files);
    let auto = || std::fs::read_to_string(pg.data().join("postgresql.auto.conf")).unwrap();
    let session = agent.login("alice", "alice");
    let r = agent.post_json(
        "/pgconf/configuration",
        &serde_json::json!({"settings": [
            {"name": "work_mem", "setting": "9MB"},
            {"name": "archive_command", "setting": "touch /tmp/pwned"}
        ]}),
        Some(&session),
    );
    let (status, text) = error(&r);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("'archive_command' is protected"), "{text}");
    for (method, target, body) in [
        (
            "POST",
            "/pgconf/settings",
            Some(&br#"{"archive_command": "touch /tmp/pwned"}"#[..]),
        ),
        (
            "POST",
            "/pgconf/settings",
            Some(&br#"{"shared_preload_libraries": "evil"}"#[..]),
        ),
        ("DELETE", "/pgconf/settings/archive_command", None),
        (
            "POST",
            "/pgconf/settings/archive_command/reset",
            Some(&b"{}"[..]),
        ),
        (
            "POST",
            "/pgconf/configuration",
            Some(&br#"{"settings": [{"name": "archive_command", "setting": "x"}]}"#[..]),
        ),
    ] {
        let s = Signed {
            method,
            body,
            ..Signed::get(target)
        };
        let (status, text) = error(&s.send(&agent, &key));
        assert_eq!(status, 403, "{method} {target}: {text}");
    }
    let text = auto();
    assert!(
        !text.contains("archive_command") && !text.contains("9MB"),
        "{text}"
    );
    // Others still change.
    let r = Signed::post("/pgconf/settings", br#"{"work_mem": "8MB"}"#).send(&agent, &key);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(auto().contains("work_mem"));
}
