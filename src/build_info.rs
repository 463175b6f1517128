//! What this agent is made of: its own version, the compiler that built it
//! and the libraries that matter to an operator (TLS, the signature
//! verifier, the PostgreSQL client, the state store). The Python agent told
//! the UI its Python, psycopg2, libpq and cryptography versions; this is our
//! equivalent, reported in `/discover`, `--version` and the start-up log.

mod built_info {
    include!(concat!(env!("OUT_DIR"), "/built.rs"));
}

/// The version of a dependency as resolved in Cargo.lock, so what is
/// reported is what was compiled in, not what Cargo.toml allows.
pub fn dependency(name: &str) -> Option<&'static str> {
    built_info::DEPENDENCIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// `1.89.0 (29483883e 2025-08-04)`: the compiler's own words without its name.
pub fn rustc_version() -> &'static str {
    let v = built_info::RUSTC_VERSION;
    v.strip_prefix("rustc ").unwrap_or(v)
}

/// The OpenSSL library the signature verifier runs with: the one loaded at
/// run time (a security update of the system's libssl shows here without a
/// rebuild).
pub fn openssl_version() -> &'static str {
    openssl::version::version()
}

/// The SQLite compiled into the state store (rusqlite's bundled copy).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// The components, in the order an operator reads them: `(name, version)`.
/// Names are those of the discover document's `<name>_version` fields.
/// There is no libpq: the `postgres` crate speaks the protocol itself.
pub fn components() -> Vec<(&'static str, String)> {
    let mut out = vec![("rustc", rustc_version().to_string())];
    for (field, krate) in [
        ("rustls", "rustls"),
        ("rust_postgres", "postgres"),
        ("hyper", "hyper"),
        ("tokio", "tokio"),
    ] {
        if let Some(v) = dependency(krate) {
            out.push((field, v.to_string()));
        }
    }
    out.push(("openssl", openssl_version().to_string()));
    out.push(("sqlite", sqlite_version().to_string()));
    out
}

/// One line for `--version` and the logs: `rustc 1.89.0 (…), rustls 0.23.31, …`.
pub fn summary() -> String {
    components()
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_name_what_cargo_lock_resolved() {
        let lock = include_str!("../Cargo.lock");
        for krate in ["rustls", "postgres", "hyper", "tokio"] {
            let v = dependency(krate).unwrap();
            let entry = format!("name = \"{krate}\"\nversion = \"{v}\"");
            assert!(lock.contains(&entry), "{entry} not in Cargo.lock");
        }
        assert!(rustc_version().starts_with(|c: char| c.is_ascii_digit()));
        assert!(openssl_version().contains("OpenSSL") || openssl_version().contains("SSL"));
        assert!(sqlite_version().starts_with('3'));
        assert_eq!(components().len(), 7);
    }
}
