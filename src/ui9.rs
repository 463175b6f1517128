//! Operator commands for a temBoard 9.x UI (facts 9.x 11.1–11.2):
//! `fetch-key` gets the UI's signing key, `register` registers this agent in
//! the UI. Both read `[temboard] ui_url`.
//!
//! The key fetched controls the agent (whoever holds its private half can
//! run every signed route), and `register` sends the UI password: so the UI
//! is verified, against `[temboard] ssl_ca_cert_file` when set, else the
//! system's roots (9.0.1 verified nothing without a CA file, and took
//! `http://`). `http://` and unverified TLS only with `--insecure`, which
//! says so and prints the key's fingerprint to compare with the UI's; the
//! fingerprint is printed in every case.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::{self, LoadRequest};
use crate::http_client::{agent, error_of, ui_agent, UiTrust};

/// An operator command's failure: the one line printed, exit status 1.
pub type Outcome = Result<(), String>;

/// Where the signing key goes: `[temboard] signing_public_key` resolved
/// against the configuration's directory, even when the file does not
/// exist yet (then the loaded configuration has it off).
fn key_path(req: &LoadRequest) -> Result<PathBuf, String> {
    let raw = config::raw_values(req, &[("temboard", "signing_public_key")])
        .map_err(|e| format!("invalid configuration:\n{e}"))?;
    let value = raw
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_else(|| "signing-public.pem".into());
    let p = PathBuf::from(&value);
    Ok(if p.is_absolute() {
        p
    } else {
        req.configfile
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(p)
    })
}

/// `[temboard] ui_url` and how to trust it: `http://` is refused unless
/// `insecure`.
fn ui(
    req: &LoadRequest,
    override_url: Option<&str>,
    accepts_option: bool,
    insecure: bool,
) -> Result<(String, UiTrust), String> {
    let raw = config::raw_values(
        req,
        &[("temboard", "ui_url"), ("temboard", "ssl_ca_cert_file")],
    )
    .map_err(|e| format!("invalid configuration:\n{e}"))?;
    let url = override_url
        .map(str::to_string)
        .or_else(|| raw[0].clone())
        .filter(|u| !u.is_empty())
        .ok_or(if accepts_option {
            "[temboard] ui_url is not set: set it (or pass --ui-url) to the temBoard UI's URL"
        } else {
            "[temboard] ui_url is not set: set it to the temBoard UI's URL"
        })?;
    check_scheme(&url, insecure)?;
    let ca = raw[1].clone().filter(|c| !c.is_empty()).map(|c| {
        let p = PathBuf::from(&c);
        if p.is_absolute() {
            p
        } else {
            req.configfile
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(p)
        }
    });
    Ok((url.trim_end_matches('/').to_string(), trust(ca, insecure)))
}

/// An https URL, or an http one with `insecure`.
pub fn check_scheme(url: &str, insecure: bool) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if url.starts_with("http://") {
        if insecure {
            return Ok(());
        }
        return Err(format!(
            "refusing '{url}': over http:// the UI's signing key (which controls this agent) and the UI password would cross the network unprotected; use the UI's https:// URL, or --insecure and compare the key's fingerprint with the UI's"
        ));
    }
    Err(format!("'{url}' is not an http(s) URL"))
}

/// How to trust the UI: `--insecure`, else the CA file, else the system.
pub fn trust(ca: Option<PathBuf>, insecure: bool) -> UiTrust {
    match (insecure, ca) {
        (true, _) => UiTrust::Insecure,
        (false, Some(ca)) => UiTrust::CaFile(ca),
        (false, None) => UiTrust::System,
    }
}

/// What is printed with a key fetched from a UI: its fingerprint, how to
/// compare it, and a warning when the UI was not verified (on stderr).
pub fn describe_key(url: &str, pem: &str, trust: &UiTrust) -> String {
    let fp = crate::signing::PublicKey::from_pem(pem)
        .map(|k| k.fingerprint())
        .unwrap_or_else(|_| "unknown".into());
    if *trust == UiTrust::Insecure {
        eprintln!(
            "WARNING: the key of {url} was fetched without verifying the UI (--insecure): anyone on the path could have sent theirs. Compare its fingerprint with the UI's before starting the agent."
        );
    }
    format!(
        "Key fingerprint (SHA-256 of the public key): {fp}
  compare on the UI host: openssl pkey -pubin -in <the UI's signing public key> -outform DER | sha256sum"
    )
}

