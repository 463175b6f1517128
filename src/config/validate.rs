//! Turning raw values into a typed [`Config`], collecting every error at once.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use super::catalog;
use super::layers::Layers;
use super::schema;
use super::types::{
    Config, ConfigError, DebugLoggers, LogLevel, LogMethod, LoggingSection, PostgresqlSection,
    Source, TemboardSection,
};
use super::values::{parse_bool, Values};

fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" | "security" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

fn plugins(ctx: &mut Values<'_>) -> Vec<String> {
    let text = ctx.string("temboard", "plugins");
    let trimmed = text.trim();
    let names: Vec<String> = if trimmed.starts_with('[') {
        match serde_json::from_str::<Vec<String>>(trimmed) {
            Ok(v) => v,
            Err(e) => {
                ctx.fail(
                    "temboard",
                    "plugins",
                    format!(
                        "not a JSON list of strings ({e}): expected {}",
                        ctx.allowed("temboard", "plugins")
                    ),
                );
                return vec![];
            }
        }
    } else {
        trimmed
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut out = Vec::new();
    for n in names {
        if schema::FUTURE_PLUGINS.contains(&n.as_str()) {
            ctx.warnings.push(format!(
                "[temboard] plugins: '{n}' (a temBoard 9.x plugin) is not served by this agent yet: left out"
            ));
        } else if catalog::find(&n).is_none() {
            ctx.fail(
                "temboard",
                "plugins",
                format!(
                    "unknown plugin '{n}': known plugins are {}",
                    catalog::names().join(", ")
                ),
            );
        } else if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Whether a key was left at its default (not set anywhere).
fn defaulted(ctx: &Values<'_>, section: &str, key: &str) -> bool {
    matches!(
        ctx.raw(section, key).map(|r| &r.source),
        Some(Source::Default) | None
    )
}

/// `[temboard] users` (2.x) and `signing_public_key` (9.x): each may be set;
/// at least one must work. A key left at its default is on when its file
/// exists (a 9.x setup writes `signing-public.pem` beside the
/// configuration); a key set explicitly must name a usable file.
fn authentication(c: &mut Values<'_>) -> (Option<PathBuf>, Option<PathBuf>) {
    let signing = match c.path("temboard", "signing_public_key") {
        Some(p) if defaulted(c, "temboard", "signing_public_key") && !p.exists() => None,
        Some(p) => match crate::small_file::read(&p, crate::small_file::Links::Refuse) {
            Ok(pem) => match crate::signing::PublicKey::from_pem(&pem) {
                Ok(_) => Some(p),
                Err(e) => {
                    c.fail(
                        "temboard",
                        "signing_public_key",
                        format!("{}: {e}", p.display()),
                    );
                    None
                }
            },
            Err(e) => {
                c.fail(
                    "temboard",
                    "signing_public_key",
                    format!("cannot read {}: {e}", p.display()),
                );
                None
            }
        },
        None => None,
    };
    let users_defaulted = defaulted(c, "temboard", "users");
    let users = match c.path("temboard", "users") {
        Some(p) if users_defaulted && signing.is_some() && !p.exists() => None,
        _ => {
            let required = signing.is_none();
            let found = c.existing_file("temboard", "users", required);
            if found.is_none() && required && c.errors.iter().any(|e| e.key == "users") {
                c.warnings.push(
                    "no way to authenticate: set [temboard] users (temBoard 2.x UI) or signing_public_key (temBoard 8 and later, see `temboard-agent fetch-key`)".into(),
                );
            }
            found
        }
    };
    (users, signing)
}

/// `[temboard] ui_url`: an http(s) URL with a host.
fn ui_url(c: &mut Values<'_>) -> Option<String> {
    let url = c.opt_str("temboard", "ui_url")?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {
            Some(url.trim_end_matches('/').to_string())
        }
        _ => {
            c.fail(
                "temboard",
                "ui_url",
                format!("'{url}' is not an http(s) URL with a host"),
            );
            None
        }
    }
}

fn certificate(ctx: &mut Values<'_>, cert: Option<&Path>, key: Option<&Path>) {
    use crate::small_file::{read, Links};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // Read once each, as the supervisor reads them (regular files of a
    // bounded size, without blocking on a FIFO), then parsed.
    let mut cert_pem = None;
    if let Some(cert) = cert {
        let parsed = read(cert, Links::Follow).map(|pem| {
            let list =
                CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>();
            (pem, list)
        });
        match parsed {
            Ok((pem, Ok(list))) if !list.is_empty() => cert_pem = Some(pem),
            Ok((_, Ok(_))) => ctx.fail(
                "temboard",
                "ssl_cert_file",
                format!("{}: no PEM certificate found", cert.display()),
            ),
            Ok((_, Err(e))) => ctx.fail(
                "temboard",
                "ssl_cert_file",
                format!("{}: unreadable certificate: {e}", cert.display()),
            ),
            Err(e) => ctx.fail(
                "temboard",
                "ssl_cert_file",
                format!("{}: unreadable certificate: {e}", cert.display()),
            ),
        }
    }
    let mut key_pem = None;
    if let Some(key) = key {
        let parsed = read(key, Links::Follow)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                PrivateKeyDer::from_pem_slice(pem.as_bytes())
                    .map(|_| pem)
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok(pem) => key_pem = Some(pem),
            Err(e) => {
                ctx.fail(
                    "temboard",
                    "ssl_key_file",
                    format!("{}: unreadable private key: {e}", key.display()),
                );
                return;
            }
        }
    }
    // Both readable: they must also make a server configuration together.
    if let (Some(cert), Some(key), Some(cert_pem), Some(key_pem)) = (cert, key, cert_pem, key_pem) {
        let m = crate::tls::TlsMaterial { cert_pem, key_pem };
        if let Err(e) = crate::tls::acceptor(&m) {
            ctx.fail(
                "temboard",
                "ssl_key_file",
                format!(
                    "{} does not go with certificate {}: {e}",
                    key.display(),
                    cert.display()
                ),
            );
        }
    }
}

/// `[temboard]`.
fn temboard_section(c: &mut Values<'_>) -> TemboardSection {
    let port = c.int("temboard", "port", 1, 65535) as u16;
    let address_text = c.string("temboard", "address");
    let address = match address_text.trim().parse::<IpAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.fail(
                "temboard",
                "address",
                format!("invalid address '{address_text}': expected an IPv4 or IPv6 address"),
            );
            IpAddr::from([0, 0, 0, 0])
        }
    };
    let (users, signing_public_key) = authentication(c);
    let unsigned_contract = unsigned_contract(c, users.is_some(), signing_public_key.is_some());
    let plugins = plugins(c);
    let cert = c.existing_file("temboard", "ssl_cert_file", true);
    let key = c.existing_file("temboard", "ssl_key_file", true);
    certificate(c, cert.as_deref(), key.as_deref());
    let ssl_ca_cert_file = c.existing_file("temboard", "ssl_ca_cert_file", false);
    let home = c.path("temboard", "home").unwrap_or_default();
    let user = c.opt_str("temboard", "user");
    if !home.is_dir() {
        c.fail(
            "temboard",
            "home",
            format!("{} is not an existing directory", home.display()),
        );
    } else if let Err(e) = crate::privileges::worker_identity(user.as_deref(), &home) {
        c.fail("temboard", "home", e);
    }
    TemboardSection {
        port,
        address,
        users,
        signing_public_key,
        ui_url: ui_url(c),
        plugins,
        ssl_cert_file: cert.unwrap_or_default(),
        ssl_key_file: key.unwrap_or_default(),
        ssl_ca_cert_file,
        home,
        hostname: c.opt_str("temboard", "hostname"),
        unsigned_contract,
        accepted_hosts: accepted_hosts(c),
        key: c
            .opt_str("temboard", "key")
            .or_else(|| c.opt_str("postgresql", "key")),
        user,
        session_ttl: c.int("temboard", "session_ttl", 1, 366 * 86_400),
        max_connections_per_client: c.int("temboard", "max_connections_per_client", 1, 1_000_000),
        pidfile: c.path("temboard", "pidfile").unwrap_or_default(),
        daemonize: c.bool("temboard", "daemonize"),
    }
}

