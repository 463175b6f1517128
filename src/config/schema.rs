//! The table of every configuration key: section, name, default, and the text
//! shown in `--help`-style docs. One table, so the loader, the environment
//! mapping, the docs and `show-config` can never disagree about what exists.

use super::catalog;
pub use super::keydef::{k, KeyDef};

const fn secret(section: &'static str, key: &'static str, allowed: &'static str) -> KeyDef {
    KeyDef {
        section,
        key,
        default: None,
        allowed,
        secret: true,
    }
}

/// The keys of the core sections; each plugin declares its own
/// ([`super::values::PluginSection::keys`]), only validated when the plugin is
/// listed in `[temboard] plugins`, as in 2.x.
pub const CORE_KEYS: &[KeyDef] = &[
    k(
        "temboard",
        "port",
        Some("2345"),
        "a TCP port number, 1 to 65535",
    ),
    k(
        "temboard",
        "address",
        Some("0.0.0.0"),
        "an IPv4 or IPv6 address",
    ),
    k(
        "temboard",
        "users",
        Some("/etc/temboard-agent/users"),
        "path of an existing users file",
    ),
    k(
        "temboard",
        "signing_public_key",
        Some("signing-public.pem"),
        "path of the temBoard UI's PEM public key (signed requests of temBoard 8 and later)",
    ),
    k(
        "temboard",
        "ui_url",
        None,
        "the temBoard UI's URL, http(s)://host[:port][/path] (fetch-key and register)",
    ),
    k(
        "temboard",
        "plugins",
        Some(r#"["monitoring", "dashboard", "pgconf", "administration", "activity"]"#),
        "a JSON list of registered plugin names (an unknown name is refused with the list)",
    ),
    k(
        "temboard",
        "ssl_cert_file",
        Some("/etc/temboard-agent/temboard-agent_CHANGEME.pem"),
        "path of a readable PEM certificate (chain)",
    ),
    k(
        "temboard",
        "ssl_key_file",
        Some("/etc/temboard-agent/temboard-agent_CHANGEME.key"),
        "path of a readable PEM private key",
    ),
    k(
        "temboard",
        "ssl_ca_cert_file",
        None,
        "path of an existing PEM file (unused by the server)",
    ),
    k(
        "temboard",
        "home",
        Some("/var/lib/temboard-agent/main"),
        "an existing directory writable by the agent",
    ),
    k(
        "temboard",
        "hostname",
        None,
        "a fully qualified domain name",
    ),
    k(
        "temboard",
        "unsigned_contract",
        None,
        "2 or 9: the contract unsigned requests are answered in (default: 9 when only signing_public_key is configured, else 2)",
    ),
    k(
        "temboard",
        "accepted_hosts",
        None,
        "a comma separated list of host or host:port names the temBoard UI may sign requests for",
    ),
    secret(
        "temboard",
        "key",
        "any text: the shared key sent to the collector",
    ),
    k(
        "temboard",
        "user",
        None,
        "an OS user name the workers run as when started as root (default: owner of home)",
    ),
    k(
        "temboard",
        "max_connections_per_client",
        Some("512"),
        "open HTTPS connections one client address may hold, 1 or more",
    ),
    k(
        "temboard",
        "session_ttl",
        Some("3600"),
        "seconds a session stays valid without use, 1 or more",
    ),
    k(
        "temboard",
        "pidfile",
        Some("/run/temboard-agent.pid"),
        "path of the pid file written with --daemon",
    ),
    k("temboard", "daemonize", Some("false"), "true or false"),
    k(
        "postgresql",
        "host",
        Some("/var/run/postgresql"),
        "a unix socket directory (absolute path) or a host name",
    ),
    k(
        "postgresql",
        "port",
        Some("5432"),
        "a TCP port number, 1 to 65535",
    ),
    k(
        "postgresql",
        "user",
        Some("postgres"),
        "a PostgreSQL super-user name",
    ),
    secret("postgresql", "password", "the password of that user"),
    k("postgresql", "dbname", Some("postgres"), "a database name"),
    k("postgresql", "instance", Some("main"), "a cluster label"),
    secret(
        "postgresql",
        "key",
        "legacy place of the collector key ([temboard] key wins)",
    ),
    k(
        "logging",
        "method",
        Some("syslog"),
        "stderr, syslog or file",
    ),
    k(
        "logging",
        "facility",
        Some("local0"),
        "a syslog facility (user, daemon, local0 to local7, ...)",
    ),
    k(
        "logging",
        "destination",
        Some("/dev/log"),
        "the syslog socket or the log file path",
    ),
    k(
        "logging",
        "level",
        Some("INFO"),
        "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
    k(
        "logging",
        "debug",
        Some("false"),
        "true, false, or a comma separated list of loggers",
    ),
];

/// Plugins of the temBoard 9.x agent this agent does not serve yet: a 9.x
/// configuration naming them loads, with a warning, and they are left out
/// (the UI then does not offer their pages).
pub const FUTURE_PLUGINS: &[&str] = &[];

/// The documented default of a numeric key of `keys` (1 when it has none,
/// the smallest value any interval or count accepts).
pub fn default_number(keys: &[KeyDef], key: &str) -> u64 {
    keys.iter()
        .find(|d| d.key == key)
        .and_then(|d| d.default)
        .and_then(|d| d.parse().ok())
        .unwrap_or(1)
}

/// Every key the agent reads: the core's, then each registered plugin's.
pub fn keys() -> impl Iterator<Item = &'static KeyDef> {
    CORE_KEYS
        .iter()
        .chain(catalog::sections().iter().flat_map(|p| p.keys.iter()))
}

/// The plugin a section belongs to: its keys only count when it is loaded.
pub fn plugin_of(section: &str) -> Option<&'static str> {
    catalog::sections()
        .iter()
        .find(|p| p.keys.iter().any(|k| k.section == section))
        .map(|p| p.name)
}

/// Finds a key definition.
pub fn find(section: &str, key: &str) -> Option<&'static KeyDef> {
    keys().find(|d| d.section == section && d.key == key)
}

/// Whether a section exists at all.
pub fn is_known_section(section: &str) -> bool {
    keys().any(|d| d.section == section)
}

#[cfg(test)]
mod tests {
    /// docs/configuration.md documents every key, so the docs cannot drift.
    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        for def in super::keys() {
            let section = doc
                .split(&format!("### [{}]", def.section))
                .nth(1)
                .unwrap_or_else(|| panic!("section [{}] not documented", def.section));
            let section = section.split("### [").next().unwrap_or_default();
            assert!(
                section.contains(&format!("| `{}` |", def.key)),
                "[{}] {} not documented",
                def.section,
                def.key
            );
        }
    }
}
