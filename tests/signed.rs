//! temBoard 9.x signed requests against the real binary over HTTPS (issue
//! #18): every refusal of facts 9.x 2.5 with our stricter rules, replays,
//! another key, the 9.x core routes, a key swapped on SIGHUP, and 2.x
//! sessions working on the same agent at the same time.

mod common;

use std::time::Duration;

use common::signed::*;
use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

#[test]
fn signed_requests_are_verified_as_temboard_9_and_2x_sessions_keep_working() {
    let (public, key) = test_keys();
    let agent = agent_with_key(None, &public);

    // A valid signed request.
    let s = Signed::get("/notifications");
    let h = s.headers(&key);
    let r = send(&agent, &s, &h);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json().is_array());
    // The same bytes again: a replay.
    let r = send(&agent, &s, &h);
    assert_eq!(
        error(&r),
        (409, "Request id already used: replay refused.".into())
    );

    // 2.x at the same time, on the same agent.
    let session = agent.login("alice", "alice");
    assert_eq!(agent.get_with_session("/profile", &session).status, 200);
    let r = agent.get_with_session("/notifications", &session);
    assert_eq!(r.status, 200);
    // 2.x shape: local dates, Login recorded.
    assert!(r.json()[0]["message"] == "Login");

    // Every refusal, in the 9.x contract.
    let refuse = |edit: &dyn Fn(&mut Signed<'_>, &mut Lines)| {
        let mut s = Signed::get("/notifications");
        let mut h = s.headers(&key);
        edit(&mut s, &mut h);
        error(&send(&agent, &s, &h))
    };
    let set = |h: &mut Lines, name: &str, value: Option<&str>| {
        h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            h.push((name.to_string(), v.to_string()));
        }
    };
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Date", Some(""))),
        (400, "Missing X-TemBoard-Date header.".into())
    );
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Date", Some("garbage"))),
        (
            400,
            "Malformed X-TemBoard-Date header: expected YYYYMMDDTHHMMSSZ (UTC).".into()
        )
    );
    let old = (chrono::Utc::now() - chrono::TimeDelta::hours(3))
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    for (date, expected) in [
        (old, "Request older than 2 hours."),
        (future, "Request date is more than 5 minutes in the future."),
    ] {
        // Signed with that date: refused for the date, not the signature.
        let mut s = Signed::get("/notifications");
        s.date = date;
        let h = s.headers(&key);
        assert_eq!(error(&send(&agent, &s, &h)), (400, expected.into()));
    }
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Signature", None)),
        (400, "Missing X-TemBoard-Signature header.".into())
    );
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Signature", Some("v2:abcd"))),
        (400, "Unsupported signature format".into())
    );
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Signature", Some("v1:"))),
        (400, "Malformed signature".into())
    );
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Request-Id", None)),
        (
            400,
            "Missing headers for request signing: x-temboard-request-id".into()
        )
    );
    // Bad base64: 403, not 9.0.1's 500.
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-Signature", Some("v1:not*base64"))),
        (403, "Invalid signature".into())
    );
    // Another user than the one signed.
    assert_eq!(
        refuse(&|_, h| set(h, "X-TemBoard-User", Some("mallory"))),
        (403, "Invalid signature".into())
    );
    // Signed, but with an empty user.
    let mut s = Signed::get("/notifications");
    s.user = "";
    let h = s.headers(&key);
    assert_eq!(
        error(&send(&agent, &s, &h)),
        (400, "Missing username".into())
    );
    // Signed by another key.
    let dir = open_tempdir();
    let (_, other) = other_keys(dir.path());
    let s = Signed::get("/notifications");
    let h = s.headers(&other);
    assert_eq!(
        error(&send(&agent, &s, &h)),
        (403, "Invalid signature".into())
    );
    // Unsigned: the 2.x contract, which wants a session or the agent key.
    let r = agent.get("/notifications").unwrap();
    assert_eq!(error(&r), (401, "Authentication key not configured".into()));
    // A 2.x-only route asked signed: 9.x has no such route.
    let s = Signed::get("/profile");
    let h = s.headers(&key);
    assert_eq!(
        error(&send(&agent, &s, &h)),
        (404, "Not found: '/profile'".into())
    );
}

