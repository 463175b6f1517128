//! The pipeline's decisions, in-process: the real [`super::pipeline::handle`]
//! behind a hyper server on a loopback port, with no binary, no TLS, no
//! other worker and no PostgreSQL (calls to the probe worker fail, which no
//! decision here needs). Which contract answers, which credential a route
//! takes, body limits, and 404/405 in each contract.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::db::Db;
use super::state::AppState;
use crate::config::{CliValues, LoadRequest};
use crate::ipc::messages::{Runtime, WorkerSettings};
use crate::ipc::Role;
use crate::workers::ctx::WorkerCtx;

/// A pipeline serving on a loopback port, and what it was configured with.
struct Served {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
    _control: std::os::unix::net::UnixStream,
}

/// An answer: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves a pipeline configured with `extra` lines in `[temboard]` (2.x
/// users and the agent key `agentkey` always; the UI's public key when
/// `signing`).
fn serve(extra: &str, signing: bool) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    crate::certgen::write_self_signed(
        &["localhost".to_string()],
        &p.join("server.pem"),
        &p.join("server.key"),
    )
    .unwrap();
    // A users file whose hash is never checked here (no login succeeds).
    std::fs::write(p.join("users"), "alice:$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n").unwrap();
    let home = p.join("home");
    std::fs::create_dir(&home).unwrap();
    let signing_line = if signing {
        let pem = include_str!("../../../tests/fixtures/temboard-9x-signing-vectors.json");
        let v: Value = serde_json::from_str(pem).unwrap();
        std::fs::write(p.join("signing.pem"), v["public_key_pem"].as_str().unwrap()).unwrap();
        "signing_public_key = signing.pem\n"
    } else {
        ""
    };
    // As root, the configuration names the workers' user (never root): any
    // unprivileged user that can write the home will do here.
    let (user, user_line) = if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
        ("nobody".to_string(), "user = nobody\n")
    } else {
        let name = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        (name, "")
    };
    std::fs::write(
        p.join("agent.conf"),
        format!(
            "[temboard]\nusers = users\nssl_cert_file = server.pem\nssl_key_file = server.key\nhome = {}\nkey = agentkey\nhostname = agent.example.org\n{user_line}{signing_line}{extra}\n[postgresql]\nhost = {}\nport = 1\n",
            home.display(),
            p.display()
        ),
    )
    .unwrap();
    let loaded = crate::config::load(&LoadRequest {
        configfile: p.join("agent.conf"),
        env: vec![],
        cli: CliValues::default(),
    })
    .unwrap_or_else(|e| panic!("test configuration refused: {e}"));
    let signing_key_pem = signing.then(|| std::fs::read_to_string(p.join("signing.pem")).unwrap());
    let settings = WorkerSettings {
        config: loaded.config.without_secrets(),
        runtime: Runtime {
            supervisor_pid: std::process::id(),
            start_datetime: "2026-12-07T00:00:00".into(),
            reload_datetime: "2026-12-07T00:00:00".into(),
            user,
            run_dir: home.join("run"),
            open_files_soft: None,
        },
        tls: None,
        signing_key_pem,
        sources: loaded.sources,
    };
    let (control, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_events_tx, events) = crossbeam_channel::unbounded();
    let ctx = WorkerCtx::new(Role::Http, 1, settings, theirs, events);
    let db = Db::open(&home).unwrap();
    let state = Arc::new(AppState::new(ctx, db));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move {
                        Ok::<_, Infallible>(super::pipeline::handle(req, peer, state).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Served {
        addr,
        _dir: dir,
        _runtime: runtime,
        _control: control,
    }
}

impl Served {
    /// Sends one request (`Connection: close`) and reads the whole answer.
    fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        let mut tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            {
                req.push_str(&format!("Content-Length: {}\r\n", b.len()));
            }
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        tcp.write_all(&bytes).unwrap();
        let mut raw = vec![];
        let _ = tcp.read_to_end(&mut raw);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn get(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        self.send("GET", target, headers, None)
    }
}

/// A signing date of now: with it, a request is in the 9.x contract (its
/// signature, absent here, is what fails).
fn now9() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// A session id of the right shape that no session has.
const UNKNOWN_SESSION: &str = "00000000000000000000000000000000000000000000000000000000000000aa";

#[test]
fn unknown_routes_are_404_in_each_contract_and_unknown_methods_405() {
    let s = serve("", true);
    let a = s.get("/nowhere", &[]);
    assert_eq!((a.status, a.error()), (404, "URL not found.".into()));
    // 9.x: Python's repr of the path, decoded once.
    let a = s.get("/no%20where", &[("X-TemBoard-Date", now9().as_str())]);
    assert_eq!(
        (a.status, a.error()),
        (404, "Not found: '/no where'".into())
    );
    // A 9.x path with another method: 405 in 9.x; 2.x matches (method, path)
    // exactly, so it is not found.
    let a = s.send(
        "POST",
        "/status",
        &[("X-TemBoard-Date", now9().as_str())],
        Some(b"{}"),
    );
    assert_eq!((a.status, a.error()), (405, "Method not allowed.".into()));
    let a = s.send("POST", "/status", &[], Some(b"{}"));
    assert_eq!(a.status, 404);
    // A plugin's prefix with a slash reaches its root route; the core's
    // routes are matched as sent, as 9.x does.
    let a = s.get("/status/", &[("X-TemBoard-Date", now9().as_str())]);
    assert_eq!((a.status, a.error()), (404, "Not found: '/status/'".into()));
    let a = s.get("/activity/", &[("X-TemBoard-Date", now9().as_str())]);
    assert_eq!(
        a.status,
        400,
        "routed to /activity, refused unsigned: {}",
        a.error()
    );
    let a = s.send("PUT", "/status", &[], None);
    assert_eq!((a.status, a.error()), (405, "Method not allowed.".into()));
    // OPTIONS answers the 2.x CORS preflight.
    let a = s.send("OPTIONS", "/activity", &[], None);
    assert_eq!(a.status, 200);
    assert!(a.header("access-control-allow-origin").is_some());
}

#[test]
fn the_contract_follows_how_a_request_authenticates() {
    // Both generations configured: unsigned requests stay 2.x.
    let s = serve("", true);
    let two = s.get("/status", &[]);
    assert_eq!(two.status, 200);
    assert!(two.json().get("configfile").is_some(), "2.x /status");
    assert!(two.header("x-temboard-discover-etag").is_none());
    // Signing headers: 9.x, even where the signature cannot verify.
    let nine = s.get("/notifications", &[("X-TemBoard-Date", now9().as_str())]);
    assert_eq!(nine.status, 400, "{}", nine.error());
    assert!(nine.error().contains("X-TemBoard-"), "{}", nine.error());
    // A 2.x credential is answered in 2.x, whatever unsigned_contract says.
    let s = serve("unsigned_contract = 9", true);
    let a = s.get("/notifications", &[("X-Session", UNKNOWN_SESSION)]);
    assert_eq!((a.status, a.error()), (401, "Invalid session.".into()));
    // Unsigned and credential-less: 9.x here.
    let a = s.get("/notifications", &[]);
    assert_eq!(
        (a.status, a.error()),
        (400, "Missing X-TemBoard-Date header.".into())
    );
    // The agent's own routes stay neutral.
    let a = s.get("/openapi.json", &[]);
    assert_eq!(a.status, 200);
    assert!(a.json()["openapi"].is_string());
}

#[test]
fn each_route_takes_its_own_credentials() {
    let s = serve("", false);
    // A session route: no session, a malformed one, an unknown one.
    let a = s.get("/profile", &[]);
    assert_eq!(
        (a.status, a.error()),
        (406, "Parameter 'X-Session' not sent.".into())
    );
    let a = s.get("/profile", &[("X-Session", "not-a-session")]);
    assert_eq!(
        (a.status, a.error()),
        (406, "Parameter 'X-Session' is malformed.".into())
    );
    let a = s.get("/profile", &[("X-Session", UNKNOWN_SESSION)]);
    assert_eq!((a.status, a.error()), (401, "Invalid session.".into()));
    // A route that also takes the agent key asks for one.
    let a = s.get("/activity", &[]);
    assert_eq!((a.status, a.error()), (401, "Missing key".into()));
    // A keyed route: the agent key by header or query; a wrong one refused.
    let a = s.get("/metrics", &[("X-TemBoard-Agent-Key", "wrong")]);
    assert_eq!((a.status, a.error()), (401, "Invalid key".into()));
    let a = s.get("/metrics", &[("X-TemBoard-Agent-Key", "agentkey")]);
    assert_eq!(a.status, 200);
    assert!(String::from_utf8_lossy(&a.body).contains("temboard_agent_info"));
    let a = s.get("/metrics?key=agentkey", &[]);
    assert_eq!(a.status, 200);
    // Without any credential, the keyed route says which ones it takes.
    let a = s.get("/metrics", &[]);
    assert_eq!(a.status, 401);
    assert!(a.error().contains("X-TemBoard-Agent-Key"), "{}", a.error());
    // An API token that does not exist.
    let a = s.get("/activity", &[("Authorization", "Bearer nope")]);
    assert_eq!((a.status, a.error()), (401, "Invalid token.".into()));
    // No signing key: a signed request is told so, not "invalid signature".
    let a = s.get("/notifications", &[("X-TemBoard-Date", now9().as_str())]);
    assert_eq!(a.status, 400);
    assert!(a.error().contains("signing_public_key"), "{}", a.error());
}

#[test]
fn bodies_are_checked_before_they_are_read() {
    let s = serve("", true);
    // Over the limit: 413 from the announced length, nothing read.
    let len = (super::pipeline::MAX_BODY + 1).to_string();
    let a = s.send(
        "POST",
        "/login",
        &[("Content-Length", len.as_str())],
        Some(b"{}"),
    );
    assert_eq!(a.status, 413);
    assert!(
        a.error().starts_with("Request body too large"),
        "{}",
        a.error()
    );
    // No length: 400, as 2.x.
    let a = s.send("POST", "/login", &[], None);
    assert_eq!(
        (a.status, a.error()),
        (400, "Unable to read post data".into())
    );
    // Not JSON: 400.
    let a = s.send("POST", "/login", &[], Some(b"{not json"));
    assert_eq!((a.status, a.error()), (400, "Invalid json format".into()));
    // A session route refuses the caller before reading its body.
    let a = s.send(
        "POST",
        "/administration/control",
        &[("Content-Length", len.as_str())],
        Some(b"{}"),
    );
    assert_eq!(a.status, 413, "the length is checked first, as 2.x");
    let a = s.send(
        "POST",
        "/administration/control",
        &[("X-Session", UNKNOWN_SESSION)],
        Some(b"{\"action\": \"stop\"}"),
    );
    assert_eq!((a.status, a.error()), (401, "Invalid session.".into()));
    // 9.x: a signed POST is prechecked (date window) before its body.
    let a = s.send(
        "POST",
        "/discover",
        &[("X-TemBoard-Date", now9().as_str())],
        Some(b"{}"),
    );
    assert_eq!(a.status, 400, "{}", a.error());
}
