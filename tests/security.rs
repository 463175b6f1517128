//! Regression tests of the adversarial review (issue #15): each test plays
//! the attack or fault that was seen and checks it no longer works, against
//! the real binary (and PostgreSQL where the finding needs it).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

/// Attacks by the worker user on a root supervisor only mean something as
/// root; CI runs as root, so there skipping would hide a regression.
fn needs_root() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run this suite as root"
    );
    eprintln!("skipped: needs root");
    false
}

/// Runs a command as the `postgres` OS user (the attacker next door).
fn as_postgres(args: &[&str]) {
    let st = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .status()
        .expect("runuser");
    assert!(st.success(), "{args:?} as postgres failed");
}

/// A root-owned directory (0755) holding a root-owned file (0644): what the
/// worker user must never get to touch through the supervisor.
fn root_victim(base: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = base.join("rootdir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("victim");
    std::fs::write(&file, "original\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, file)
}

fn owner_mode(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Starts the agent and waits for it to exit by itself (a refused start).
fn start_expecting_exit(files: &AgentFiles) -> (std::process::ExitStatus, String) {
    let out = Command::new(AGENT)
        .arg("-c")
        .arg(files.conf())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
        .wait_with_output()
        .expect("wait");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_run_link_planted_by_the_worker_user_is_refused_not_followed() {
    if !needs_root() {
        return;
    }
    let files = AgentFiles::new(None);
    let (dir, file) = root_victim(files.dir.path());
    let before = (owner_mode(&dir), owner_mode(&file));
    let run = files.home().join("run");
    as_postgres(&["ln", "-s", dir.to_str().unwrap(), run.to_str().unwrap()]);
    let (status, stderr) = start_expecting_exit(&files);
    assert!(!status.success(), "the agent started:\n{stderr}");
    assert!(
        stderr.contains("is a symbolic link"),
        "no clear refusal:\n{stderr}"
    );
    assert_eq!((owner_mode(&dir), owner_mode(&file)), before);
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 1,
        "something was created in the root directory"
    );

    // A run directory owned by someone else than the agent user is refused too.
    std::fs::remove_file(&run).unwrap();
    std::fs::create_dir(&run).unwrap();
    let (status, stderr) = start_expecting_exit(&files);
    assert!(!status.success(), "the agent started:\n{stderr}");
    assert!(stderr.contains("is owned by uid 0"), "{stderr}");

    // Once the operator removes it, the agent creates its own.
    std::fs::remove_dir(&run).unwrap();
    let agent = Agent::start(files);
    let m = std::fs::symlink_metadata(&run).unwrap();
    assert!(m.is_dir());
    let pg_uid = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert_eq!((m.uid(), m.mode() & 0o777), (pg_uid, 0o700));
    for sock in ["probe.sock", "pgctl.sock"] {
        let s = std::fs::symlink_metadata(run.join(sock)).unwrap();
        assert_eq!((s.uid(), s.mode() & 0o777), (pg_uid, 0o600), "{sock}");
    }
    drop(agent);
}

#[test]
fn a_log_destination_the_worker_user_could_not_write_is_never_touched() {
    if !needs_root() {
        return;
    }
    let files = AgentFiles::new(None);
    let (_dir, file) = root_victim(files.dir.path());
    let before = owner_mode(&file);
    let mut agent = Agent::start(files);

    // 1. Pointed straight at a root file (a configuration the worker user
    //    could edit): opened as the worker user, so refused.
    agent.files.set("logging", "method", "file");
    agent
        .files
        .set("logging", "destination", file.to_str().unwrap());
    agent.files.write();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log()
            .contains("cannot open log file")),
        "no refusal logged:\n{}",
        agent.log()
    );
    assert_eq!(owner_mode(&file), before);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "original\n");

    // 2. Through a link the worker user planted in a directory it owns.
    let link = agent.files.home().join("agent.log");
    as_postgres(&["ln", "-s", file.to_str().unwrap(), link.to_str().unwrap()]);
    let refusals = agent.log().matches("symbolic link").count();
    agent
        .files
        .set("logging", "destination", link.to_str().unwrap());
    agent.files.write();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log()
            .matches("symbolic link")
            .count()
            > refusals),
        "no refusal logged:\n{}",
        agent.log()
    );
    assert_eq!(owner_mode(&file), before);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "original\n");
    assert_eq!(agent.get("/status").unwrap().status, 200);

    // 3. A plain file in the home: created by and for the worker user.
    let own = agent.files.home().join("own.log");
    agent
        .files
        .set("logging", "destination", own.to_str().unwrap());
    agent.files.write();
    agent.signal(Signal::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&own).is_ok_and(|t| t.contains("[supervisor]"))
    }));
    let pg_uid = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let (uid, _, mode) = owner_mode(&own);
    assert_eq!((uid, mode), (pg_uid, 0o600));
}

