//! `temboard-agent doctor` against real parts: a healthy host is all OK
//! (the signing key's fingerprint is openssl's), and each problem an
//! operator meets — a certificate about to expire or not matching its key,
//! a role without pg_monitor, pg_stat_statements not preloaded, a home
//! owned by another user, an unreachable UI, PostgreSQL down, a broken
//! configuration — is a WARN or FAIL line with its fix, and the exit status
//! says the worst (0 OK, 1 FAIL, 2 WARN).

mod common;

use std::process::Command;

use common::*;

/// (status, what, found) of each line, the whole text and the exit status.
fn doctor(files: &AgentFiles) -> (Vec<(String, String, String)>, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_temboard-agent"))
        .arg("--configfile")
        .arg(files.conf())
        .arg("doctor")
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = text
        .lines()
        .filter(|l| ["OK  ", "WARN", "FAIL"].iter().any(|t| l.starts_with(t)))
        .map(|l| {
            let (status, rest) = l.split_at(4);
            let rest = rest.trim_start();
            let (what, found) = rest.split_at(rest.len().min(13));
            (
                status.trim().to_string(),
                what.trim().to_string(),
                found.trim().to_string(),
            )
        })
        .collect();
    (lines, text, out.status.code().unwrap_or(-1))
}

fn line<'a>(
    lines: &'a [(String, String, String)],
    what: &str,
    status: &str,
) -> &'a (String, String, String) {
    lines
        .iter()
        .find(|(s, w, _)| w == what && s == status)
        .unwrap_or_else(|| panic!("no {status} {what} line in {lines:#?}"))
}

/// The exit status the lines call for.
fn worst(lines: &[(String, String, String)]) -> i32 {
    if lines.iter().any(|l| l.0 == "FAIL") {
        1
    } else if lines.iter().any(|l| l.0 == "WARN") {
        2
    } else {
        0
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A new RSA private key at `path` (PEM).
fn rsa_key(path: &std::path::Path) {
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path.to_str().unwrap(),
    ]);
}

/// The public key of `private` at `path` (PEM).
fn public_of(private: &std::path::Path, path: &std::path::Path) {
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn a_healthy_host_is_all_ok() {
    let pg = PgCluster::start_with("-c shared_preload_libraries=pg_stat_statements");
    pg.client()
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .unwrap();
    let mut files = AgentFiles::new(Some(&pg));
    let etc = files.etc();
    let private = etc.join("ui.pem");
    let public = etc.join("signing-public.pem");
    rsa_key(&private);
    public_of(&private, &public);
    files.set("temboard", "signing_public_key", public.to_str().unwrap());
    files.set(
        "temboard",
        "plugins",
        r#"["activity", "monitoring", "statements"]"#,
    );
    files.write();
    let (lines, text, code) = doctor(&files);
    for what in [
        "configuration",
        "tls",
        "signing key",
        "users",
        "postgresql",
        "privileges",
        "statements",
        "home",
        "run",
        "ui",
    ] {
        line(&lines, what, "OK");
    }
    assert!(!lines.iter().any(|l| l.0 == "FAIL"), "{text}");
    // Only the machine's free space may warn here.
    assert!(lines.iter().all(|l| l.0 == "OK" || l.1 == "disk"), "{text}");
    assert_eq!(code, worst(&lines), "{text}");
    // The fingerprint is what openssl prints on the UI's host.
    let der = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl pkey -pubin -in {} -outform DER | sha256sum",
            public.display()
        ))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&der.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        line(&lines, "signing key", "OK").2.contains(&fp),
        "{fp} not in {text}"
    );
    assert!(
        line(&lines, "statements", "OK")
            .2
            .contains("preloaded and created in postgres"),
        "{text}"
    );
}

