//! Privilege separation checks (issue #9, part 5): started as root, no worker
//! keeps root; the workers that face the network hold no PostgreSQL password
//! (not in memory, environment or arguments) and cannot start programs;
//! NO_NEW_PRIVS everywhere but in the pg_ctl worker; agent files 0600 and
//! directories 0700; no secret in the logs. (Every test agent of the suite
//! runs at DEBUG with a seeded password; `Agent`'s drop checks its log.)

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;

/// `Key:\tvalue` of /proc/<pid>/status.
fn status_field(pid: i32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// Whether `needle` is in the process's writable, private memory (heap,
/// stacks, anonymous mappings): where a password read at run time would be.
fn memory_contains(pid: i32, needle: &[u8]) -> bool {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut scanned = 0usize;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (range, perms) = (f[0], f[1]);
        let path = f.get(5).copied().unwrap_or("");
        if !perms.starts_with("rw")
            || !(path.is_empty() || path.starts_with("[heap") || path.starts_with("[stack"))
        {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        scanned += buf.len();
        let first = needle[0];
        let found = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == first)
            .any(|(i, _)| buf[i..].starts_with(needle));
        if found {
            return true;
        }
    }
    assert!(scanned > 0, "nothing of {pid}'s memory could be read");
    false
}

fn check_tree(dir: &Path, bad: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = md.permissions().mode() & 0o7777;
        let ft = md.file_type();
        if ft.is_symlink() {
            continue;
        }
        if mode & 0o077 != 0 {
            bad.push(format!("{} {:o}", e.path().display(), mode));
        }
        if ft.is_dir() {
            check_tree(&e.path(), bad);
        } else {
            assert!(ft.is_file() || ft.is_socket(), "{}", e.path().display());
        }
    }
}

#[test]
fn workers_are_unprivileged_and_hold_no_password() {
    ci_runs_as_root();
    let pg = PgCluster::start();
    let files = AgentFiles::new(Some(&pg));
    if is_root() {
        // The configuration (with the password) readable by root only: the
        // supervisor reads it and hands workers what they need.
        std::fs::set_permissions(files.conf(), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(std::fs::metadata(files.conf()).unwrap().uid(), 0);
    }
    let agent = Agent::start(files);
    let session = agent.login("alice", "alice");
    // Work for every worker: PostgreSQL (probe), a pg_ctl-free operation list
    // (pgctl), a dashboard collection (scheduler).
    assert_eq!(agent.get_with_session("/activity", &session).status, 200);
    assert_eq!(
        agent
            .get_with_session("/pgconf/configuration", &session)
            .status,
        200
    );
    assert_eq!(agent.get("/health").unwrap().status, 200);

    let seed = SEED_PASSWORD.as_bytes();
    let mut roles = std::collections::BTreeMap::new();
    for role in ["http", "scheduler", "probe", "pgctl", "task"] {
        roles.insert(role, agent.worker_pid(role).expect(role));
    }
    for (role, pid) in &roles {
        let pid = *pid;
        if is_root() {
            for key in ["Uid", "Gid"] {
                let ids = status_field(pid, key);
                assert!(
                    !ids.split_whitespace().any(|u| u == "0"),
                    "{role} worker {key}: {ids}"
                );
            }
            let groups = status_field(pid, "Groups");
            assert!(
                !groups.split_whitespace().any(|g| g == "0"),
                "{role}: groups {groups}"
            );
            assert_eq!(status_field(pid, "CapEff"), "0000000000000000", "{role}");
            assert_eq!(status_field(pid, "CapPrm"), "0000000000000000", "{role}");
        }
        // The pg_ctl worker may run a sudo-like command the DBA configured;
        // every other worker can never gain privileges nor start a program.
        let (nnp, seccomp) = if *role == "pgctl" {
            ("0", "0")
        } else {
            ("1", "2")
        };
        assert_eq!(status_field(pid, "NoNewPrivs"), nnp, "{role}");
        assert_eq!(status_field(pid, "Seccomp"), seccomp, "{role}");
        // Never in arguments or environment.
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        for (what, bytes) in [("environment", &environ), ("arguments", &cmdline)] {
            assert!(
                !bytes.windows(seed.len()).any(|w| w == seed),
                "password in the {role} worker's {what}"
            );
        }
    }
    // Memory: the probe worker connects to PostgreSQL, so it holds the
    // password: it proves the scan finds it. No other worker has it.
    assert!(
        memory_contains(roles["probe"], seed),
        "the scan did not find the password where it must be"
    );
    for role in ["http", "scheduler", "pgctl"] {
        assert!(
            !memory_contains(roles[role], seed),
            "the {role} worker holds the PostgreSQL password"
        );
    }
    if is_root() {
        // The worker user cannot read the configuration file either.
        let read = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "cat"])
            .arg(agent.files.conf())
            .output()
            .unwrap();
        assert!(
            !read.status.success(),
            "the worker user can read the configuration"
        );
    }
    // What /agent/self shows is a marker.
    let me = agent.get_with_session("/agent/self", &session).json();
    assert_eq!(me["config"]["postgresql"]["password"], "********");

    // Files the agent made under its home: 0600, directories 0700.
    let mut bad = vec![];
    check_tree(&agent.files.home(), &mut bad);
    assert!(bad.is_empty(), "group/other access: {bad:?}");
    assert!(agent.files.home().join("agent.db").exists());
    assert!(agent.files.home().join("run/probe.sock").exists());
}

#[test]
fn passwords_and_sessions_are_not_logged() {
    let mut files = AgentFiles::new(None);
    let secret_user_password = "S3cret-User-Pw-91b2";
    let users = format!(
        "alice:{}\nbob:{}\n",
        temboard_agent::users::hash_password("alice", "alice"),
        temboard_agent::users::hash_password("bob", secret_user_password)
    );
    std::fs::write(files.etc().join("users"), users).unwrap();
    files.set("logging", "level", "DEBUG");
    files.write();
    let agent = Agent::start(files);
    let ok = agent.post_json(
        "/login",
        &serde_json::json!({"username": "bob", "password": secret_user_password}),
        None,
    );
    assert_eq!(ok.status, 200);
    let session = ok.json()["session"].as_str().unwrap().to_string();
    agent.sessions.lock().unwrap().push(session.clone());
    assert_eq!(agent.get_with_session("/profile", &session).status, 200);
    let bad = agent.post_json(
        "/login",
        &serde_json::json!({"username": "bob", "password": format!("{secret_user_password}x")}),
        None,
    );
    assert_eq!(bad.status, 404);
    let log = agent.log();
    assert!(log.contains("DEBUG"), "not at DEBUG:\n{log}");
    assert!(log.contains("failed login for user 'bob'"), "{log}");
    assert!(
        !log.contains(secret_user_password),
        "a user password is in the log:\n{log}"
    );
    agent.assert_no_secret_in_log();
}

#[test]
fn the_open_files_limit_is_raised_for_every_process() {
    // Started with a soft limit of 256: 10,000 client connections need more.
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    assert!(hard > 256, "hard limit {hard} too low for this test");
    let files = AgentFiles::new(None);
    let port = files.port;
    let limit = format!("--nofile=256:{hard}");
    let agent = Agent::start_via(files, port, &["prlimit", &limit], &[], &[]);
    let soft_of = |pid: i32| -> u64 {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        line.split_whitespace().nth(3).unwrap().parse().unwrap()
    };
    assert_eq!(soft_of(agent.pid), hard);
    for (pid, title) in agent.workers() {
        assert_eq!(soft_of(pid), hard, "{title}");
    }
}