#[test]
fn discover_and_status_in_the_9x_shapes() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_key(Some(&pg), &public);

    let s = Signed::get("/discover");
    let h = s.headers(&key);
    let r = send(&agent, &s, &h);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d = r.json();
    assert_eq!(d["signature_status"], "valid");
    let etag = r.header("etag").expect("ETag").to_string();
    assert_eq!(etag.len(), 64);
    let num: i64 = pg
        .client()
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get::<_, i32>(0)
        .into();
    assert_eq!(d["postgres"]["version_num"], num);
    assert_eq!(d["postgres"]["port"], pg.port);
    assert!(d["postgres"]["block_size"].is_i64());
    assert!(d["postgres"]["pid"].is_i64());
    assert!(d["postgres"]["version_summary"]
        .as_str()
        .unwrap()
        .starts_with("PostgreSQL "));
    assert_eq!(d["system"]["fqdn"], "agent.example.org");
    assert!(d["system"]["cpu_count"].as_u64().unwrap() >= 1);
    assert_eq!(
        d["temboard"]["agent_version"],
        format!("9.0.1+rs.{}", env!("CARGO_PKG_VERSION"))
    );
    // What the agent is made of, for the About page: the versions compiled
    // in (Cargo.lock), the compiler, the OpenSSL loaded; no "Python n/a".
    let t = &d["temboard"];
    assert!(
        t.get("python_version").is_none() && t.get("pythonbin").is_none(),
        "{t}"
    );
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    for (field, krate) in [
        ("rustls_version", "rustls"),
        ("rust_postgres_version", "postgres"),
        ("hyper_version", "hyper"),
    ] {
        let v = t[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing: {t}"));
        assert!(
            lock.contains(&format!("name = \"{krate}\"\nversion = \"{v}\"")),
            "{field} = {v}"
        );
    }
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        format!("rustc {}", t["rustc_version"].as_str().unwrap()),
        String::from_utf8_lossy(&rustc.stdout).trim()
    );
    assert!(
        t["openssl_version"]
            .as_str()
            .unwrap()
            .starts_with("OpenSSL 3"),
        "{t}"
    );
    assert!(
        t["sqlite_version"].as_str().unwrap().starts_with("3."),
        "{t}"
    );
    assert!(t.get("libpq_version").is_none(), "no libpq is linked: {t}");

    // The `discover` command builds the same document: same ETag.
    let out = std::process::Command::new(AGENT)
        .arg("-c")
        .arg(agent.files.conf())
        .arg("discover")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["postgres"]["version_num"], num);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("ETag: {etag}")
    );

    // Signed by another key: invalid, never an error (9.0.1 gave 500s).
    let dir = open_tempdir();
    let (_, other) = other_keys(dir.path());
    let s = Signed::get("/discover");
    let h = s.headers(&other);
    assert_eq!(send(&agent, &s, &h).json()["signature_status"], "invalid");

    // /status, with the same ETag.
    let s = Signed::get("/status");
    let h = s.headers(&key);
    let r = send(&agent, &s, &h);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-temboard-discover-etag"), Some(etag.as_str()));
    let st = r.json();
    assert_eq!(st["postgres"]["status"], "running");
    assert_eq!(st["postgres"]["is_standby"], false);
    assert_eq!(st["postgres"]["pending_restart"], false);
    assert_eq!(st["postgres"]["primary"], json!({}));
    assert_eq!(st["temboard"]["pid"], agent.pid);
    assert_eq!(st["system"]["status"], "running");
    // Unsigned /status stays 2.x.
    assert!(agent.get("/status").unwrap().json()["version"].is_string());

    // PostgreSQL down: discover answers from what it stored.
    drop(pg);
    let s = Signed::get("/discover");
    let h = s.headers(&key);
    let r = send(&agent, &s, &h);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["postgres"]["version_num"], num);
}

