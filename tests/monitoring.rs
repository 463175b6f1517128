//! Monitoring plugin: every probe against the real cluster, the durable push
//! to a test collector (collector down, agent restarted, 409, queue bound),
//! lock-blocked probes, the pull history and key access.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn probe(agent: &Agent, s: &str, name: &str) -> Vec<Value> {
    let r = agent.get_with_session(&format!("/monitoring/probe/{name}"), s);
    assert_eq!(
        r.status,
        200,
        "{name}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} not a list"))
        .clone()
}

#[test]
fn every_probe_answers_with_its_shape() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let mut c = pg.client();
    c.batch_execute("CREATE TABLE big (i int)").unwrap();
    let port = pg.port as i64;
    let sessions = probe(&agent, &s, "sessions");
    let row = sessions.iter().find(|r| r["dbname"] == "postgres").unwrap();
    for k in [
        "datetime",
        "active",
        "waiting",
        "idle",
        "idle_in_xact",
        "idle_in_xact_aborted",
        "fastpath",
        "disabled",
        "no_priv",
    ] {
        assert!(row.get(k).is_some(), "sessions.{k}: {row}");
    }
    assert!(
        row["idle"].as_i64().unwrap() >= 1,
        "our own idle client: {row}"
    );
    assert_eq!(row["port"], port);
    let xacts = probe(&agent, &s, "xacts");
    assert!(
        xacts
            .iter()
            .any(|r| r["dbname"] == "postgres" && r["n_commit"].is_i64()),
        "raw counters via the API"
    );
    let locks = probe(&agent, &s, "locks");
    assert!(
        locks[0]["access_share"].is_i64()
            && locks[0]["waiting_access_exclusive"].is_i64()
            && locks[0]["siread"].is_i64()
    );
    let blocks = probe(&agent, &s, "blocks");
    assert!(blocks[0]["hitmiss_ratio"].is_f64());
    let bg = probe(&agent, &s, "bgwriter");
    assert!(bg[0]["checkpoints_timed"].is_i64() && bg[0]["checkpoint_write_time"].is_f64());
    let size = |agent: &Agent| {
        probe(agent, &s, "db_size")
            .iter()
            .find(|r| r["dbname"] == "postgres")
            .unwrap()["size"]
            .as_i64()
            .unwrap()
    };
    let before = size(&agent);
    c.batch_execute("INSERT INTO big SELECT generate_series(1, 200000); CHECKPOINT")
        .unwrap();
    assert!(size(&agent) > before + 1_000_000, "db_size did not grow");
    let real: i64 = c
        .query_one("SELECT pg_database_size('postgres')", &[])
        .unwrap()
        .get(0);
    assert_eq!(size(&agent), real);
    let tblspc = probe(&agent, &s, "tblspc_size");
    assert!(tblspc
        .iter()
        .any(|r| r["spcname"] == "pg_default" && r["size"].is_i64()));
    let fs = probe(&agent, &s, "filesystems_size");
    assert!(
        fs.iter().any(|r| r["mount_point"] == "/"
            && r["total"].as_u64().unwrap() > 0
            && r["used"].is_u64()),
        "{fs:?}"
    );
    let mem = probe(&agent, &s, "memory");
    let total_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(mem[0]["mem_total"], total_kb * 1024);
    let load = probe(&agent, &s, "loadavg");
    assert!(load[0]["load1"].is_string() && load[0]["load15"].is_string());
    // Delta probes: nothing on the first call, a row with measure_interval next.
    for name in ["cpu", "process", "wal_files"] {
        let _ = probe(&agent, &s, name);
        std::thread::sleep(Duration::from_millis(300));
        let rows = probe(&agent, &s, name);
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        assert!(
            rows[0]["measure_interval"].as_f64().unwrap() > 0.0,
            "{name}"
        );
    }
    let cpu = probe(&agent, &s, "cpu");
    assert_eq!(cpu[0]["cpu"], "global");
    assert!(cpu[0]["time_idle"].is_i64());
    assert!(probe(&agent, &s, "process")[0]["procs_total"].is_string());
    let wal = probe(&agent, &s, "wal_files");
    assert!(
        wal[0]["total"].as_i64().unwrap() >= 1
            && wal[0]["current_location"].is_string()
            && wal[0]["port"] == port
    );
    // No standby here: a primary without replicas has no row, not an error.
    assert_eq!(probe(&agent, &s, "replication"), Vec::<Value>::new());
    assert_eq!(
        agent.get_with_session("/monitoring/probe/nope", &s).status,
        404
    );
}