/// `[temboard] unsigned_contract`: 2 or 9; by default 9 when only the 9.x
/// way is configured (every request is then answered in the contract the
/// agent speaks), else 2 (the 2.x UI and tools send nothing to tell).
fn unsigned_contract(c: &mut Values<'_>, users: bool, signing: bool) -> u8 {
    match c.opt_str("temboard", "unsigned_contract").as_deref() {
        None => {
            if signing && !users {
                9
            } else {
                2
            }
        }
        Some("2") => 2,
        Some("9") => 9,
        Some(other) => {
            c.fail(
                "temboard",
                "unsigned_contract",
                format!("'{other}' is neither 2 nor 9"),
            );
            2
        }
    }
}

/// `[temboard] accepted_hosts`: `name`, `name:port` or `[v6]:port`
/// entries, comma separated.
fn accepted_hosts(c: &mut Values<'_>) -> Vec<String> {
    let Some(list) = c.opt_str("temboard", "accepted_hosts") else {
        return vec![];
    };
    let mut out = vec![];
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let ok = entry.len() <= 300
            && entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !ok {
            c.fail(
                "temboard",
                "accepted_hosts",
                format!("'{entry}' is not a host name, an address or name:port"),
            );
            continue;
        }
        out.push(entry.to_ascii_lowercase());
    }
    out
}