#[test]
fn the_signing_key_is_swapped_on_sighup_only_when_it_parses() {
    let (public, key) = test_keys();
    let agent = agent_with_key(None, &public);
    let dir = open_tempdir();
    let (other_public, other) = other_keys(dir.path());
    let ok_with = |k: &rsa::RsaPrivateKey| {
        let s = Signed::get("/notifications");
        let h = s.headers(k);
        send(&agent, &s, &h).status == 200
    };
    assert!(ok_with(&key));
    let path = agent.files.etc().join("signing-public.pem");

    // A broken key: the reload is refused, the old key keeps working.
    std::fs::write(
        &path,
        "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || agent
        .log()
        .contains("reload refused")));
    assert!(ok_with(&key));

    // The UI's new key: taken at the next reload.
    std::fs::write(&path, other_public).unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || ok_with(&other)),
        "{}",
        agent.log()
    );
    assert!(!ok_with(&key));
}

#[test]
fn an_agent_with_only_the_signing_key_starts_and_says_so() {
    let (public, _) = test_keys();
    let mut files = AgentFiles::new(None);
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    // No users file at all: 2.x logins off, 9.x on.
    std::fs::remove_file(files.etc().join("users")).unwrap();
    if let Some(t) = files.values.get_mut("temboard") {
        t.remove("users");
    }
    files.write();
    let out = std::process::Command::new(AGENT)
        .arg("-c")
        .arg(files.conf())
        .arg("show-config")
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["authentication"],
        json!(["9.x signed requests ([temboard] signing_public_key)"])
    );
    let agent = Agent::start(files);
    let r = agent.post_json(
        "/login",
        &json!({"username": "alice", "password": "alice"}),
        None,
    );
    assert_eq!(r.status, 404);

    // Neither way configured: a clear refusal.
    let mut files = AgentFiles::new(None);
    if let Some(t) = files.values.get_mut("temboard") {
        t.insert("users".into(), "/nonexistent/users".into());
    }
    files.write();
    let out = std::process::Command::new(AGENT)
        .arg("-c")
        .arg(files.conf())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("users"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn requests_signed_by_the_real_temboard_toolkit_are_accepted() {
    let (public, _) = test_keys();
    let pg = PgCluster::start();
    let agent = agent_with_key(Some(&pg), &public);
    let spec = json!([
        {"method": "GET", "path": "/discover"},
        {"method": "GET", "path": "/status"},
        {"method": "GET", "path": "/notifications", "user": "bob"},
        {"method": "POST", "path": "/discover", "body": "{}"},
        {"method": "GET", "path": "/notifications", "tamper": true},
    ]);
    let answers = toolkit_requests(&agent, &spec);
    assert_eq!(answers.len(), 5);
    assert_eq!(answers[0]["status"], 200, "{}", answers[0]);
    assert_eq!(answers[0]["body"]["signature_status"], "valid");
    assert_eq!(answers[1]["status"], 200, "{}", answers[1]);
    assert_eq!(answers[1]["discover_etag"], answers[0]["etag"]);
    assert_eq!(answers[2]["status"], 200, "{}", answers[2]);
    assert!(answers[2]["body"].is_array());
    assert_eq!(answers[3]["status"], 200, "{}", answers[3]);
    assert_eq!(answers[3]["body"]["signature_status"], "valid");
    assert_eq!(answers[4]["status"], 403, "{}", answers[4]);
    assert_eq!(answers[4]["body"]["error"], "Invalid signature");
}

fn run_agent(conf: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(AGENT);
    cmd.arg("-c")
        .arg(conf)
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn fetch_key_and_register_against_a_ui() {
    let (public, key) = test_keys();
    let mut files = AgentFiles::new(None);
    let ui_key = files.dir.path().join("ui-signing.pem");
    std::fs::write(&ui_key, &public).unwrap();
    let record = files.dir.path().join("instances.jsonl");
    let ui = UiStandin::start(&files, &ui_key, &record);
    files.set("temboard", "ui_url", &ui.url);
    files.set("temboard", "ssl_ca_cert_file", "server.pem");
    files.write();
    let conf = files.conf();
    let local = files.etc().join("signing-public.pem");

    // fetch-key writes the key, 0644, and says what to do next.
    let (ok, out) = run_agent(&conf, &["fetch-key"], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("Reload the agent"), "{out}");
    assert!(
        out.contains(&format!(
            "Key fingerprint (SHA-256 of the public key): {}",
            fingerprint(&public)
        )),
        "{out}"
    );
    assert!(!out.contains("WARNING"), "{out}");
    assert_eq!(std::fs::read_to_string(&local).unwrap(), public);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&local).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // The same key again: nothing to do.
    let (ok, out) = run_agent(&conf, &["fetch-key"], &[]);
    assert!(ok && out.contains("already"), "{out}");
    // A different key there: refused without --force.
    std::fs::write(&local, "something else").unwrap();
    let (ok, out) = run_agent(&conf, &["fetch-key"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("exists. Use --force to overwrite."), "{out}");
    let (ok, out) = run_agent(&conf, &["fetch-key", "--force"], &[]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(&local).unwrap(), public);

    // register: the agent must run (its discover document is sent).
    let agent = Agent::start(files);
    let port = agent.port.to_string();
    let creds = [
        ("TEMBOARD_UI_USER", "admin"),
        ("TEMBOARD_UI_PASSWORD", "admin"),
    ];
    let (ok, out) = run_agent(
        &conf,
        &[
            "register",
            "--host",
            "localhost",
            "-p",
            &port,
            "-e",
            "default",
        ],
        &creds,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "Instance registered. Manage it at {}/server/localhost/{port}/dashboard.",
            ui.url
        )),
        "{out}"
    );
    let sent: Value = serde_json::from_str(
        std::fs::read_to_string(&record)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sent["agent_address"], "localhost");
    assert_eq!(sent["agent_port"], port);
    assert_eq!(sent["environment"], "default");
    assert_eq!(sent["notify"], true);
    assert!(sent["discover"]["system"]["cpu_count"].is_u64());
    assert!(sent["discover"].get("signature_status").is_none());
    // The ETag sent is the one the agent gives the UI on signed requests.
    let s = Signed::get("/discover");
    let h = s.headers(&key);
    let r = send(&agent, &s, &h);
    assert_eq!(r.json()["signature_status"], "valid");
    assert_eq!(r.header("etag"), sent["discover_etag"].as_str());
    // The UI's answers come back verbatim.
    let (ok, out) = run_agent(
        &conf,
        &["register", "--host", "localhost", "-p", &port],
        &creds,
    );
    assert!(!ok);
    assert!(
        out.contains("UI returned error: 400: Unknown environment"),
        "{out}"
    );

    // Another UI key than ours: refused before any login.
    let dir = open_tempdir();
    let (other_public, _) = other_keys(dir.path());
    std::fs::write(&ui_key, other_public).unwrap();
    let (ok, out) = run_agent(
        &conf,
        &[
            "register",
            "--host",
            "localhost",
            "-p",
            &port,
            "-e",
            "default",
        ],
        &creds,
    );
    assert!(!ok);
    assert!(out.contains("Signature mismatch."), "{out}");
}

