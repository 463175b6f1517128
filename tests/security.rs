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
