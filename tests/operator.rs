//! What operators add on top of the 2.x API: health, OpenAPI, API tokens, key
//! access on read-only routes.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

fn health(agent: &Agent) -> (u16, Value) {
    let r = agent.get("/health").unwrap();
    (r.status, r.json())
}

#[test]
fn health_follows_postgresql_and_the_workers() {
    let mut pg = PgCluster::start();
    // No plugin with a collection job: the monitoring collection connects
    // to every database (one pooled connection each, evicting others), so
    // the count of distinct backends below would measure it, not /health.
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "plugins", r#"["activity", "pgconf"]"#);
    files.write();
    let agent = Agent::start(files);
    assert!(
        eventually(Duration::from_secs(10), || health(&agent).0 == 200),
        "{:?}",
        health(&agent)
    );
    let (_, body) = health(&agent);
    assert_eq!(body["status"], "ok");
    for c in [
        "supervisor",
        "http",
        "scheduler",
        "probe",
        "pgctl",
        "task",
        "postgresql",
    ] {
        assert_eq!(body["components"][c]["status"], "ok", "{c}: {body}");
    }
    assert_eq!(body["components"]["collector"]["status"], "disabled");
    // Reveals nothing about the host.
    let text = body.to_string();
    for secret in [
        agent.files.home().display().to_string(),
        agent.pid.to_string(),
        "\"postgres\"".into(),
        env!("CARGO_PKG_VERSION").into(),
    ] {
        assert!(!text.contains(&secret), "{secret} in {text}");
    }
    // No new PostgreSQL connection per call: the same pooled backends serve.
    let mut c = pg.client();
    let backends = |c: &mut postgres::Client| -> Vec<i32> {
        c.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'temboard-agent' ORDER BY pid", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    // A connection per call would show ~30 distinct backends.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        health(&agent);
        seen.extend(backends(&mut c));
    }
    assert!(
        seen.len() <= 4,
        "{} distinct agent backends for 30 health calls",
        seen.len()
    );
    drop(c);

    // The answer may be up to 1 s old (one computation a second, shared).
    pg.stop();
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            let (code, body) = health(&agent);
            last = body;
            code == 503
        }),
        "{last}"
    );
    assert_eq!(last["components"]["postgresql"]["status"], "failing");
    assert_eq!(last["components"]["probe"]["status"], "ok");
    pg.start_again();
    assert!(eventually(Duration::from_secs(10), || health(&agent).0 == 200));

    // A probe worker that does not answer is named.
    let probe = agent.worker_pid("probe").unwrap();
    kill(Pid::from_raw(probe), Signal::SIGSTOP).unwrap();
    let named = eventually(Duration::from_secs(10), || {
        let (code, body) = health(&agent);
        last = body;
        code == 503
    });
    kill(Pid::from_raw(probe), Signal::SIGCONT).unwrap();
    assert!(named, "{last}");
    assert_eq!(last["components"]["probe"]["status"], "failing", "{last}");
    assert!(eventually(Duration::from_secs(10), || health(&agent).0 == 200));
}