#[test]
fn each_problem_is_a_line_with_its_fix() {
    let mut pg = PgCluster::start();
    pg.client()
        .batch_execute("CREATE ROLE watcher LOGIN")
        .unwrap();
    let mut files = AgentFiles::new(Some(&pg));
    let etc = files.etc();
    // A certificate that expires in 10 days, with its key.
    let (cert, key) = (etc.join("soon.pem"), etc.join("soon.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "10",
        "-subj",
        "/CN=localhost",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    files.set("temboard", "ssl_cert_file", cert.to_str().unwrap());
    files.set("temboard", "ssl_key_file", key.to_str().unwrap());
    files.set("postgresql", "user", "watcher");
    files.set("temboard", "plugins", r#"["activity", "statements"]"#);
    files.set(
        "temboard",
        "ui_url",
        &format!("https://127.0.0.1:{}", free_port()),
    );
    files.write();
    let (lines, text, code) = doctor(&files);
    let tls = line(&lines, "tls", "WARN");
    assert!(
        tls.2.contains("expires in 9 days") || tls.2.contains("expires in 10 days"),
        "{text}"
    );
    assert!(text.contains("fix: renew the certificate"), "{text}");
    assert!(
        line(&lines, "privileges", "WARN")
            .2
            .contains("neither a superuser nor a member of pg_monitor"),
        "{text}"
    );
    assert!(text.contains("fix: GRANT pg_monitor TO watcher"), "{text}");
    // watcher may not see shared_preload_libraries: the extension is
    // looked for, and missing.
    assert!(
        line(&lines, "statements", "FAIL")
            .2
            .contains("not created in postgres"),
        "{text}"
    );
    assert!(
        text.contains("fix: CREATE EXTENSION pg_stat_statements in postgres"),
        "{text}"
    );
    assert!(
        line(&lines, "ui", "FAIL").2.contains("cannot reach"),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");

    // A home anyone may write to (a home the workers' user cannot write
    // is refused by the configuration itself); PostgreSQL stopped.
    std::fs::set_permissions(
        files.home(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    pg.stop();
    let (lines, text, code) = doctor(&files);
    assert!(
        line(&lines, "postgresql", "FAIL")
            .2
            .contains("cannot connect as watcher@"),
        "{text}"
    );
    assert!(
        line(&lines, "home", "WARN").2.contains("mode 777"),
        "{text}"
    );
    assert!(
        text.contains(&format!("fix: chmod go-w {}", files.home().display())),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");

    // A key of another pair: the configuration itself is refused (the
    // agent would not start), and said first.
    let other = etc.join("other.key");
    rsa_key(&other);
    files.set("temboard", "ssl_key_file", other.to_str().unwrap());
    files.write();
    let (lines, text, code) = doctor(&files);
    assert_eq!(lines.len(), 1, "{text}");
    line(&lines, "configuration", "FAIL");
    assert!(
        text.contains("[temboard] ssl_key_file") && text.contains("does not go with certificate"),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");
}

#[test]
fn a_broken_configuration_fails_first_naming_the_key() {
    let mut files = AgentFiles::new(None);
    files.set("temboard", "port", "port-eighty");
    files.write();
    let (lines, text, code) = doctor(&files);
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0].0, "FAIL");
    assert_eq!(lines[0].1, "configuration");
    assert!(
        text.contains("port") && text.contains("port-eighty"),
        "{text}"
    );
    assert_eq!(code, 1);
}

#[test]
fn the_ui_its_clock_and_its_key_are_checked() {
    let mut files = AgentFiles::new(None);
    let etc = files.etc();
    let (private, public) = (etc.join("ui.pem"), etc.join("signing-public.pem"));
    rsa_key(&private);
    public_of(&private, &public);
    files.set("temboard", "signing_public_key", public.to_str().unwrap());
    files.set("temboard", "ssl_ca_cert_file", "server.pem");
    let record = files.dir.path().join("instances.jsonl");

    // The UI serves the key the agent has, on time.
    let ui = UiStandin::start(&files, &public, &record);
    files.set("temboard", "ui_url", &ui.url);
    files.write();
    let (lines, text, _) = doctor(&files);
    assert!(
        line(&lines, "ui", "OK").2.contains("answers; clocks"),
        "{text}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.1 == "ui clock" || (l.1 == "signing key" && l.0 != "OK")),
        "{text}"
    );
    drop(ui);

    // Ten minutes off: signed requests would be refused.
    let ui = UiStandin::start_with_clock(&files, &public, &record, 600);
    files.set("temboard", "ui_url", &ui.url);
    files.write();
    let (lines, text, code) = doctor(&files);
    assert!(
        line(&lines, "ui clock", "FAIL")
            .2
            .contains("signed requests are refused past 300 s"),
        "{text}"
    );
    assert_eq!(code, 1);
    drop(ui);

    // The UI's key is another one than the agent's.
    let other = etc.join("other-public.pem");
    let other_private = etc.join("other.pem");
    rsa_key(&other_private);
    public_of(&other_private, &other);
    let ui = UiStandin::start(&files, &other, &record);
    files.set("temboard", "ui_url", &ui.url);
    files.write();
    let (lines, text, _) = doctor(&files);
    line(&lines, "signing key", "FAIL");
    assert!(
        text.contains("fix: temboard-agent fetch-key --force"),
        "{text}"
    );
}