#[test]
fn a_reload_with_a_key_that_does_not_match_keeps_the_api_serving() {
    let files = AgentFiles::new(None);
    let agent = Agent::start(files);
    let http = agent.worker_pid("http").expect("http worker");

    // A rotation that copies the new key before the new certificate.
    let other = open_tempdir();
    temboard_agent::certgen::write_self_signed(
        &["localhost".to_string()],
        &other.path().join("new.pem"),
        &other.path().join("new.key"),
    )
    .unwrap();
    std::fs::copy(
        other.path().join("new.key"),
        agent.files.etc().join("server.key"),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || agent
            .log()
            .contains("reload refused")),
        "the reload was not refused:\n{}",
        agent.log()
    );
    // Same worker, same certificate (the client trusts only the old one).
    let r = agent.get("/status").expect("the API answers");
    assert_eq!(r.status, 200);
    assert_eq!(agent.worker_pid("http"), Some(http));
    assert!(agent.log().contains("ssl_key_file"), "{}", agent.log());

    // The rotation completes: the new pair is taken.
    std::fs::copy(
        other.path().join("new.pem"),
        agent.files.etc().join("server.pem"),
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    let new_cert = std::fs::read(other.path().join("new.pem")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            https_request(agent.port, &new_cert, "GET", "/status", &[], None)
                .is_ok_and(|r| r.status == 200)
        }),
        "the new certificate is not served:\n{}",
        agent.log()
    );
}

