//! Foundation behaviour of the real binary: process tree, restarts, reload,
//! stop, and startup refusal of bad configurations.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

const ROLES: [&str; 5] = ["http", "scheduler", "probe", "pgctl", "task"];

#[test]
fn status_titles_and_clean_sigterm() {
    ci_runs_as_root();
    let pg = PgCluster::start();
    let mut agent = Agent::start(AgentFiles::new(Some(&pg)));
    let r = agent.get("/status").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("server").unwrap().starts_with("temboard-agent/"));
    let j = r.json();
    assert_eq!(j["pid"], agent.pid);
    assert_eq!(j["configfile"], agent.files.conf().display().to_string());
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    let expected_user = if is_root() {
        "postgres".to_string()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name
    };
    assert_eq!(j["user"], expected_user);
    let start = j["start_datetime"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S").is_ok(),
        "{start}"
    );
    assert_eq!(j["reload_datetime"], j["start_datetime"]);

    // Supervisor plus five workers, each with its title.
    let workers = agent.workers();
    let mut titles: Vec<&str> = workers.iter().map(|(_, t)| t.as_str()).collect();
    titles.sort();
    assert_eq!(
        titles,
        vec![
            "temboard-agent: http",
            "temboard-agent: pgctl",
            "temboard-agent: probe",
            "temboard-agent: scheduler",
            "temboard-agent: task"
        ]
    );
    for (pid, title) in &workers {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(
            comm.trim(),
            "temboard-agent",
            "{title}: pgrep/killall need the agent's name"
        );
    }
    if is_root() {
        for (pid, title) in &workers {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
            assert!(
                !uid_line.split_whitespace().skip(1).any(|u| u == "0"),
                "{title} runs as root: {uid_line}"
            );
        }
    }

    // Unknown route: JSON 404.
    let r = agent.get("/no/such/route").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "URL not found.");

    // SIGTERM: everything gone within 5 s, exit status 0.
    let pids: Vec<i32> = workers.iter().map(|(p, _)| *p).collect();
    agent.signal(Signal::SIGTERM);
    let st = agent
        .wait_exit(Duration::from_secs(5))
        .expect("supervisor still running 5 s after SIGTERM");
    assert_eq!(st.code(), Some(0), "log:\n{}", agent.log());
    // Every worker finished on request (clients first, then servers): none
    // had to be killed.
    let log = agent.log();
    assert!(!log.contains("did not stop in time"), "log:\n{log}");
    assert_eq!(
        log.matches("exited with status 0").count(),
        5,
        "log:\n{log}"
    );
    for p in pids {
        assert!(!alive(p), "worker {p} survived SIGTERM");
    }
    assert!(!agent.files.home().join("run/http.sock").exists());
}

#[test]
fn killed_workers_are_restarted_and_http_refuses_nothing() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    for role in ROLES {
        let old = agent.worker_pid(role).expect("worker present");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), Signal::SIGKILL).unwrap();
        if role == "http" {
            // Connections made while no http worker runs wait in the
            // supervisor's backlog: never refused, answered within 2 s.
            let t0 = Instant::now();
            let r = agent
                .get("/status")
                .expect("request during http restart failed");
            assert_eq!(r.status, 200);
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "took {:?}",
                t0.elapsed()
            );
        }
        assert!(
            eventually(Duration::from_secs(5), || agent
                .worker_pid(role)
                .is_some_and(|p| p != old)),
            "{role} worker not restarted; log:\n{}",
            agent.log()
        );
        assert_eq!(agent.get("/status").unwrap().status, 200);
        assert!(!alive(old));
    }
    let log = agent.log();
    for role in ROLES {
        assert!(
            log.contains(&format!("{role} worker (pid"))
                && log.contains("killed by signal SIGKILL"),
            "log:\n{log}"
        );
    }
    // The probe worker came back: /discover still reaches PostgreSQL.
    assert_eq!(agent.get("/discover").unwrap().status, 200);
}

#[test]
fn many_connections_during_http_restart_are_not_refused() {
    let agent = Agent::start(AgentFiles::new(None));
    let old = agent.worker_pid("http").unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let port = agent.port;
            let cert = agent.files.cert_pem();
            std::thread::spawn(move || {
                https_request(port, &cert, "GET", "/status", &[], None).map(|r| r.status)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().expect("refused or broken"), 200);
    }
}