#[test]
fn openapi_describes_exactly_the_routes() {
    let agent = Agent::start(AgentFiles::new(None));
    let r = agent.get("/openapi.json").unwrap();
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    let routes = temboard_agent::workers::http::routes::all();
    // A (method, path) served in both contracts is one operation; a rest
    // capture `{name*}` is described as `{name}`.
    let mut distinct = std::collections::HashSet::new();
    for r in &routes {
        let path = r.path.replace("*}", "}");
        let op = &paths[&path][r.method.to_lowercase()];
        assert!(op.is_object(), "{} {} missing", r.method, r.path);
        assert!(op["responses"]["200"].is_object());
        // A 9.x route that reads a signature says so (the unsigned 9.x
        // core routes, `GET /status` and `GET /error/{code}`, need none).
        if r.contract == temboard_agent::api::Contract::V9 && (r.session || r.signature_optional) {
            let schemes: Vec<String> = op["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s.as_object().unwrap().keys().cloned())
                .collect();
            assert!(
                schemes.contains(&"temboardSignature".to_string()),
                "{} {}: {schemes:?}",
                r.method,
                r.path
            );
        }
        distinct.insert((r.method, path));
    }
    let described: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(described, distinct.len());
    // A real OpenAPI validator agrees (in the tests' private Python).
    let spec = agent.files.dir.path().join("openapi.json");
    std::fs::write(&spec, &r.body).unwrap();
    let out = std::process::Command::new(test_python())
        .args(["-c", "import json,sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1])))"])
        .arg(&spec)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "invalid OpenAPI: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = agent.get("/docs").unwrap();
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(String::from_utf8_lossy(&page.body).contains("openapi.json"));
}

fn token_tool(agent: &Agent, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_temboard-agent-token"))
        .arg("-c")
        .arg(agent.files.conf())
        .args(args)
        .output()
        .unwrap();
    if is_root() {
        // The tool ran as root on a database owned by the agent's user.
        give_to_postgres(&agent.files.home());
    }
    out
}

#[test]
fn api_tokens_and_key_access() {
    let mut files = AgentFiles::new(None);
    files.set("temboard", "key", "agentkey42");
    files.write();
    let agent = Agent::start(files);
    let out = token_tool(&agent, &["create", "ci"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rw = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ro =
        String::from_utf8_lossy(&token_tool(&agent, &["create", "grafana", "--read-only"]).stdout)
            .trim()
            .to_string();
    assert!(
        !token_tool(&agent, &["create", "ci"]).status.success(),
        "duplicate name accepted"
    );
    let list = String::from_utf8_lossy(&token_tool(&agent, &["list"]).stdout).to_string();
    assert!(
        list.contains("ci\tread-write")
            && list.contains("grafana\tread-only")
            && !list.contains(&rw)
    );

    let bearer = |t: &str| format!("Bearer {t}");
    let r = agent
        .request("GET", "/profile", &[("Authorization", &bearer(&rw))], None)
        .unwrap();
    assert_eq!(
        (r.status, r.json()["username"].clone()),
        (200, json!("token:ci"))
    );
    let r = agent
        .request(
            "GET",
            "/notifications",
            &[("Authorization", &bearer(&ro))],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let r = agent
        .request(
            "POST",
            "/activity/kill",
            &[("Authorization", &bearer(&ro))],
            Some(b"{\"pids\": []}"),
        )
        .unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (
            403,
            json!("Token 'grafana' is read-only: GET requests only.")
        )
    );
    let r = agent
        .request(
            "GET",
            "/profile",
            &[("Authorization", "Bearer tba_00000000")],
            None,
        )
        .unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("Invalid token."))
    );
    assert!(token_tool(&agent, &["revoke", "ci"]).status.success());
    let r = agent
        .request("GET", "/profile", &[("Authorization", &bearer(&rw))], None)
        .unwrap();
    assert_eq!(r.status, 401, "revocation not applied at once");

    // Key access on read-only GETs only.
    assert_eq!(
        agent.get("/notifications?key=agentkey42").unwrap().status,
        200
    );
    assert_eq!(
        agent
            .request(
                "GET",
                "/dashboard/config",
                &[("X-TemBoard-Agent-Key", "agentkey42")],
                None
            )
            .unwrap()
            .status,
        200
    );
    let r = agent.get("/notifications?key=nope").unwrap();
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("Invalid key"))
    );
    assert_eq!(
        agent.get("/profile?key=agentkey42").unwrap().status,
        406,
        "key must not open session-only routes"
    );
}