#[test]
fn concurrent_wrong_logins_get_at_most_the_limit_of_password_checks() {
    let agent = Agent::start(AgentFiles::new(None));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let cert = agent.files.cert_pem();
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let (barrier, cert, port) = (barrier.clone(), cert.clone(), agent.port);
            std::thread::spawn(move || {
                let mut c = KeepAlive::connect(port, &cert).expect("connect");
                barrier.wait();
                let body = br#"{"username": "alice", "password": "wrong-password"}"#;
                c.request(
                    "POST",
                    "/login",
                    &[("Content-Type", "application/json")],
                    Some(body),
                )
                .map(|r| r.status)
                .unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 404).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    eprintln!("200 concurrent wrong logins: {checked} checked against the password, {refused} refused with 429");
    assert!(checked <= 5, "{checked} password checks (limit 5)");
    assert_eq!(checked + refused, 200, "{statuses:?}");
}

#[test]
fn credentials_in_the_query_string_never_reach_the_log() {
    let mut files = AgentFiles::new(None);
    let key = "Agent-Key-0123456789abcdef";
    files.set("temboard", "key", key);
    files.write();
    let agent = Agent::start(files);
    let _ = agent.get(&format!("/activity?key={key}"));
    let _ = agent.get(&format!("/notifications?limit=1&Key={key}&token={key}x"));
    assert!(eventually(Duration::from_secs(5), || agent
        .log()
        .contains("/notifications?limit=1&Key=***&token=***")));
    let log = agent.log();
    assert!(log.contains("\"GET /activity?key=*** HTTP/1.1\""), "{log}");
    assert!(!log.contains(key), "the key is in the log:\n{log}");
}

fn notifications(agent: &Agent, session: &str) -> Vec<String> {
    agent.notification_messages(session)
}

#[test]
fn list_settings_are_written_element_by_element_and_the_server_restarts() {
    let mut pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let r = agent.post_json(
        "/pgconf/configuration",
        &serde_json::json!({"settings": [
            {"name": "shared_preload_libraries", "setting": "pg_stat_statements,auto_explain"},
            {"name": "search_path", "setting": "\"$user\", public, \"odd,name\""},
        ]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let auto = std::fs::read_to_string(pg.data().join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("shared_preload_libraries = 'pg_stat_statements, auto_explain'"),
        "{auto}"
    );
    pg.stop();
    pg.start_again();
    let mut c = pg.client();
    let show = |c: &mut postgres::Client, what: &str| -> String {
        c.query_one(&format!("SHOW {what}"), &[]).unwrap().get(0)
    };
    assert_eq!(
        show(&mut c, "shared_preload_libraries"),
        "pg_stat_statements, auto_explain"
    );
    assert_eq!(
        show(&mut c, "search_path"),
        "\"$user\", public, \"odd,name\""
    );
}

#[test]
fn secrets_and_huge_values_stay_out_of_notifications() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let secret = "Hunter2-conninfo-pw";
    let r = agent.post_json(
        "/pgconf/configuration",
        &serde_json::json!({"settings": [
            {"name": "primary_conninfo", "setting": format!("host=primary user=rep password={secret}")},
        ]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let huge = "%m ".repeat(300_000);
    let r = agent.post_json(
        "/pgconf/configuration",
        &serde_json::json!({"settings": [{"name": "log_line_prefix", "setting": huge}]}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let all = notifications(&agent, &s);
    assert!(all
        .iter()
        .any(|m| m.starts_with("Setting 'primary_conninfo' changed")));
    assert!(all.iter().all(|m| !m.contains(secret)), "{all:?}");
    let longest = all.iter().map(String::len).max().unwrap();
    eprintln!("longest notification after a 900 kB setting: {longest} bytes");
    assert!(longest <= 2048, "a notification of {longest} bytes");
    let raw = agent
        .request("GET", "/notifications", &[("X-Session", &s)], None)
        .unwrap();
    assert!(raw.body.len() < 64 * 1024, "{} bytes", raw.body.len());
}

#[test]
fn kill_takes_a_bounded_deduplicated_list_and_records_only_real_terminations() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let many: Vec<i64> = (1_000_000..1_000_101).collect();
    let r = agent.post_json(
        "/activity/kill",
        &serde_json::json!({ "pids": many }),
        Some(&s),
    );
    assert_eq!(r.status, 406, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error"].as_str().unwrap().contains("at most 100"));
    let same = vec![999_999; 50_000];
    let r = agent.post_json(
        "/activity/kill",
        &serde_json::json!({ "pids": same }),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        serde_json::json!({"backends": [{"pid": 999_999, "killed": false}]})
    );
    let all = notifications(&agent, &s);
    assert!(
        all.iter().all(|m| !m.starts_with("Backend")),
        "a kill that terminated nothing was recorded: {all:?}"
    );
}

#[test]
fn anonymous_health_checks_leave_the_probe_worker_to_authenticated_work() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let cert = agent.files.cert_pem();
    // Transactions PostgreSQL counted (each /health computation runs one
    // `SELECT 1` through the probe worker).
    let mut c = pg.client();
    let xacts = |c: &mut postgres::Client| -> i64 {
        c.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
        c.query_one(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let before = xacts(&mut c);
    let hammer: Vec<_> = (0..64)
        .map(|_| {
            let (cert, port) = (cert.clone(), agent.port);
            std::thread::spawn(move || {
                let mut statuses = vec![];
                let mut c = KeepAlive::connect(port, &cert).expect("connect");
                for _ in 0..40 {
                    statuses.push(
                        c.request("GET", "/health", &[], None)
                            .map(|r| r.status)
                            .unwrap_or(0),
                    );
                }
                statuses
            })
        })
        .collect();
    let mut activity = vec![];
    for _ in 0..40 {
        activity.push(agent.get_with_session("/activity", &s).status);
    }
    let health: Vec<u16> = hammer.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let bad_health = health.iter().filter(|s| **s != 200).count();
    let bad_activity = activity.iter().filter(|s| **s != 200).count();
    eprintln!(
        "64 clients x 40 /health: {bad_health} not 200; 40 authenticated /activity meanwhile: {bad_activity} not 200"
    );
    assert_eq!(bad_health, 0);
    assert_eq!(bad_activity, 0, "{activity:?}");
    // 2,560 /health calls reached PostgreSQL a few times a second, not once
    // each (backends flush their counts within a second or so of idling).
    let counted = eventually(Duration::from_secs(15), || xacts(&mut c) - before > 40);
    let spent = xacts(&mut c) - before;
    eprintln!("PostgreSQL transactions during the run: {spent} (2,560 /health, 40 /activity)");
    assert!(counted, "PostgreSQL counted nothing: {spent}");
    assert!(
        spent < health.len() as i64 / 4,
        "{spent} transactions for {} /health calls: not shared",
        health.len()
    );
}

/// A tmpfs mounted for the test, unmounted on drop; then the directory
/// holding it is removed (its owner's drop, which may run first, cannot
/// remove a mount point: the test left a `tba-test*` directory behind).
struct Tmpfs(std::path::PathBuf, std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[test]
fn a_full_disk_keeps_reads_working_and_health_says_the_store_fails() {
    if !needs_root() {
        return;
    }
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    let mnt = files.dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs");
    let _tmpfs = Tmpfs(mnt.clone(), files.dir.path().to_path_buf());
    let home = mnt.join("home");
    std::fs::create_dir(&home).unwrap();
    give_to_postgres(&home);
    files.set("temboard", "home", home.to_str().unwrap());
    files.set("temboard", "session_ttl", "10");
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");
    assert!(eventually(Duration::from_secs(10), || agent
        .get("/health")
        .is_ok_and(|r| r.status == 200)));
    // Fill the disk.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(mnt.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    // Until /health reports the store (it writes at most once a second),
    // and until the session's refresh was attempted and failed, every read
    // keeps answering.
    let mut reads = 0;
    let ok = eventually(Duration::from_secs(30), || {
        for path in ["/profile", "/notifications"] {
            let r = agent.get_with_session(path, &s);
            assert_eq!(
                r.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&r.body)
            );
            reads += 1;
        }
        let h = agent.get("/health").unwrap();
        h.status == 503
            && h.json()["components"]["store"]["status"] == "failing"
            && agent.log().contains("cannot refresh a session")
    });
    assert!(ok, "the full disk was not reported:\n{}", agent.log());
    eprintln!("{reads} authenticated reads answered 200 with the home's disk full");
    drop(agent);
}

#[test]
fn workers_memory_is_closed_to_their_own_uid() {
    if !needs_root() {
        return;
    }
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let workers = agent.workers();
    assert_eq!(workers.len(), 5, "{workers:?}");
    for (pid, title) in workers {
        for file in ["environ", "mem"] {
            let path = format!("/proc/{pid}/{file}");
            // As the PostgreSQL OS user, the workers' own uid.
            let st = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    "dd",
                    "bs=1",
                    "count=1",
                    "status=none",
                ])
                .arg(format!("if={path}"))
                .arg("of=/dev/null")
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(!st.success(), "{title}: {path} readable by its uid");
        }
        let m = std::fs::metadata(format!("/proc/{pid}/mem")).unwrap();
        assert_eq!(
            m.uid(),
            0,
            "{title}: /proc/{pid} not owned by root (dumpable)"
        );
    }
}

#[test]
fn a_version_copy_on_a_full_disk_leaves_nothing_behind() {
    if !needs_root() {
        return;
    }
    let dir = open_tempdir();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs");
    let _tmpfs = Tmpfs(mnt.clone(), dir.path().to_path_buf());
    let hba = mnt.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\n".repeat(2000)).unwrap(); // 40 kB of 64
    let version = temboard_agent::plugins::pgconf::files::version_path(&hba, "2026-01-01T00:00:00");
    let e = temboard_agent::plugins::pgconf::files::copy_new(&hba, &version).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    let left: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["pg_hba.conf".to_string()], "left behind");
    assert!(temboard_agent::plugins::pgconf::files::versions(&hba)
        .unwrap()
        .is_empty());
}

#[test]
fn a_linked_hba_file_is_written_through_and_ident_writes_are_recorded() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    // pg_hba.conf kept outside the data directory, linked into it.
    let hba = pg.data().join("pg_hba.conf");
    let kept = pg.dir.path().join("hba-kept.conf");
    std::fs::rename(&hba, &kept).unwrap();
    std::os::unix::fs::symlink(&kept, &hba).unwrap();
    let content = format!(
        "{}# written through the link\n",
        std::fs::read_to_string(&kept).unwrap()
    );
    let r = agent.post_json(
        "/pgconf/hba/raw",
        &serde_json::json!({"content": content, "new_version": true}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(std::fs::symlink_metadata(&hba)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), content);

    let r = agent.post_json(
        "/pgconf/pg_ident",
        &serde_json::json!({"content": "# map system pg\n"}),
        Some(&s),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let all = notifications(&agent, &s);
    assert!(all.iter().any(|m| m == "Ident file updated"), "{all:?}");
}

#[test]
fn one_client_address_cannot_hold_every_connection() {
    use std::io::Read;
    let mut files = AgentFiles::new(None);
    files.set("temboard", "max_connections_per_client", "20");
    files.write();
    let agent = Agent::start(files);
    let greedy = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let held: Vec<_> = (0..100).map(|_| connect_from(greedy, agent.port)).collect();
    // Others still answer, at once.
    let r = agent.get("/health").unwrap();
    assert!(r.status == 200 || r.status == 503, "{}", r.status);
    assert_eq!(agent.get("/status").unwrap().status, 200);
    // The greedy address's next connection is closed before any TLS work.
    let mut extra = connect_from(greedy, agent.port);
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    match extra.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("connection over the cap not closed: {other:?}"),
    }
    assert!(
        agent.log().contains("127.0.0.2 holds 20 connections"),
        "{}",
        agent.log()
    );
    drop(held);
}

#[test]
fn a_postmaster_started_through_the_api_inherits_nothing_of_the_agent() {
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("administration", "pg_ctl", &pg.pg_ctl_template());
    files.write();
    // Started with a soft open-files limit below the hard one, which the
    // agent raises for itself.
    let port = files.port;
    let agent = Agent::start_via(files, port, &["prlimit", "--nofile=1000:4096"], &[], &[]);
    let s = agent.login("alice", "alice");
    let r = agent.post_json(
        "/administration/control",
        &serde_json::json!({"action": "restart"}),
        Some(&s),
    );
    assert_eq!(
        r.json()["state"],
        "ok",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let pid: i32 = std::fs::read_to_string(pg.data().join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(!environ.contains("TBA_"), "agent variables: {environ}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(open_files, 1000, "the agent's raised limit leaked");
    let home = agent.files.home();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert!(
            !target.starts_with(&home) && !target.starts_with(agent.files.etc()),
            "the postmaster holds an agent descriptor: {}",
            target.display()
        );
    }
}