/// What `openssl pkey -pubin -outform DER | sha256sum` prints of a PEM key.
fn fingerprint(pem: &str) -> String {
    use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
    use sha2::Digest;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem).unwrap();
    let der = key.to_public_key_der().unwrap();
    sha2::Sha256::digest(der.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Issue #27 finding 4: the key that controls the agent is fetched only
/// from a UI whose certificate verifies (against the system's roots or
/// `ssl_ca_cert_file`); `http://` and unverified TLS only with
/// `--insecure`, which warns and prints the fingerprint to compare; the
/// UI password never goes over `http://` without it.
#[test]
fn the_ui_key_is_fetched_only_over_verified_tls() {
    let (public, _) = test_keys();
    let mut files = AgentFiles::new(None);
    let ui_key = files.dir.path().join("ui-signing.pem");
    std::fs::write(&ui_key, &public).unwrap();
    let record = files.dir.path().join("instances.jsonl");
    let ui = UiStandin::start(&files, &ui_key, &record);
    files.set("temboard", "ui_url", &ui.url);
    files.write();
    let conf = files.conf();
    let local = files.etc().join("signing-public.pem");
    // A self-signed UI, no CA file: the system's roots refuse it.
    let (ok, out) = run_agent(&conf, &["fetch-key"], &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("ssl_ca_cert_file") && out.contains("--insecure"),
        "{out}"
    );
    assert!(!local.exists(), "a key from an unverified UI was written");
    // --insecure: written, with a warning and the fingerprint to compare.
    let (ok, out) = run_agent(&conf, &["fetch-key", "--insecure"], &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("WARNING") && out.contains("without verifying"),
        "{out}"
    );
    assert!(out.contains(&fingerprint(&public)), "{out}");
    assert_eq!(std::fs::read_to_string(&local).unwrap(), public);
    // http://: refused before any connection, for fetch-key and register
    // (the UI password), unless --insecure.
    let plain = format!("http://127.0.0.1:{}", free_port());
    let creds = [
        ("TEMBOARD_UI_USER", "admin"),
        ("TEMBOARD_UI_PASSWORD", "admin"),
    ];
    for args in [
        vec!["fetch-key", "--force"],
        vec![
            "register",
            "--ui-url",
            plain.as_str(),
            "--host",
            "localhost",
        ],
    ] {
        let mut conf_text = std::fs::read_to_string(&conf).unwrap();
        conf_text = conf_text.replace(&ui.url, &plain);
        std::fs::write(&conf, &conf_text).unwrap();
        let (ok, out) = run_agent(&conf, &args, &creds);
        assert!(!ok, "{out}");
        assert!(
            out.contains("refusing 'http://") && out.contains("--insecure"),
            "{args:?}: {out}"
        );
    }
    // setup --ui-url: the same rule, nothing written when refused.
    let pg = PgCluster::start();
    let root = open_tempdir();
    let (etc, homes) = (root.path().join("etc"), root.path().join("lib"));
    let out = std::process::Command::new(AGENT)
        .args(["setup", "--prefix"])
        .arg(&etc)
        .arg("--home-prefix")
        .arg(&homes)
        .args(["--pghost"])
        .arg(pg.socket_dir())
        .args(["--pgport", &pg.port.to_string(), "--first-port"])
        .arg(free_port().to_string())
        .args(["--ui-url", &ui.url])
        .env("TEMBOARD_HOSTNAME", "db1.example.org")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssl_ca_cert_file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!etc.exists() || std::fs::read_dir(&etc).unwrap().next().is_none());
}

