//! Agent configuration: sources, precedence, validation, and the typed snapshot
//! that the supervisor sends to workers.
//!
//! Only the supervisor (and the CLI tools) read configuration files. Every error
//! names where the bad value came from (file and line, environment variable or
//! command-line option), the section and key, and what is allowed.

pub mod catalog;
pub mod ini_file;
pub mod keydef;
pub mod layers;
pub mod schema;
pub mod types;
mod validate;
pub mod values;

use std::path::{Path, PathBuf};

pub use layers::Layers;
pub use types::*;
pub use values::{PluginSection, Values};

/// Reads and validates everything. Checks of the file system (certificate
/// readable, home writable) are part of validation so a bad reload is refused
/// before anything changes.
pub fn load(req: &LoadRequest) -> Result<Loaded, ConfigError> {
    let layers = Layers::collect(&req.configfile, &req.env, &req.cli)?;
    let configfile = layers
        .files
        .first()
        .cloned()
        .unwrap_or_else(|| req.configfile.clone());
    let (config, mut warnings) = validate::typed(&layers, configfile)?;
    let sources = layers
        .values
        .iter()
        .map(|((s, k), v)| (format!("{s}.{k}"), v.source.clone()))
        .collect();
    let mut all = layers.warnings;
    all.append(&mut warnings);
    Ok(Loaded {
        config,
        sources,
        warnings: all,
    })
}

/// Raw values of a few keys, for tools that need no full validation.
pub fn raw_values(
    req: &LoadRequest,
    keys: &[(&str, &str)],
) -> Result<Vec<Option<String>>, ConfigError> {
    let layers = Layers::collect(&req.configfile, &req.env, &req.cli)?;
    Ok(keys
        .iter()
        .map(|(s, k)| {
            layers
                .get(s, k)
                .map(|v| v.value.clone())
                .filter(|v| !v.is_empty())
        })
        .collect())
}

/// The users file path only, for the user tools: they need no certificate or
/// home checks (and may run as a user who cannot read the key file).
pub fn users_path(req: &LoadRequest) -> Result<PathBuf, ConfigError> {
    let layers = Layers::collect(&req.configfile, &req.env, &req.cli)?;
    let raw = layers.get("temboard", "users").ok_or_else(|| {
        ConfigError::Invalid(vec![Invalid {
            origin: Source::Default,
            section: "temboard".into(),
            key: "users".into(),
            reason: "missing".into(),
        }])
    })?;
    let p = Path::new(&raw.value);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        raw.base_dir.join(p)
    })
}