#[test]
fn sighup_applies_changes_and_keeps_running_on_broken_config() {
    let mut files = AgentFiles::new(None);
    files.set("logging", "level", "INFO");
    files.write();
    let mut agent = Agent::start(files);
    let before = agent.get("/status").unwrap().json();
    let pids = agent.workers();
    assert!(
        !agent.log().contains("DEBUG"),
        "no DEBUG line expected at INFO"
    );

    std::thread::sleep(Duration::from_millis(1100)); // so the reload second differs
    agent.files.set("logging", "level", "DEBUG");
    agent.files.write();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || agent.log().contains("DEBUG")),
        "level DEBUG not applied; log:\n{}",
        agent.log()
    );
    let after = agent.get("/status").unwrap().json();
    assert_eq!(after["start_datetime"], before["start_datetime"]);
    assert_ne!(
        after["reload_datetime"], before["reload_datetime"],
        "reload time not updated"
    );
    // The http worker got the new level: a failed TLS handshake, logged at
    // DEBUG, now shows (at INFO no "[http] DEBUG" line is ever written).
    assert!(eventually(Duration::from_secs(10), || {
        if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", agent.port)) {
            use std::io::Write;
            let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x01, 0xff]);
        }
        agent
            .log()
            .contains("[http] DEBUG: TLS handshake with 127.0.0.1")
    }));

    // Broken file: refused, old configuration kept, still serving, same workers.
    std::fs::write(agent.files.conf(), "[temboard]\nport = notaport\n").unwrap();
    agent.signal(Signal::SIGHUP);
    let conf = agent.files.conf().display().to_string();
    assert!(
        eventually(Duration::from_secs(5), || {
            let log = agent.log();
            log.contains("reload refused") && log.contains(&conf) && log.contains("[temboard] port")
        }),
        "log:\n{}",
        agent.log()
    );
    assert_eq!(agent.get("/status").unwrap().status, 200);
    assert_eq!(
        agent.workers(),
        pids,
        "workers restarted by a refused reload"
    );
    agent.signal(Signal::SIGTERM);
    assert_eq!(
        agent
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn killing_the_supervisor_takes_every_worker_down() {
    let files = AgentFiles::new(None);
    let mut agent = Agent::start(files);
    let pids: Vec<i32> = agent.workers().iter().map(|(p, _)| *p).collect();
    assert_eq!(pids.len(), 5);
    agent.signal(Signal::SIGKILL);
    agent
        .wait_exit(Duration::from_secs(2))
        .expect("supervisor not dead");
    assert!(
        eventually(Duration::from_secs(2), || pids.iter().all(|p| !alive(*p))),
        "workers outlived the supervisor"
    );
    // A new agent on the same port and home starts at once.
    let files = std::mem::replace(&mut agent.files, AgentFiles::new(None));
    drop(agent);
    let again = Agent::start(files);
    assert_eq!(again.get("/status").unwrap().status, 200);
}

#[test]
fn daemon_mode_writes_pidfile_once_serving() {
    let files = AgentFiles::new(None);
    let pidfile = files.dir.path().join("agent.pid");
    // A stale pid file (its process is gone) does not block the start.
    std::fs::write(&pidfile, "999999\n").unwrap();
    assert!(!alive(999_999));
    let out = std::process::Command::new(AGENT)
        .arg("-c")
        .arg(files.conf())
        .arg("-d")
        .arg("-p")
        .arg(&pidfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The launcher returned: the API answers and the pid file is there.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let cert = files.cert_pem();
    assert_eq!(
        https_request(files.port, &cert, "GET", "/status", &[], None)
            .unwrap()
            .json()["pid"],
        pid
    );
    // A second daemon on the same pid file is refused.
    let second = std::process::Command::new(AGENT)
        .arg("-c")
        .arg(files.conf())
        .arg("-d")
        .arg("-p")
        .arg(&pidfile)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("is running"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    assert!(eventually(Duration::from_secs(5), || !alive(pid)));
    assert!(
        eventually(Duration::from_secs(1), || !pidfile.exists()),
        "pid file left behind"
    );
}

#[test]
fn logs_to_a_file_and_to_syslog_with_roles() {
    // File: every process appends, the workers too after their user switch.
    let mut files = AgentFiles::new(None);
    let logfile = files.dir.path().join("agent-file.log");
    files.set("logging", "method", "file");
    files.set("logging", "destination", &logfile.display().to_string());
    files.write();
    let agent = Agent::start(files);
    assert_eq!(agent.get("/nope").unwrap().status, 404);
    assert!(
        eventually(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&logfile).unwrap_or_default();
            text.contains("[supervisor] INFO:")
                && text.contains(
                    "[http] INFO: client: 127.0.0.1 request: \"GET /nope HTTP/1.1\" 404 -",
                )
        }),
        "log file:\n{}",
        std::fs::read_to_string(&logfile).unwrap_or_default()
    );
    drop(agent);

    // Syslog: datagrams with the facility and severity in the priority.
    let mut files = AgentFiles::new(None);
    let sock_path = files.dir.path().join("log.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(
        &sock_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    files.set("logging", "method", "syslog");
    files.set("logging", "facility", "local3");
    files.set("logging", "level", "INFO");
    files.set("logging", "destination", &sock_path.display().to_string());
    files.write();
    // Read as a syslog daemon does, from before the agent starts: the
    // socket's queue holds only net.unix.max_dgram_qlen datagrams (10 on
    // some machines), fewer than the start-up lines of six processes.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (received, done) = (received.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let line = String::from_utf8_lossy(&buf[..n]).to_string();
                    received.lock().unwrap().push(line);
                }
            }
        })
    };
    let agent = Agent::start(files);
    assert_eq!(agent.get("/nope").unwrap().status, 404);
    eventually(Duration::from_secs(5), || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("[http] INFO: client: 127.0.0.1 request: \"GET /nope"))
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.join().unwrap();
    let got = received.lock().unwrap().clone();
    // local3 = 19; INFO = 6 -> <158>
    assert!(
        got.iter()
            .any(|l| l.starts_with("<158>temboard-agent[") && l.contains("[supervisor] INFO:")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|l| l.starts_with("<158>") && l.contains("[http] INFO: client: 127.0.0.1")),
        "{got:#?}"
    );
    // What went to syslog is checked for secrets too (the drop check reads
    // stderr and log files only).
    assert!(
        !got.iter().any(|l| l.contains(SEED_PASSWORD)),
        "the PostgreSQL password went to syslog"
    );
}

