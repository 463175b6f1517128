//! The one HTTPS client configuration of the agent's outgoing calls (the
//! collector push, the registration tool): verify against a given CA file, or
//! — as the 2.x agent always did — not at all when none is given.

use std::path::Path;
use std::time::Duration;

/// A client verifying the server against `ca` (PEM), or not verifying without it.
pub fn agent(ca: Option<&Path>) -> Result<ureq::Agent, String> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let tls = match ca {
        Some(path) => {
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
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build()
        }
        None => TlsConfig::builder().disable_verification(true).build(),
    };
    let config = ureq::config::Config::builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// The `error` of a temBoard JSON error body, else the start of the body.
pub fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}