#[test]
fn agent_self_shows_config_sources_and_workers_without_secrets() {
    let mut files = AgentFiles::new(None);
    files.set("postgresql", "password", "sup3rsecretpw");
    files.set("temboard", "key", "k3ysecret");
    files.write();
    let agent = Agent::start(files);
    let s = agent.login("alice", "alice");
    let get = || {
        let r = agent.get_with_session("/agent/self", &s);
        assert_eq!(r.status, 200);
        r.json()
    };
    let v = get();
    let text = v.to_string();
    assert!(
        !text.contains("sup3rsecretpw") && !text.contains("k3ysecret"),
        "{text}"
    );
    assert_eq!(v["config"]["postgresql"]["password"], "********");
    assert_eq!(v["sources"]["postgresql.password"]["kind"], "file");
    assert_eq!(v["sources"]["dashboard.history_length"]["kind"], "default");
    assert!(eventually(Duration::from_secs(5), || get()["workers"]
        .as_array()
        .map(|w| w.len() == 5 && w.iter().all(|x| x["pid"].is_u64()))
        .unwrap_or(false)));
    // A crash shows up with its reason.
    let pid = agent.worker_pid("scheduler").unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            let v = get();
            v["workers"].as_array().unwrap().iter().any(|w| {
                w["role"] == "scheduler"
                    && w["restarts"] == 1
                    && w["last_exit"] == "killed by signal SIGKILL"
            })
        }),
        "{}",
        get()
    );
    // A refused reload shows its error.
    std::fs::write(agent.files.conf(), "[temboard]\nport = nope\n").unwrap();
    agent.signal(Signal::SIGHUP);
    let conf = agent.files.conf().display().to_string();
    assert!(eventually(Duration::from_secs(5), || get()
        ["last_reload_error"]
        .as_str()
        .is_some_and(|e| e.contains(&conf))));
}

/// The samples of one family in a scrape: (labels, value).
fn family(parsed: &prometheus_parse::Scrape, name: &str) -> Vec<(prometheus_parse::Labels, f64)> {
    parsed
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name}: {other:?}"),
            };
            (s.labels.clone(), v)
        })
        .collect()
}

fn postgres_sample(parsed: &prometheus_parse::Scrape, name: &str) -> f64 {
    family(parsed, name)
        .into_iter()
        .find(|(l, _)| l.get("datname") == Some("postgres"))
        .unwrap_or_else(|| panic!("no {name}{{datname=\"postgres\"}}"))
        .1
}

#[test]
fn metrics_follow_prometheus_conventions_and_agree_with_postgresql() {
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "key", "promkey");
    files.set("monitoring", "scheduler_interval", "1");
    // The default plugins and the risks (the dashboard has their row).
    files.set(
        "temboard",
        "plugins",
        r#"["activity", "administration", "dashboard", "monitoring", "pgconf", "risks"]"#,
    );
    files.set("risks", "interval", "1");
    files.write();
    let agent = Agent::start(files);
    let scrape = || agent.get("/metrics?key=promkey").unwrap();
    let parse = |text: &str| {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("valid Prometheus text")
    };
    assert!(eventually(Duration::from_secs(10), || {
        String::from_utf8_lossy(&scrape().body)
            .contains("temboard_pg_stat_database_xact_commit_total")
    }));
    let r = scrape();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8_lossy(&r.body).to_string();

    // The real linter: Debian's promtool (scripts/prereqs.sh installs it).
    let said = promtool_check(&text);
    assert!(said.is_empty(), "promtool check metrics:\n{said}");

    let parsed = parse(&text);
    let real: i64 = pg
        .client()
        .query_one("SELECT pg_database_size('postgres')", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        postgres_sample(&parsed, "temboard_pg_database_size_bytes") as i64,
        real
    );
    assert_eq!(family(&parsed, "temboard_postgresql_up")[0].1, 1.0);
    // Counters are the cumulative values (rate() works on them), not
    // per-interval deltas: never above PostgreSQL's own, and they grow.
    let commits = postgres_sample(&parsed, "temboard_pg_stat_database_xact_commit_total");
    let server: i64 = pg
        .client()
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        commits >= 1.0 && commits <= server as f64,
        "{commits} vs {server}"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let later = parse(&String::from_utf8_lossy(&scrape().body));
            postgres_sample(&later, "temboard_pg_stat_database_xact_commit_total") > commits
        }),
        "the commit counter never grew"
    );
    assert!(family(&parsed, "temboard_node_cpu_seconds_total")
        .iter()
        .any(|(l, v)| l.get("mode") == Some("idle") && *v > 0.0));
    assert!(!family(&parsed, "temboard_node_load1").is_empty());
    assert!(!family(&parsed, "temboard_pg_stat_activity_backends").is_empty());
    assert!(!family(&parsed, "temboard_agent_http_requests_total").is_empty());
    assert!(!family(&parsed, "temboard_agent_worker_restarts_total").is_empty());
    // Typed as what they are.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut f = line.split_whitespace().skip(2);
        let (name, kind) = (f.next().unwrap(), f.next().unwrap());
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} is a {kind}"
        );
    }
    assert_eq!(agent.get("/metrics").unwrap().status, 401);
}

