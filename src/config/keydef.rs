//! One configuration key's definition ([`KeyDef`]): what the core's and
//! each plugin's key tables are made of. A leaf of the config layer.

/// One known key.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// INI section.
    pub section: &'static str,
    /// Key name (lower case).
    pub key: &'static str,
    /// Documented default, `None` when unset by default.
    pub default: Option<&'static str>,
    /// One line for docs and error messages: what is allowed.
    pub allowed: &'static str,
    /// Whether the value is a secret that must never be shown or logged.
    pub secret: bool,
}

/// A key that is not a secret (for plugins' key tables too).
pub const fn k(
    section: &'static str,
    key: &'static str,
    default: Option<&'static str>,
    allowed: &'static str,
) -> KeyDef {
    KeyDef {
        section,
        key,
        default,
        allowed,
        secret: false,
    }
}
