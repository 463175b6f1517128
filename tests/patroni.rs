//! `[patroni] url` against a real Patroni (PyPI's `patroni[raft]`, its own
//! Raft store, one member bootstrapping its own PostgreSQL 15): the member
//! is seen running as the primary in `GET /risks` and `/metrics`, a setting
//! changed through Patroni's API shows as a pending restart, and Patroni
//! stopped is a critical finding; an http:// URL to another host is refused
//! by the configuration.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const KEY: &str = "k3y-for-patroni-0123456789abcdef";

/// Patroni and its PostgreSQL, stopped on drop.
struct Patroni {
    child: Child,
    dir: tempfile::TempDir,
    api: String,
}

impl Drop for Patroni {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data = self.dir.path().join("data");
        let ctl = format!("{}/pg_ctl", pg_bin_dir());
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &ctl]);
            c
        } else {
            Command::new(&ctl)
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn pg_bin_dir() -> String {
    std::env::var("PGBIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())
}

fn get(url: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2", url])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn start_patroni() -> Patroni {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/patroni-venv.sh"
        ))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/patroni-venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patroni = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = open_tempdir();
    give_to_postgres(dir.path());
    let (api, raft, pg) = (free_port(), free_port(), free_port());
    let d = dir.path().display();
    let conf = format!(
        r#"scope: tests
name: member1
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
raft:
  data_dir: {d}/raft
  self_addr: 127.0.0.1:{raft}
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 1
    retry_timeout: 10
  initdb:
    - encoding: UTF8
    - auth: trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {d}/data
  bin_dir: {bin}
  pgpass: {d}/pgpass
  authentication:
    superuser:
      username: postgres
      password: not-used-trust
    replication:
      username: replicator
      password: not-used-trust
  parameters:
    unix_socket_directories: {d}
"#,
        bin = pg_bin_dir()
    );
    let file = dir.path().join("patroni.yml");
    std::fs::write(&file, conf).unwrap();
    give_to_postgres(dir.path());
    // Patroni itself as the child (not runuser), so that killing it
    // stops its REST API.
    let mut cmd = Command::new(&patroni);
    if is_root() {
        use std::os::unix::process::CommandExt;
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("user postgres");
        cmd.uid(pg.uid.as_raw())
            .gid(pg.gid.as_raw())
            .env("HOME", dir.path());
    }
    let child = cmd
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("patroni.log")).unwrap(),
        ))
        .spawn()
        .expect("patroni");
    let p = Patroni {
        child,
        dir,
        api: format!("http://127.0.0.1:{api}"),
    };
    let url = format!("{}/patroni", p.api);
    assert!(
        eventually(Duration::from_secs(90), || get(&url)
            .is_some_and(|v| v["role"] == "primary" && v["state"] == "running")),
        "Patroni never ran as the primary: {}",
        {
            let log = std::fs::read_to_string(p.dir.path().join("patroni.log")).unwrap_or_default();
            log[log.len().saturating_sub(3000)..].to_string()
        }
    );
    p
}

fn risks(agent: &Agent) -> Value {
    agent
        .request("GET", "/risks", &[("X-TemBoard-Agent-Key", KEY)], None)
        .unwrap()
        .json()
}

fn patroni_finding(doc: &Value) -> Option<Value> {
    doc["findings"]
        .as_array()?
        .iter()
        .find(|f| f["check"] == "patroni")
        .cloned()
}

#[test]
fn a_real_patroni_member_is_watched() {
    let mut patroni = start_patroni();
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "key", KEY);
    files.set("temboard", "plugins", r#"["risks"]"#);
    files.set("risks", "interval", "1");
    files.set("patroni", "url", &patroni.api);
    files.write();
    let agent = Agent::start(files);
    let until = |want: &dyn Fn(&Value) -> bool| {
        let mut last = Value::Null;
        let seen = eventually(Duration::from_secs(60), || {
            last = patroni_finding(&risks(&agent)).unwrap_or(Value::Null);
            want(&last)
        });
        assert!(seen, "{last:#}");
        last
    };

    let f = until(&|f| f["severity"] == "ok");
    assert_eq!(f["id"], "patroni/member1");
    assert_eq!(f["evidence"]["role"], "primary");
    assert_eq!(f["evidence"]["scope"], "tests");
    assert_eq!(f["evidence"]["timeline"], 1);
    let text = String::from_utf8_lossy(
        &agent
            .request("GET", "/metrics", &[("X-TemBoard-Agent-Key", KEY)], None)
            .unwrap()
            .body,
    )
    .to_string();
    for line in [
        "temboard_patroni_up 1",
        "temboard_patroni_primary{scope=\"tests\",name=\"member1\"} 1",
        "temboard_patroni_pending_restart{scope=\"tests\",name=\"member1\"} 0",
        "temboard_risk_severity{check=\"patroni\",subject=\"member1\"} 0",
    ] {
        assert!(text.contains(line), "{line} not in /metrics:\n{text}");
    }
    assert_eq!(promtool_check(&text), "");

    // A setting that needs a restart, changed through Patroni.
    let out = Command::new("curl")
        .args([
            "-s",
            "-XPATCH",
            "-d",
            r#"{"postgresql": {"parameters": {"shared_buffers": "64MB"}}}"#,
        ])
        .arg(format!("{}/config", patroni.api))
        .output()
        .unwrap();
    assert!(out.status.success());
    let f = until(&|f| f["severity"] == "warning");
    assert_eq!(f["evidence"]["pending_restart"], true, "{f:#}");
    assert_eq!(
        f["evidence"]["pending_settings"],
        serde_json::json!(["shared_buffers"])
    );

    // Patroni gone.
    let _ = patroni.child.kill();
    let _ = patroni.child.wait();
    let f = until(&|f| f["severity"] == "critical");
    assert!(
        f["summary"].as_str().unwrap().contains("does not answer"),
        "{f:#}"
    );
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let mut files = AgentFiles::new(None);
    files.set("temboard", "plugins", r#"["risks"]"#);
    files.set("patroni", "url", "http://db1.example.org:8008");
    files.write();
    let out = Command::new(env!("CARGO_BIN_EXE_temboard-agent"))
        .arg("--configfile")
        .arg(files.conf())
        .arg("show-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[patroni] url") && text.contains("loopback"),
        "{text}"
    );
}