/// GETs `<ui_url>/signing.key` (the full URL, path kept: facts 14 row 32),
/// trusting the UI as `trust` says.
pub fn download_key(url: &str, trust: &UiTrust) -> Result<String, String> {
    let client = ui_agent(trust)?;
    let target = format!("{url}/signing.key");
    let mut resp = client
        .get(&target)
        .call()
        .map_err(|e| unreachable_ui(&target, &e, trust))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read {target}: {e}"))?;
    if status != 200 {
        return Err(format!("{target} answered {status}: {}", error_of(&body)));
    }
    crate::signing::PublicKey::from_pem(&body)
        .map_err(|e| format!("{target} did not give a public key: {e}"))?;
    Ok(body)
}

/// Why the UI could not be reached; a certificate refused says what to do.
fn unreachable_ui(target: &str, e: &ureq::Error, trust: &UiTrust) -> String {
    let text = e.to_string();
    let tls = matches!(e, ureq::Error::Rustls(_)) || text.contains("certificate");
    match trust {
        UiTrust::System if tls => format!(
            "cannot fetch {target}: {text}
  the UI's certificate was checked against the system's roots: set [temboard] ssl_ca_cert_file to the CA that signed it, or use --insecure and compare the key's fingerprint with the UI's"
        ),
        UiTrust::CaFile(ca) if tls => format!(
            "cannot fetch {target}: {text}
  the UI's certificate was checked against {} ([temboard] ssl_ca_cert_file)",
            ca.display()
        ),
        _ => format!("cannot fetch {target}: {text}"),
    }
}

/// `temboard-agent fetch-key [--force] [--insecure]`: writes the UI's
/// public key atomically (0644: it is public), refusing to replace a
/// different key without `--force`, and prints its fingerprint. Reload the
/// agent afterwards (SIGHUP) to use it.
pub fn fetch_key(req: &LoadRequest, force: bool, insecure: bool) -> Outcome {
    let (url, trust) = ui(req, None, false, insecure)?;
    let path = key_path(req)?;
    let pem = download_key(&url, &trust)?;
    println!("{}", describe_key(&url, &pem, &trust));
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == pem => {
            println!("{} is already the key of {url}.", path.display());
            return Ok(());
        }
        Ok(_) if !force => {
            return Err(format!(
                "{} exists. Use --force to overwrite.",
                path.display()
            ))
        }
        _ => {}
    }
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    println!(
        "Wrote the signing key of {url} to {}. Reload the agent to use it (systemctl reload, or SIGHUP).",
        path.display()
    );
    Ok(())
}

/// `temboard-agent discover`: reads PostgreSQL and the host now and prints
/// the 9.x discover document (2-space JSON) and its ETag — what the running
/// agent answers a signed `GET /discover` with, read fresh at each request.
/// Exit 0 with an empty `postgres` section when PostgreSQL is down (as 9.x,
/// which then keeps the previous one), saying why on stderr.
pub fn discover(req: &LoadRequest) -> Outcome {
    let loaded = config::load(req).map_err(|e| {
        format!(
            "invalid configuration:
{e}"
        )
    })?;
    let c = &loaded.config;
    let postgres = match crate::pg::pg_config(&c.postgresql)
        .connect(postgres::NoTls)
        .and_then(|mut client| crate::workers::probe::discover::postgres(&mut client))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("temboard-agent: PostgreSQL: {}", crate::pg::describe(&e));
            json!({})
        }
    };
    let fqdn = c
        .temboard
        .hostname
        .clone()
        .unwrap_or_else(crate::host::system_fqdn);
    let (doc, etag) = crate::discover9::document(postgres, &fqdn, c);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    println!("{text}");
    eprintln!("ETag: {etag}");
    Ok(())
}

/// Options of `register`.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// Agent address as the UI reaches it (default: the host's FQDN).
    pub host: Option<String>,
    /// Agent port (default `[temboard] port`).
    pub port: Option<u16>,
    /// UI environment (group) of the instance.
    pub environment: Option<String>,
    /// UI URL (default `[temboard] ui_url`).
    pub ui_url: Option<String>,
    /// `http://` and unverified TLS allowed (`--insecure`).
    pub insecure: bool,
}