#[test]
fn a_full_syslog_socket_never_stops_the_agent() {
    // Nobody reads the socket: its queue (net.unix.max_dgram_qlen, often
    // 10) fills at once with DEBUG lines.
    let mut files = AgentFiles::new(None);
    let sock_path = files.dir.path().join("log.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(
        &sock_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    files.set("logging", "method", "syslog");
    files.set("logging", "level", "DEBUG");
    files.set("logging", "destination", &sock_path.display().to_string());
    files.write();
    let agent = Agent::start(files);
    for _ in 0..50 {
        assert_eq!(agent.get("/status").unwrap().status, 200);
    }
    // Once the daemon reads again, the agent says how much it dropped.
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let found = eventually(Duration::from_secs(5), || {
        let _ = agent.get("/status");
        std::iter::from_fn(|| sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())).any(|d| {
            String::from_utf8_lossy(&d).contains("log messages dropped: the syslog socket was full")
        })
    });
    assert!(found, "no report of dropped messages");
}

#[test]
fn systemd_notify_ready_once_the_api_answers() {
    let files = AgentFiles::new(None);
    let sock_path = files.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sock_env = sock_path.display().to_string();
    let mut agent = Agent::start_with(files, &[], &[("NOTIFY_SOCKET", &sock_env)]);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("no READY=1 from the agent");
    assert_eq!(&buf[..n], b"READY=1");
    // The workers never see the variable (only the supervisor talks to systemd).
    let http = agent.worker_pid("http").unwrap();
    let environ = std::fs::read(format!("/proc/{http}/environ")).unwrap();
    assert!(!String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"));
    agent.signal(Signal::SIGHUP);
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"RELOADING=1");
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    agent.signal(Signal::SIGTERM);
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(
        agent
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
}