#[test]
fn setup_with_a_ui_url_writes_a_configuration_ready_for_temboard_9() {
    let (public, _) = test_keys();
    let pg = PgCluster::start();
    let files = AgentFiles::new(None);
    let ui_key = files.dir.path().join("ui-signing.pem");
    std::fs::write(&ui_key, &public).unwrap();
    let ui = UiStandin::start(&files, &ui_key, &files.dir.path().join("instances.jsonl"));
    let root = open_tempdir();
    let (etc, homes) = (root.path().join("etc"), root.path().join("lib"));
    let out = std::process::Command::new(AGENT)
        .args(["setup", "--prefix"])
        .arg(&etc)
        .arg("--home-prefix")
        .arg(&homes)
        .args(["--pghost"])
        .arg(pg.socket_dir())
        .args(["--pgport", &pg.port.to_string(), "--first-port"])
        .arg(free_port().to_string())
        .args(["--ui-url", &ui.url, "--ui-ca-file"])
        .arg(files.etc().join("server.pem"))
        .env("TEMBOARD_HOSTNAME", "db1.example.org")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("register -e <environment>"), "{stdout}");
    let conf = std::fs::read_dir(&etc)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("main");
    let text = std::fs::read_to_string(conf.join("temboard-agent.conf")).unwrap();
    assert!(text.contains(&format!("ui_url = {}", ui.url)), "{text}");
    assert_eq!(
        std::fs::read_to_string(conf.join("signing-public.pem")).unwrap(),
        public
    );
    let out = std::process::Command::new(AGENT)
        .arg("-c")
        .arg(conf.join("temboard-agent.conf"))
        .arg("show-config")
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        shown["authentication"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m.as_str().unwrap().starts_with("9.x"))),
        "{shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_replay_is_refused_by_the_next_http_worker_too() {
    let (public, key) = test_keys();
    let agent = agent_with_key(None, &public);
    let s = Signed::get("/notifications");
    let h = s.headers(&key);
    assert_eq!(send(&agent, &s, &h).status, 200);
    // Recorded in the agent's database (written off the request path).
    let db = agent.files.home().join("agent.db");
    assert!(
        eventually(Duration::from_secs(10), || {
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM signed_requests WHERE id = ?1",
                        [&s.id],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|n| n == 1)
        }),
        "the request id was never recorded"
    );
    let old = agent.worker_pid("http").unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), Signal::SIGKILL).unwrap();
    assert!(eventually(Duration::from_secs(10), || agent
        .worker_pid("http")
        .is_some_and(|p| p != old)
        && agent.get("/status").is_ok_and(|r| r.status == 200)));
    assert_eq!(
        error(&send(&agent, &s, &h)),
        (409, "Request id already used: replay refused.".into())
    );
}

