//! Configuration as the operator meets it: precedence of the sources, and
//! startup refused with a message naming file, line, section and key.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs the agent on a configuration that must be refused; returns stderr.
fn refused(files: &AgentFiles, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(AGENT);
    cmd.arg("-c").arg(files.conf()).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agent did not exit on an invalid configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "agent accepted an invalid configuration"
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn line_of(files: &AgentFiles, needle: &str) -> usize {
    let text = std::fs::read_to_string(files.conf()).unwrap();
    text.lines()
        .position(|l| l.starts_with(needle))
        .expect("line present")
        + 1
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in:\n{msg}");
    }
}

#[test]
fn invalid_configurations_are_refused_with_a_clear_message() {
    // Port out of range: file, line, section and key, and what is allowed.
    let mut f = AgentFiles::new(None);
    f.set("temboard", "port", "70000");
    f.write();
    let conf = f.conf().display().to_string();
    let line = line_of(&f, "port = 70000");
    assert_has(
        &refused(&f, &[]),
        &[
            &conf,
            &format!("line {line}"),
            "[temboard] port",
            "70000",
            "1 to 65535",
        ],
    );

    // Wrong type for a plugin key.
    let mut f = AgentFiles::new(None);
    f.set("dashboard", "scheduler_interval", "soon");
    f.write();
    assert_has(
        &refused(&f, &[]),
        &["[dashboard] scheduler_interval", "'soon'", "whole seconds"],
    );

    // Missing and unreadable certificates.
    let mut f = AgentFiles::new(None);
    f.set("temboard", "ssl_cert_file", "nosuch.pem");
    f.write();
    assert_has(
        &refused(&f, &[]),
        &["[temboard] ssl_cert_file", "nosuch.pem"],
    );
    let f = AgentFiles::new(None);
    std::fs::write(f.etc().join("server.pem"), "not a certificate\n").unwrap();
    assert_has(
        &refused(&f, &[]),
        &["[temboard] ssl_cert_file", "no PEM certificate"],
    );

    // Home the workers cannot write.
    let f = AgentFiles::new(None);
    std::fs::set_permissions(f.home(), std::fs::Permissions::from_mode(0o500)).unwrap();
    assert_has(&refused(&f, &[]), &["[temboard] home", "not writable"]);
    let mut f = AgentFiles::new(None);
    f.set("temboard", "home", "/nonexistent/home");
    f.write();
    assert_has(
        &refused(&f, &[]),
        &["[temboard] home", "not an existing directory"],
    );

    // Syntax errors, duplicate keys.
    let f = AgentFiles::new(None);
    let mut text = std::fs::read_to_string(f.conf()).unwrap();
    text.push_str("[administration]\nthis line has no delimiter\n");
    std::fs::write(f.conf(), &text).unwrap();
    let n = text.lines().count();
    assert_has(
        &refused(&f, &[]),
        &[
            &f.conf().display().to_string(),
            &format!("line {n}"),
            "expected 'key = value'",
        ],
    );
    let f = AgentFiles::new(None);
    let mut text = std::fs::read_to_string(f.conf()).unwrap();
    text = text.replace("[temboard]\n", "[temboard]\nPort = 1\n");
    std::fs::write(f.conf(), &text).unwrap();
    let first = line_of(&f, "Port = 1");
    let dup = line_of(&f, &format!("port = {}", f.port));
    assert_has(
        &refused(&f, &[]),
        &[&format!(
            "line {dup}: key 'port' in section [temboard] already set at line {first}"
        )],
    );

    // Unknown plugin, bad level, bad value from the environment.
    let mut f = AgentFiles::new(None);
    f.set("temboard", "plugins", r#"["activity", "nosuchplugin"]"#);
    f.write();
    assert_has(
        &refused(&f, &[]),
        &[
            "unknown plugin 'nosuchplugin'",
            "known plugins are activity",
        ],
    );
    let mut f = AgentFiles::new(None);
    f.set("logging", "level", "LOUD");
    f.write();
    assert_has(&refused(&f, &[]), &["[logging] level", "LOUD"]);
    let f = AgentFiles::new(None);
    assert_has(
        &refused(&f, &[("TEMBOARD_PORT", "eighty")]),
        &["environment variable TEMBOARD_PORT", "[temboard] port"],
    );

    // Missing configuration file.
    let out = Command::new(AGENT)
        .args(["-c", "/nonexistent/agent.conf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_has(
        &String::from_utf8_lossy(&out.stderr),
        &[
            "/nonexistent/agent.conf does not exist",
            "-c FILE",
            "temboard-agent setup",
        ],
    );
}

fn show_config(files: &AgentFiles, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = Command::new(AGENT);
    cmd.arg("-c")
        .arg(files.conf())
        .arg("show-config")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn precedence_file_confd_environment_command_line() {
    let mut f = AgentFiles::new(None);
    f.set("logging", "debug", "false");
    f.set("postgresql", "password", "file-secret");
    f.write();
    let d = f.etc().join("temboard-agent.conf.d");
    std::fs::create_dir(&d).unwrap();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    // POSIX order: "B.conf" before "a.conf" before "b.conf".
    std::fs::write(d.join("b.conf"), format!("[temboard]\nport = {p2}\n")).unwrap();
    std::fs::write(
        d.join("B.conf"),
        format!("[temboard]\nport = {p1}\n[logging]\ndebug = http\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("a.conf"),
        "[temboard]\nport = 1\n[dashboard]\nhistory_length = 7\n",
    )
    .unwrap();
    std::fs::write(d.join("z.conf.disabled"), "[temboard]\nport = 2\n").unwrap();

    let v = show_config(&f, &[], &[]);
    assert_eq!(v["config"]["temboard"]["port"], p2);
    assert_eq!(
        v["sources"]["temboard.port"]["path"],
        d.join("b.conf").display().to_string()
    );
    assert_eq!(v["config"]["dashboard"]["history_length"], 7);
    assert_eq!(v["config"]["logging"]["debug"]["Some"][0], "http");
    assert_eq!(v["sources"]["temboard.users"]["kind"], "file");
    assert_eq!(
        v["sources"]["dashboard.scheduler_interval"]["kind"],
        "default"
    );
    // Secrets never shown.
    assert_eq!(v["config"]["postgresql"]["password"], "********");
    assert!(!v.to_string().contains("file-secret"));

    let env = [
        ("TEMBOARD_PORT", p3.to_string()),
        ("TEMBOARD_LOGGING_DEBUG", "probe".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let v = show_config(&f, &[], &env);
    assert_eq!(v["config"]["temboard"]["port"], p3);
    assert_eq!(v["sources"]["temboard.port"]["var"], "TEMBOARD_PORT");
    assert_eq!(v["config"]["logging"]["debug"]["Some"][0], "probe");
    let v = show_config(&f, &["--debug", "ipc"], &env);
    assert_eq!(v["config"]["logging"]["debug"]["Some"][0], "ipc");
    assert_eq!(v["sources"]["logging.debug"]["option"], "--debug");
    let v = show_config(&f, &["--debug"], &env);
    assert_eq!(v["config"]["logging"]["debug"], "All");

    // The running agent really listens where the winning source says.
    let agent = Agent::start_on(f, p3, &[], &env);
    assert_eq!(agent.get("/status").unwrap().status, 200);
}

/// A typo is hard to miss: the warning names the file and line and the key
/// meant, and `show-config` exits 2 so a provisioning script stops.
#[test]
fn typos_are_named_with_their_line_and_fail_show_config() {
    let f = AgentFiles::new(None);
    let mut text = std::fs::read_to_string(f.conf()).unwrap();
    text = text.replace("[temboard]\n", "[temboard]\nadress = 127.0.0.2\n");
    text.push_str("\n[temboad]\nport = 1\n");
    std::fs::write(f.conf(), &text).unwrap();
    let key_line = line_of(&f, "adress = 127.0.0.2");
    let section_line = line_of(&f, "[temboad]");
    let out = Command::new(AGENT)
        .arg("-c")
        .arg(f.conf())
        .arg("show-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "warnings exit 2");
    let conf = f.conf().display().to_string();
    assert_has(
        &String::from_utf8_lossy(&out.stderr),
        &[
            &format!(
                "{conf}, line {key_line}: unknown key 'adress' in section [temboard] ignored; did you mean 'address'?"
            ),
            &format!(
                "{conf}, line {section_line}: unknown section [temboad] ignored; did you mean [temboard]?"
            ),
        ],
    );
    // The configuration itself is still shown.
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["config"]["temboard"]["address"], "127.0.0.1");
}

#[test]
fn version_lists_what_the_agent_is_made_of() {
    let out = Command::new(AGENT).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("temboard-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let names: Vec<&str> = lines.filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        names,
        [
            "rustc",
            "rustls",
            "rust_postgres",
            "hyper",
            "tokio",
            "openssl",
            "sqlite"
        ],
        "{text}"
    );
    // -V stays one line, as scripts read it.
    let short = Command::new(AGENT).arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&short.stdout).trim(),
        format!("temboard-agent {}", env!("CARGO_PKG_VERSION"))
    );
}