/// Families that exist only on a standby (the test agent's PostgreSQL is a
/// primary); they must be documented in docs/metrics.md.
const STANDBY_ONLY: [&str; 2] = [
    "temboard_pg_replication_lag_bytes",
    "temboard_pg_replication_connected",
];

#[test]
fn the_grafana_dashboard_queries_only_what_the_agent_exposes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana/temboard-agent.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dash["templating"]["list"][0]["name"], "instance");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let mut used: Vec<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("temboard_"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    used.sort();
    used.dedup();
    for e in &exprs {
        assert!(
            e.contains("$instance"),
            "a query without the instance variable: {e}"
        );
    }

    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    files.set("temboard", "key", "promkey");
    files.set("monitoring", "scheduler_interval", "1");
    // The default plugins and the risks (the dashboard has their row).
    files.set(
        "temboard",
        "plugins",
        r#"["activity", "administration", "dashboard", "monitoring", "pgconf", "risks"]"#,
    );
    files.set("risks", "interval", "1");
    files.write();
    let agent = Agent::start(files);
    let scrape =
        || String::from_utf8_lossy(&agent.get("/metrics?key=promkey").unwrap().body).to_string();
    // Until a collection with the bloat estimates (they run apart and join
    // the next document) is the newest.
    let mut exposed = String::new();
    assert!(eventually(Duration::from_secs(30), || {
        exposed = scrape();
        exposed.contains("temboard_pg_heap_bloat_ratio")
            && exposed.contains("temboard_pg_stat_database_xact_commit_total")
            && exposed.contains("temboard_risks_checked_timestamp_seconds")
    }));
    let families: Vec<&str> = exposed
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    for name in &used {
        if STANDBY_ONLY.contains(&name.as_str()) {
            assert!(doc.contains(name.as_str()), "{name} not documented");
            continue;
        }
        assert!(
            families.contains(&name.as_str()),
            "the dashboard queries {name}, which the agent does not expose"
        );
    }
}

#[test]
fn a_token_made_on_one_agent_is_added_to_another_from_stdin() {
    let first = Agent::start(AgentFiles::new(None));
    let second = Agent::start(AgentFiles::new(None));
    let token = String::from_utf8_lossy(
        &token_tool(&first, &["create", "prometheus", "--read-only"]).stdout,
    )
    .trim()
    .to_string();
    let add = |input: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_temboard-agent-token"))
            .arg("-c")
            .arg(second.files.conf())
            .args(["create", "prometheus", "--read-only", "--from-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if is_root() {
            give_to_postgres(&second.files.home());
        }
        out
    };
    // A guessable value is refused; the secret is never echoed.
    let out = add("tba_0123\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a token made by"));
    // Of the right shape but guessable (issue #27 finding 8).
    for guessable in ["A".repeat(64), "a".repeat(64), "0123456789abcdef".repeat(4)] {
        let out = add(&format!("tba_{guessable}\n"));
        assert!(!out.status.success(), "{guessable} was taken");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a token made by") || err.contains("guessable"),
            "{err}"
        );
    }
    let out = add(&format!("{token}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));
    let bearer = format!("Bearer {token}");
    for agent in [&first, &second] {
        let r = agent
            .request("GET", "/notifications", &[("Authorization", &bearer)], None)
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = agent
            .request(
                "POST",
                "/activity/kill",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                Some(b"{\"pids\": []}"),
            )
            .unwrap();
        assert_eq!(r.status, 403, "read-only on every agent");
    }
}