/// Issue #28: unsigned requests are answered in the contract the agent is
/// configured for: 9.x alone (what `setup --ui-url` writes) answers them as
/// 9.0.1 does; with both, 2.x unless `unsigned_contract = 9`; a 2.x
/// credential is always answered in 2.x, and the agent's own routes
/// (`/health`, `/metrics`) the same either way.
#[test]
fn unsigned_requests_follow_the_configured_contract() {
    let (public, key) = test_keys();
    let pg = PgCluster::start();
    let mut files = AgentFiles::new(Some(&pg));
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    std::fs::remove_file(files.etc().join("users")).unwrap();
    if let Some(t) = files.values.get_mut("temboard") {
        t.remove("users");
    }
    files.set("temboard", "key", "k3ysecret");
    files.write();
    let agent = Agent::start(files);
    let status = agent.get("/status").unwrap();
    assert_eq!(status.status, 200);
    let body = status.json();
    assert!(
        body.get("configfile").is_none() && body["postgres"]["status"] == "running",
        "not the 9.x status: {body}"
    );
    assert!(status.header("x-temboard-discover-etag").is_some());
    let discover = agent.get("/discover").unwrap();
    assert_eq!(discover.json()["signature_status"], "enabled");
    assert!(discover.header("etag").is_some());
    let r = agent.get("/notifications").unwrap();
    assert_eq!(error(&r), (400, "Missing X-TemBoard-Date header.".into()));
    let r = agent.get("/nope").unwrap();
    assert_eq!(error(&r), (404, "Not found: '/nope'".into()));
    // The agent's own routes, and the agent key, as before.
    assert_eq!(agent.get("/health").unwrap().status, 200);
    assert_eq!(agent.get("/metrics?key=k3ysecret").unwrap().status, 200);
    assert_eq!(Signed::get("/notifications").send(&agent, &key).status, 200);
    drop(agent);

    // Both generations: unsigned stays 2.x by default...
    let files = AgentFiles::new(Some(&pg));
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    files.write();
    let agent = Agent::start(files);
    assert!(agent
        .get("/status")
        .unwrap()
        .json()
        .get("configfile")
        .is_some());
    drop(agent);
    // ...unless the operator says 9; a session is still 2.x.
    let mut files = AgentFiles::new(Some(&pg));
    std::fs::write(files.etc().join("signing-public.pem"), &public).unwrap();
    files.set("temboard", "unsigned_contract", "9");
    files.write();
    let agent = Agent::start(files);
    assert!(agent
        .get("/status")
        .unwrap()
        .json()
        .get("configfile")
        .is_none());
    let s = agent.login("alice", "alice");
    let r = agent.get_with_session("/notifications", &s);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn request_counters_are_labelled_by_the_route_that_answered_in_either_contract() {
    let pg = PgCluster::start();
    let (public, private) = test_keys();
    let mut files = signed_files(&pg, &public, "activity,pgconf");
    files.set("temboard", "key", "countkey");
    files.write();
    let agent = Agent::start(files);
    let get =
        |path: &str, headers: &[(&str, &str)]| agent.request("GET", path, headers, None).unwrap();
    let scrape = || {
        let text = get("/metrics", &[("X-TemBoard-Agent-Key", "countkey")]).body;
        let text = String::from_utf8_lossy(&text).into_owned();
        move |route: &str, status: u16| -> f64 {
            let want = format!(
                "temboard_agent_http_requests_total{{route=\"{route}\",status=\"{status}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&want))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0.0)
        }
    };
    let before = scrape();
    // 9.x-only routes (a plugin's and the core's), a 9.x core route with a
    // capture, an unknown 9.x path, and 2.x requests.
    assert_eq!(
        Signed::get("/activity/sessions")
            .send(&agent, &private)
            .status,
        200
    );
    assert_eq!(
        Signed::get("/pgconf/settings")
            .send(&agent, &private)
            .status,
        200
    );
    assert_eq!(
        Signed::get("/notifications").send(&agent, &private).status,
        200
    );
    assert_eq!(Signed::get("/error/418").send(&agent, &private).status, 418);
    assert_eq!(Signed::get("/nowhere").send(&agent, &private).status, 404);
    assert_eq!(get("/status", &[]).status, 200);
    assert_eq!(get("/nowhere", &[]).status, 404);
    let after = scrape();
    for (route, status, n) in [
        ("/activity/sessions", 200, 1.0),
        ("/pgconf/settings", 200, 1.0),
        ("/notifications", 200, 1.0),
        ("/error/{code}", 418, 1.0),
        ("/status", 200, 1.0),
        ("unmatched", 404, 2.0),
        ("/metrics", 200, 1.0),
    ] {
        assert_eq!(
            after(route, status) - before(route, status),
            n,
            "{route} {status}"
        );
    }
}

#[test]
fn discover_is_answered_from_memory_until_postgresql_or_the_agent_changes() {
    let pg = PgCluster::start_with(
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
    );
    let mut c = pg.client();
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .unwrap();
    let (public, private) = test_keys();
    let agent = agent_with_plugins(&pg, &public, "activity");
    // How many times the agent read PostgreSQL for a discover document (its
    // settings and version queries). The 2.x `/discover` reads at each
    // request: its contract answers 500 while PostgreSQL is down.
    let reads = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE query LIKE '%FROM pg_settings%WHERE context = %OR name = ANY%' \
                OR query LIKE 'SELECT version(), current_setting(%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let discover = || {
        let r = Signed::get("/discover").send(&agent, &private);
        assert_eq!(r.status, 200);
        (r.header("etag").unwrap().to_string(), r.json())
    };
    let (tag, first) = discover();
    assert_eq!(first["signature_status"], "valid");
    // Once the scheduler has recorded when PostgreSQL started (its first
    // check), the document stays in memory: five in a row read nothing.
    assert!(
        eventually(Duration::from_secs(30), || {
            let before = reads(&mut c);
            for _ in 0..5 {
                discover();
            }
            reads(&mut c) == before
        }),
        "the document is read again and again"
    );
    let before = reads(&mut c);
    for _ in 0..50 {
        assert_eq!(discover().0, tag, "same document, same ETag");
    }
    assert_eq!(reads(&mut c), before, "50 discovers read PostgreSQL");
    // PostgreSQL reloads its configuration: read again (within the
    // scheduler's check interval).
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    let reloaded = reads(&mut c);
    assert!(
        eventually(Duration::from_secs(30), || {
            discover();
            reads(&mut c) > reloaded
        }),
        "a PostgreSQL reload is not seen"
    );
    // The agent reloads: read again.
    let before = reads(&mut c);
    agent.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || {
            discover();
            reads(&mut c) > before
        }),
        "an agent reload is not seen"
    );
}

#[test]
fn a_promoted_standby_is_seen_in_the_discover_document() {
    let primary = PgCluster::start();
    let standby = PgCluster::standby_by_copy(&primary);
    let (public, private) = test_keys();
    let agent = agent_with_plugins(&standby, &public, "activity");
    let standby_of = |d: &Value| d["postgres"]["in_hot_standby"].clone();
    let discover = || Signed::get("/discover").send(&agent, &private);
    let first = discover();
    assert_eq!(first.status, 200);
    assert_eq!(standby_of(&first.json()), json!(true), "{}", first.json());
    // Promoted: neither a restart nor a configuration reload, yet the
    // document changes (within the scheduler's check), and so its ETag.
    standby
        .client()
        .execute("SELECT pg_promote()", &[])
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || standby_of(&discover().json())
            == json!(false)),
        "the promotion is not seen"
    );
    assert_ne!(
        discover().header("etag"),
        first.header("etag"),
        "the ETag follows the document"
    );
}
