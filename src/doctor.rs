//! `temboard-agent doctor`: one command an operator runs on a host to see
//! whether this agent can work, each line `OK`, `WARN` or `FAIL` with the
//! fix: the configuration, the TLS pair and its expiry, PostgreSQL with the
//! configured role and what that role may read, `pg_stat_statements`, how
//! clients authenticate (the UI's key fingerprint, the users file), the UI
//! and its clock, the home and run directories' owners and modes, free
//! disk. Exit status 0 when all is OK, 1 when something fails, 2 when
//! something only warns (as `show-config`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::{self, Config, LoadRequest};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but should be mended.
    Warn,
    /// Does not work.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    /// How it ended.
    pub status: Status,
    /// What was checked (`tls`, `postgresql`...).
    pub what: &'static str,
    /// What was found.
    pub found: String,
    /// What to do, when not OK.
    pub fix: Option<String>,
}

fn ok(what: &'static str, found: impl Into<String>) -> Line {
    Line {
        status: Status::Ok,
        what,
        found: found.into(),
        fix: None,
    }
}

fn warn(what: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Line {
    Line {
        status: Status::Warn,
        what,
        found: found.into(),
        fix: Some(fix.into()),
    }
}

fn fail(what: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Line {
    Line {
        status: Status::Fail,
        what,
        found: found.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check, prints the report, returns the exit status.
pub fn run(req: &LoadRequest) -> i32 {
    let lines = check(req);
    for l in &lines {
        let tag = match l.status {
            Status::Ok => "OK  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("{tag}  {:<13} {}", l.what, l.found);
        if let Some(fix) = &l.fix {
            println!("      {:<13} fix: {fix}", "");
        }
    }
    match lines.iter().map(|l| l.status).max() {
        Some(Status::Fail) => 1,
        Some(Status::Warn) => 2,
        _ => 0,
    }
}

/// Every check's line, in the order an operator mends them.
pub fn check(req: &LoadRequest) -> Vec<Line> {
    let loaded = match config::load(req) {
        Ok(l) => l,
        Err(e) => {
            return vec![fail(
                "configuration",
                format!("{} is invalid:\n{e}", req.configfile.display()),
                "mend the file, line and key named above (temboard-agent --configfile FILE show-config checks it again)",
            )]
        }
    };
    let c = &loaded.config;
    let mut out = vec![if loaded.warnings.is_empty() {
        ok(
            "configuration",
            format!(
                "{} is valid (plugins: {})",
                c.configfile.display(),
                c.temboard.plugins.join(", ")
            ),
        )
    } else {
        warn(
            "configuration",
            format!(
                "{} is valid with warnings: {}",
                c.configfile.display(),
                loaded.warnings.join("; ")
            ),
            "a misspelt key or section is not in force: correct it",
        )
    }];
    out.extend(tls(c));
    out.extend(authentication(c));
    out.extend(postgresql(c));
    out.extend(directories(c));
    out.push(disk(&c.temboard.home));
    out.extend(ui(c));
    out
}

fn tls(c: &Config) -> Vec<Line> {
    let (cert, key) = (&c.temboard.ssl_cert_file, &c.temboard.ssl_key_file);
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let (cert_pem, key_pem) = match (read(cert), read(key)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return vec![fail(
                "tls",
                format!("cannot read {e}"),
                "run doctor as root or as the agent's user; [temboard] ssl_cert_file and ssl_key_file must name readable PEM files",
            )]
        }
    };
    let material = crate::tls::TlsMaterial {
        cert_pem: cert_pem.clone(),
        key_pem,
    };
    let mut out = vec![];
    if let Err(e) = crate::tls::acceptor(&material) {
        out.push(fail(
            "tls",
            format!("{} and {} do not make a pair: {e}", cert.display(), key.display()),
            "give the key the certificate was issued for (or temboard-agent generate-cert for a new pair)",
        ));
        return out;
    }
    match expiry_days(&cert_pem) {
        Ok((days, when)) if days < 0 => out.push(fail(
            "tls",
            format!("certificate expired on {when}"),
            "renew the certificate, then reload the agent (systemctl reload)",
        )),
        Ok((days, when)) if days < 30 => out.push(warn(
            "tls",
            format!("certificate and key match; the certificate expires in {days} days ({when})"),
            "renew the certificate before it expires, then reload the agent",
        )),
        Ok((days, when)) => out.push(ok(
            "tls",
            format!("certificate and key match; the certificate expires in {days} days ({when})"),
        )),
        Err(e) => out.push(fail(
            "tls",
            format!("certificate: {e}"),
            "give a PEM certificate",
        )),
    }
    if let Ok(m) = std::fs::metadata(key) {
        if m.permissions().mode() & 0o077 != 0 {
            out.push(warn(
                "tls",
                format!(
                    "{} is readable by others (mode {:o})",
                    key.display(),
                    m.permissions().mode() & 0o777
                ),
                format!("chmod 600 {}", key.display()),
            ));
        }
    }
    out
}

/// Days until the first certificate's `notAfter`, and that date.
fn expiry_days(pem: &str) -> Result<(i32, String), String> {
    let cert = openssl::x509::X509::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let now = openssl::asn1::Asn1Time::days_from_now(0).map_err(|e| e.to_string())?;
    let diff = now.diff(cert.not_after()).map_err(|e| e.to_string())?;
    let days = if diff.days == 0 && diff.secs < 0 {
        -1
    } else {
        diff.days
    };
    Ok((days, cert.not_after().to_string()))
}

fn authentication(c: &Config) -> Vec<Line> {
    let mut out = vec![];
    if let Some(path) = &c.temboard.signing_public_key {
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| crate::signing::PublicKey::from_pem(&pem))
        {
            Ok(k) => out.push(ok(
                "signing key",
                format!(
                    "{}: RSA {} bits, fingerprint {} (compare with the UI's)",
                    path.display(),
                    k.bits(),
                    k.fingerprint()
                ),
            )),
            Err(e) => out.push(fail(
                "signing key",
                format!("{}: {e}", path.display()),
                "temboard-agent fetch-key writes the UI's key there",
            )),
        }
    }
    if let Some(path) = &c.temboard.users {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let n = text
                    .lines()
                    .filter(|l| l.contains(':') && !l.trim_start().starts_with('#'))
                    .count();
                if n == 0 {
                    out.push(warn(
                        "users",
                        format!("{} holds no user", path.display()),
                        "temboard-agent-adduser adds one (2.x UI logins)",
                    ));
                } else {
                    out.push(ok(
                        "users",
                        format!("{}: {n} users (2.x UI logins)", path.display()),
                    ));
                }
            }
            Err(e) => out.push(fail(
                "users",
                format!("{}: {e}", path.display()),
                "temboard-agent-adduser creates it",
            )),
        }
    }
    if out.is_empty() {
        out.push(fail(
            "authentication",
            "neither [temboard] signing_public_key nor users is set: no UI can log in",
            "temboard-agent fetch-key (temBoard 8 and later) or temboard-agent-adduser (2.x)",
        ));
    }
    out
}

fn postgresql(c: &Config) -> Vec<Line> {
    let p = &c.postgresql;
    let target = format!("{}@{}:{}/{}", p.user, p.host, p.port, p.dbname);
    let mut client = match crate::pg::pg_config(p).connect(postgres::NoTls) {
        Ok(client) => client,
        Err(e) => {
            return vec![fail(
                "postgresql",
                format!("cannot connect as {target}: {}", crate::pg::describe(&e)),
                "check that PostgreSQL runs, [postgresql] host, port, user, password and pg_hba.conf for that role",
            )]
        }
    };
    let mut out = vec![];
    let facts = client.query_one(
        "SELECT current_setting('server_version'), r.rolsuper,
                pg_has_role('pg_monitor', 'USAGE'), pg_has_role('pg_read_all_settings', 'USAGE'),
                (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries')
         FROM pg_roles r WHERE r.rolname = current_user",
        &[],
    );
    let preload = match facts {
        Ok(r) => {
            let (version, superuser, monitor, settings): (String, bool, bool, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            out.push(ok(
                "postgresql",
                format!("connected as {target}, PostgreSQL {version}"),
            ));
            if superuser {
                out.push(ok(
                    "privileges",
                    format!("{} is a superuser: every page and action works", p.user),
                ));
            } else if monitor {
                out.push(warn(
                    "privileges",
                    format!("{} is not a superuser but has pg_monitor (settings: {settings}): activity, monitoring and risks read everything; settings, pg_hba and maintenance actions need more", p.user),
                    "fine for monitoring only; ALTER ROLE … SUPERUSER for the administration pages",
                ));
            } else {
                out.push(warn(
                    "privileges",
                    format!("{} is neither a superuser nor a member of pg_monitor: other sessions' queries, the data directory and several risks are hidden", p.user),
                    format!("GRANT pg_monitor TO {}", p.user),
                ));
            }
            // Hidden from roles without pg_read_all_settings.
            r.get::<_, Option<String>>(4)
        }
        Err(e) => {
            out.push(fail(
                "postgresql",
                format!("connected as {target} but: {}", crate::pg::describe(&e)),
                "check the role's rights",
            ));
            return out;
        }
    };
    if c.has_plugin("statements") {
        let dbname = c
            .sections
            .get("statements")
            .and_then(|s| s["dbname"].as_str())
            .unwrap_or("postgres")
            .to_string();
        let loaded = preload
            .as_deref()
            .map(|p| p.split(',').any(|l| l.trim() == "pg_stat_statements"));
        let mut q = p.clone();
        q.dbname = dbname.clone();
        let created = crate::pg::pg_config(&q)
            .connect(postgres::NoTls)
            .and_then(|mut db| {
                db.query_opt(
                    "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'",
                    &[],
                )
            })
            .map(|r| r.map(|r| r.get::<_, String>(0)));
        out.push(match (loaded, created) {
            (Some(true), Ok(Some(v))) => ok("statements", format!("pg_stat_statements {v} preloaded and created in {dbname}")),
            (None, Ok(Some(v))) => warn(
                "statements",
                format!("pg_stat_statements {v} is created in {dbname}; whether it is preloaded is hidden from {}", p.user),
                format!("GRANT pg_read_all_settings TO {} (or pg_monitor)", p.user),
            ),
            (Some(false), _) => fail(
                "statements",
                "pg_stat_statements is not in shared_preload_libraries",
                "add it to shared_preload_libraries and restart PostgreSQL",
            ),
            (_, Ok(None)) => fail(
                "statements",
                format!(
                    "pg_stat_statements is not created in {dbname} ({})",
                    if loaded.is_some() { "it is preloaded" } else { "whether it is preloaded is hidden from this role" }
                ),
                format!("CREATE EXTENSION pg_stat_statements in {dbname} ([statements] dbname)"),
            ),
            (_, Err(e)) => fail("statements", format!("cannot read {dbname}: {}", crate::pg::describe(&e)), "check [statements] dbname"),
        });
    }
    out
}

fn directories(c: &Config) -> Vec<Line> {
    let home = &c.temboard.home;
    let identity = match crate::privileges::worker_identity(c.temboard.user.as_deref(), home) {
        Ok(i) => i,
        Err(e) => {
            return vec![fail(
                "home",
                format!("{}: {e}", home.display()),
                "create it, owned by the agent's user (temboard-agent setup does)",
            )]
        }
    };
    let mut out = vec![];
    for (what, dir, private) in [("home", home.clone(), false), ("run", c.run_dir(), true)] {
        let m = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if what == "run" && e.kind() == std::io::ErrorKind::NotFound => {
                out.push(ok(
                    "run",
                    format!("{} is made when the agent starts", dir.display()),
                ));
                continue;
            }
            Err(e) => {
                out.push(fail(
                    what,
                    format!("{}: {e}", dir.display()),
                    "create it, owned by the agent's user",
                ));
                continue;
            }
        };
        let mode = m.permissions().mode() & 0o777;
        if m.file_type().is_symlink() || !m.is_dir() {
            out.push(fail(
                what,
                format!("{} is not a directory", dir.display()),
                "make it a real directory (no link)",
            ));
        } else if m.uid() != identity.uid {
            out.push(fail(
                what,
                format!(
                    "{} is owned by uid {}, the workers run as {} (uid {})",
                    dir.display(),
                    m.uid(),
                    identity.name,
                    identity.uid
                ),
                format!("chown {} {}", identity.name, dir.display()),
            ));
        } else if mode & 0o022 != 0 || (private && mode & 0o077 != 0) {
            out.push(warn(
                what,
                format!("{} has mode {mode:o}", dir.display()),
                format!(
                    "chmod {} {}",
                    if private { "700" } else { "go-w" },
                    dir.display()
                ),
            ));
        } else {
            out.push(ok(
                what,
                format!(
                    "{} owned by {}, mode {mode:o}",
                    dir.display(),
                    identity.name
                ),
            ));
        }
    }
    out
}

fn disk(home: &Path) -> Line {
    match nix::sys::statvfs::statvfs(home) {
        Ok(s) => {
            let frag = s.fragment_size() as f64;
            let free = s.blocks_available() as f64 * frag;
            let total = (s.blocks() as f64 * frag).max(1.0);
            let pct = free / total * 100.0;
            let found = format!(
                "{:.1} GB free ({pct:.1} %) where {} is",
                free / 1e9,
                home.display()
            );
            if free < 100e6 || pct < 1.0 {
                fail(
                    "disk",
                    found,
                    "free space: the state database cannot write (sessions, history, tasks)",
                )
            } else if free < 1e9 || pct < 5.0 {
                warn(
                    "disk",
                    found,
                    "free space before the state database cannot write",
                )
            } else {
                ok("disk", found)
            }
        }
        Err(e) => fail(
            "disk",
            format!("{}: {e}", home.display()),
            "create the home directory",
        ),
    }
}

fn ui(c: &Config) -> Vec<Line> {
    let Some(url) = &c.temboard.ui_url else {
        return vec![ok(
            "ui",
            "no [temboard] ui_url (not registered with a 9.x UI from here)",
        )];
    };
    let trust = crate::ui9::trust(c.temboard.ssl_ca_cert_file.clone(), false);
    let client = match crate::http_client::ui_agent(&trust) {
        Ok(a) => a,
        Err(e) => return vec![fail("ui", e, "check [temboard] ssl_ca_cert_file")],
    };
    let target = format!("{url}/signing.key");
    let mut resp = match client.get(&target).call() {
        Ok(r) => r,
        Err(e) => {
            return vec![fail(
            "ui",
            format!("cannot reach {target}: {e}"),
            "check [temboard] ui_url, the network, and ssl_ca_cert_file for the UI's certificate",
        )]
        }
    };
    let date = resp
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok());
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    let mut out = vec![];
    match date {
        Some(d) => {
            let skew = (chrono::Utc::now() - d.with_timezone(&chrono::Utc)).num_seconds();
            let limit = crate::signing::MAX_SKEW.num_seconds();
            if skew.abs() > limit {
                out.push(fail(
                    "ui clock",
                    format!("this host's clock is {skew} s off the UI's: signed requests are refused past {limit} s"),
                    "synchronize both clocks (chrony, systemd-timesyncd)",
                ));
            } else if skew.abs() > 30 {
                out.push(warn(
                    "ui clock",
                    format!("this host's clock is {skew} s off the UI's"),
                    "synchronize both clocks",
                ));
            } else {
                out.push(ok("ui", format!("{url} answers; clocks {skew} s apart")));
            }
        }
        None => out.push(warn(
            "ui",
            format!("{url} answers without a Date header"),
            "compare both hosts' clocks by hand",
        )),
    }
    if let (Some(path), Ok(theirs)) = (
        &c.temboard.signing_public_key,
        crate::signing::PublicKey::from_pem(&body),
    ) {
        let ours = std::fs::read_to_string(path)
            .ok()
            .and_then(|p| crate::signing::PublicKey::from_pem(&p).ok())
            .map(|k| k.fingerprint());
        if ours.as_deref() != Some(theirs.fingerprint().as_str()) {
            out.push(fail(
                "signing key",
                format!(
                    "the UI's key ({}) is not {}",
                    theirs.fingerprint(),
                    path.display()
                ),
                "temboard-agent fetch-key --force, then reload the agent",
            ));
        }
    }
    out
}