/// `[postgresql]`.
fn postgresql_section(c: &mut Values<'_>) -> PostgresqlSection {
    let host = c.string("postgresql", "host");
    if host.starts_with('/') && !Path::new(&host).is_dir() {
        c.fail(
            "postgresql",
            "host",
            format!("socket directory {host} does not exist"),
        );
    } else if host.is_empty() {
        c.fail(
            "postgresql",
            "host",
            "empty: expected a socket directory or a host name".into(),
        );
    }
    PostgresqlSection {
        host,
        port: c.int("postgresql", "port", 1, 65535) as u16,
        user: c.string("postgresql", "user"),
        password: c.opt_str("postgresql", "password"),
        dbname: c.string("postgresql", "dbname"),
        instance: c.string("postgresql", "instance"),
    }
}

/// `[logging]`.
fn logging_section(c: &mut Values<'_>) -> LoggingSection {
    let method = match c.string("logging", "method").to_lowercase().as_str() {
        "stderr" => LogMethod::Stderr,
        "syslog" => LogMethod::Syslog,
        "file" => LogMethod::File,
        other => {
            let reason = format!("invalid method '{other}': expected stderr, syslog or file");
            c.fail("logging", "method", reason);
            LogMethod::Stderr
        }
    };
    let facility_name = c.string("logging", "facility").to_lowercase();
    let facility = facility_code(&facility_name).unwrap_or_else(|| {
        c.fail(
            "logging",
            "facility",
            format!("unknown syslog facility '{facility_name}'"),
        );
        16
    });
    let level_text = c.string("logging", "level").to_uppercase();
    let level = match level_text.as_str() {
        "DEBUG" => LogLevel::Debug,
        "INFO" => LogLevel::Info,
        "WARNING" | "WARN" => LogLevel::Warning,
        "ERROR" => LogLevel::Error,
        "CRITICAL" => LogLevel::Critical,
        _ => {
            c.fail("logging", "level", format!("invalid level '{level_text}': expected DEBUG, INFO, WARNING, ERROR or CRITICAL"));
            LogLevel::Info
        }
    };
    let debug_text = c.string("logging", "debug");
    let debug = match parse_bool(&debug_text.to_lowercase()) {
        Some(true) => DebugLoggers::All,
        Some(false) => DebugLoggers::None,
        None => DebugLoggers::Some(
            debug_text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ),
    };
    let destination = c.path("logging", "destination").unwrap_or_default();
    LoggingSection {
        method,
        facility,
        destination,
        level,
        debug,
    }
}

/// Validates every key; returns all errors together.
pub(super) fn typed(
    layers: &Layers,
    configfile: PathBuf,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut c = Values::new(&layers.values, schema::keys().collect());
    let temboard = temboard_section(&mut c);
    let postgresql = postgresql_section(&mut c);
    let logging = logging_section(&mut c);

    // Each registered plugin validates its own section; its errors count
    // only when it is loaded (2.x rule, below).
    let mut sections = BTreeMap::new();
    for p in catalog::sections() {
        if let Some(settings) = p.settings {
            sections.insert(p.name.to_string(), settings(&mut c));
        }
    }

    // Plugin sections only count when the plugin is loaded (2.x rule).
    let loaded = temboard.plugins.clone();
    c.errors.retain(|e| match schema::plugin_of(&e.section) {
        Some(p) => loaded.iter().any(|l| l == p),
        None => true,
    });
    if !c.errors.is_empty() {
        return Err(ConfigError::Invalid(c.errors));
    }
    Ok((
        Config {
            configfile,
            temboard,
            postgresql,
            logging,
            sections,
        },
        c.warnings,
    ))
}
