//! The HTTPS client configurations of the agent's outgoing calls: the
//! collector push (verified against a given CA file or — as the 2.x agent
//! always did — not at all without one), and the operator commands that
//! talk to a temBoard 9.x UI ([`UiTrust`]: verified unless the operator says
//! `--insecure`, because what they fetch controls the agent).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig};

/// The certificates of a PEM CA file.
fn ca_roots(path: &Path) -> Result<RootCerts, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// The system's trusted roots (the distribution's bundle, `SSL_CERT_FILE`
/// or `SSL_CERT_DIR` when set); Mozilla's roots as built in when the system
/// has none.
fn system_roots() -> RootCerts {
    let found = rustls_native_certs::load_native_certs();
    let certs: Vec<_> = found
        .certs
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    }
}

fn client(tls: TlsConfig) -> ureq::Agent {
    let config = ureq::config::Config::builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// A client verifying the server against `ca` (PEM), or not verifying without it.
pub fn agent(ca: Option<&Path>) -> Result<ureq::Agent, String> {
    let tls = match ca {
        Some(path) => TlsConfig::builder().root_certs(ca_roots(path)?).build(),
        None => TlsConfig::builder().disable_verification(true).build(),
    };
    Ok(client(tls))
}

/// How an operator command trusts the temBoard UI it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiTrust {
    /// Verified against this CA file (`[temboard] ssl_ca_cert_file`).
    CaFile(PathBuf),
    /// Verified against the system's roots.
    System,
    /// Not verified, `http://` allowed: only with `--insecure`.
    Insecure,
}

/// A client for the UI, verifying as `trust` says.
pub fn ui_agent(trust: &UiTrust) -> Result<ureq::Agent, String> {
    let tls = match trust {
        UiTrust::CaFile(path) => TlsConfig::builder().root_certs(ca_roots(path)?).build(),
        UiTrust::System => TlsConfig::builder().root_certs(system_roots()).build(),
        UiTrust::Insecure => TlsConfig::builder().disable_verification(true).build(),
    };
    Ok(client(tls))
}

/// The `error` of a temBoard JSON error body, else the start of the body.
pub fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}