/// Asks until the answer is valid (9.x re-asks after `Invalid ...`).
fn ask(
    prompt: &str,
    secret: bool,
    valid: fn(&str) -> bool,
    invalid: &str,
) -> Result<String, String> {
    loop {
        let v = crate::cli::prompt(prompt, secret)?;
        if valid(&v) {
            return Ok(v);
        }
        println!("{invalid}");
    }
}

/// `temboard-agent register`: registers this agent in a temBoard 9.x UI
/// (facts 11.2): the agent's discover document, the UI's key compared with
/// ours, login, `POST /json/instances`.
pub fn register(req: &LoadRequest, o: &RegisterOptions) -> Outcome {
    let loaded = config::load(req).map_err(|e| format!("invalid configuration:\n{e}"))?;
    let c = &loaded.config;
    let (url, trust) = ui(req, o.ui_url.as_deref(), true, o.insecure)?;
    let host = o
        .host
        .clone()
        .or_else(|| c.temboard.hostname.clone())
        .unwrap_or_else(crate::host::system_fqdn);
    let port = o.port.unwrap_or(c.temboard.port);
    // 1. The agent's own discover document, as the UI will see it (the
    //    9.x shape: a signing date marks a 9.x request; unsigned is fine).
    let to_agent = agent(None)?;
    let discover_url = format!("https://{host}:{port}/discover");
    let mut resp = to_agent
        .get(&discover_url)
        .header(
            "X-TemBoard-Date",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
        )
        .call()
        .map_err(|e| format!("cannot reach the agent at {discover_url}: {e}"))?;
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{discover_url}: {e}"))?;
    let mut discover: Value =
        serde_json::from_str(&text).map_err(|e| format!("{discover_url}: not JSON: {e}"))?;
    if let Value::Object(m) = &mut discover {
        m.remove("signature_status");
    }
    // 2. The UI's key must be ours.
    let theirs = download_key(&url, &trust)?;
    println!("{}", describe_key(&url, &theirs, &trust));
    let ours = c
        .temboard
        .signing_public_key
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if theirs != ours {
        return Err(format!(
            "Agent {host}:{port} is not configured with UI {url} signing key.\nSignature mismatch. Run temboard-agent fetch-key, then reload the agent."
        ));
    }
    // 3. UI credentials.
    let user = match std::env::var("TEMBOARD_UI_USER")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(u) => u,
        None => ask(
            " Username: ",
            false,
            crate::users::valid_username,
            "Invalid username.",
        )?,
    };
    let password = match std::env::var("TEMBOARD_UI_PASSWORD")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(p) => p,
        None => ask(
            " Password: ",
            true,
            crate::users::valid_password,
            "Invalid password.",
        )?,
    };
    // 4. Login.
    let to_ui = ui_agent(&trust)?;
    let login_url = format!("{url}/json/login");
    let mut resp = to_ui
        .post(&login_url)
        .header("Content-Type", "application/json")
        .send(json!({"username": user, "password": password}).to_string())
        .map_err(|e| format!("cannot reach {login_url}: {e}"))?;
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        return Err(format!("UI returned error: {status}: {}", error_of(&body)));
    }
    let cookie = cookie.ok_or("the UI did not open a session (no Set-Cookie)")?;
    // 5. Register.
    let plugins = discover["temboard"]["plugins"].clone();
    let instances = format!("{url}/json/instances");
    let mut resp = to_ui
        .post(&instances)
        .header("Content-Type", "application/json")
        .header("Cookie", &cookie)
        .send(
            json!({
                "agent_address": host,
                "agent_port": port.to_string(),
                "discover": discover,
                "discover_etag": etag,
                "notify": true,
                "comment": "",
                "plugins": plugins,
                "environment": o.environment,
            })
            .to_string(),
        )
        .map_err(|e| format!("cannot reach {instances}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        return Err(format!("UI returned error: {status}: {}", error_of(&body)));
    }
    println!("Instance registered. Manage it at {url}/server/{host}/{port}/dashboard.");
    Ok(())
}