fn monitored_files(pg: &PgCluster, collector_port: u16, interval: u64) -> AgentFiles {
    let mut files = AgentFiles::new(Some(pg));
    files.set("temboard", "key", "s3cr3tk3y");
    files.set("monitoring", "scheduler_interval", &interval.to_string());
    files.set(
        "monitoring",
        "collector_url",
        &format!("https://127.0.0.1:{collector_port}/monitoring/collector"),
    );
    files.set(
        "monitoring",
        "ssl_ca_cert_file",
        &files.dir.path().join("collector.pem").display().to_string(),
    );
    files.set("dashboard", "scheduler_interval", "60");
    let cdir = files.dir.path().to_path_buf();
    temboard_agent::certgen::write_self_signed(
        &["127.0.0.1".into(), "localhost".into()],
        &cdir.join("collector.pem"),
        &cdir.join("collector.key"),
    )
    .unwrap();
    std::fs::set_permissions(
        cdir.join("collector.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    files.write();
    files
}

#[test]
fn payloads_reach_the_collector_exactly_once_in_order() {
    let pg = PgCluster::start();
    let cport = free_port();
    let files = monitored_files(&pg, cport, 1);
    let dir = files.dir.path().to_path_buf();
    let collector = TestCollector::start(cport, &dir);
    let agent = Agent::start(files);
    assert!(
        eventually(Duration::from_secs(10), || collector.bodies().len() >= 2),
        "no payload arrived: {}",
        agent.log()
    );
    let first = collector.received.lock().unwrap()[0].clone();
    assert_eq!(first.path, "/monitoring/collector");
    assert_eq!(first.header("x-key"), Some("s3cr3tk3y"));
    let p: Value = serde_json::from_str(&first.body).unwrap();
    for k in ["datetime", "version", "hostinfo", "instances", "data"] {
        assert!(p.get(k).is_some(), "{k}");
    }
    assert_eq!(p["hostinfo"]["hostname"], "agent.example.org");
    assert_eq!(p["instances"][0]["available"], true);
    assert!(p["instances"][0]["max_connections"].is_string());
    assert!(p["instances"][0]["tablespaces"].is_array());
    for name in [
        "sessions",
        "xacts",
        "locks",
        "blocks",
        "bgwriter",
        "db_size",
        "tblspc_size",
        "filesystems_size",
        "cpu",
        "process",
        "memory",
        "loadavg",
        "wal_files",
        "replication",
    ] {
        assert!(p["data"][name].is_array(), "data.{name} not a list");
    }

    // Collector down for several intervals, agent restarted meanwhile.
    drop(collector);
    std::thread::sleep(Duration::from_secs(3));
    let mut agent = agent;
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(Duration::from_secs(5)).unwrap();
    let files = std::mem::replace(&mut agent.files, AgentFiles::new(None));
    drop(agent);
    let agent = Agent::start(files);
    std::thread::sleep(Duration::from_secs(2));
    let collector = TestCollector::start(cport, &dir);
    let db = rusqlite::Connection::open(agent.files.home().join("agent.db")).unwrap();
    let queued = |db: &rusqlite::Connection| {
        db.query_row(
            "SELECT count(*) FROM monitoring_payloads WHERE sent_at IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(30), || queued(&db) == 0),
        "backlog not drained: {}",
        agent.log()
    );
    let bodies = collector.bodies();
    let unique: HashSet<&String> = bodies.iter().collect();
    assert_eq!(unique.len(), bodies.len(), "a payload arrived twice");
    let times: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["datetime"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "out of order");
    assert!(
        bodies.len() >= 4,
        "payloads collected while the collector was down were lost: {}",
        bodies.len()
    );

    // 409: dropped, never sent again.
    collector
        .status
        .store(409, std::sync::atomic::Ordering::SeqCst);
    let n = collector.bodies().len();
    assert!(eventually(Duration::from_secs(10), || collector
        .bodies()
        .len()
        >= n + 2));
    collector
        .status
        .store(200, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let bodies = collector.bodies();
    let unique: HashSet<&String> = bodies.iter().collect();
    assert_eq!(
        unique.len(),
        bodies.len(),
        "a refused payload was sent again"
    );
    assert!(agent.log().contains("409 Conflict"));
    // The pull history answers with key access.
    let r = agent
        .request(
            "GET",
            "/monitoring/history?start=2000-01-01T00:00:00Z&limit=2",
            &[("X-TemBoard-Agent-Key", "s3cr3tk3y")],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let r = agent.get("/monitoring/history?key=wrong").unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("Invalid key"))
    );
    assert_eq!(
        agent.get("/monitoring/history").unwrap().json()["error"],
        "Missing key"
    );
    assert_eq!(
        agent
            .get("/monitoring/probe/memory?key=s3cr3tk3y")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn the_queue_stays_within_its_bound() {
    let pg = PgCluster::start();
    let cport = free_port();
    let mut files = monitored_files(&pg, cport, 1);
    files.set("monitoring", "queue_max_messages", "3");
    files.write();
    let agent = Agent::start(files);
    assert!(
        eventually(Duration::from_secs(15), || agent
            .log()
            .contains("oldest unsent payload(s) dropped")),
        "{}",
        agent.log()
    );
    let db = rusqlite::Connection::open(agent.files.home().join("agent.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM monitoring_payloads", [], |r| r.get(0))
        .unwrap();
    assert!(rows <= 3, "{rows} rows kept");
    let dropped: String = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'monitoring_dropped'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(dropped.parse::<i64>().unwrap() >= 1);
    assert_eq!(
        agent.log().matches("cannot send to the collector").count(),
        1,
        "failure logged once"
    );
}

#[test]
fn a_locked_catalog_times_probes_out_without_exceeding_the_connection_cap() {
    let pg = PgCluster::start();
    let agent = Agent::start(AgentFiles::new(Some(&pg)));
    let s = agent.login("alice", "alice");
    let mut c = pg.client();
    let mut holder = pg.client();
    // pg_tablespace: read by tblspc_size, not needed to open a connection.
    holder
        .batch_execute("BEGIN; LOCK TABLE pg_tablespace IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let (port, cert, s2) = (agent.port, agent.files.cert_pem(), s.clone());
    let blocked: Vec<_> = (0..6)
        .map(|_| {
            let (cert, s2) = (cert.clone(), s2.clone());
            std::thread::spawn(move || {
                https_request(
                    port,
                    &cert,
                    "GET",
                    "/monitoring/probe/tblspc_size",
                    &[("X-Session", &s2)],
                    None,
                )
                .unwrap()
            })
        })
        .collect();
    // Host probes still answer meanwhile.
    assert_eq!(
        agent
            .get_with_session("/monitoring/probe/memory", &s)
            .status,
        200
    );
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(agent_backends(&mut c));
        std::thread::sleep(Duration::from_millis(100));
    }
    for b in blocked {
        let r = b.join().unwrap();
        assert!(r.status == 200 || r.status == 503, "{}", r.status);
        if r.status == 200 {
            assert_eq!(
                r.json()["tblspc_size"],
                json!([]),
                "a lock-blocked probe reports nothing"
            );
        }
    }
    assert!(peak <= 4, "{peak} agent connections");
    holder.batch_execute("ROLLBACK").unwrap();
    assert!(!probe(&agent, &s, "tblspc_size").is_empty());
}

#[test]
fn register_tool_against_a_fake_ui() {
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "key", "regkey");
    files.write();
    let agent = Agent::start(files);
    let uiport = free_port();
    let ui = TestCollector::start(uiport, agent.files.dir.path());
    *ui.extra_headers.lock().unwrap() = "Set-Cookie: temboard=abc123; Path=/; secure\r\n".into();
    let register = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_temboard-agent-register"))
            .arg("-c")
            .arg(agent.files.conf())
            .args(["-h", "127.0.0.1", "-p", &agent.port.to_string()])
            .args(extra)
            .arg(format!("https://127.0.0.1:{uiport}/"))
            .env("TEMBOARD_UI_USER", "admin")
            .env("TEMBOARD_UI_PASSWORD", "secret")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = register(&["-g", "default,prod"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Done."));
    let reqs = ui.received.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/json/login");
    let login: Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(login, json!({"username": "admin", "password": "secret"}));
    assert_eq!(reqs[1].path, "/json/register/instance");
    assert_eq!(reqs[1].header("cookie"), Some("temboard=abc123"));
    let body: Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert_eq!(body["agent_key"], "regkey");
    assert_eq!(body["agent_address"], "127.0.0.1");
    assert_eq!(body["agent_port"], agent.port.to_string());
    assert_eq!(body["hostname"], "agent.example.org");
    assert_eq!(body["pg_port"], pg.port.to_string());
    assert_eq!(body["groups"], json!(["default", "prod"]));
    assert!(body["pg_version"]
        .as_str()
        .unwrap()
        .starts_with("PostgreSQL"));
    assert!(body["cpu"].is_u64() && body["memory_size"].is_u64() && body["plugins"].is_array());
    // The UI refusing: its error is shown, exit 1.
    ui.status.store(500, std::sync::atomic::Ordering::SeqCst);
    let out = register(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("test collector says no"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An unreachable agent: a clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_temboard-agent-register"))
        .arg("-c")
        .arg(agent.files.conf())
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "https://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the agent"));
}
