//! The plugins as the config layer knows them ([`PluginSection`]), handed
//! over once where the program is assembled (`plugins::install_catalog`,
//! called by every binary's `main` and by the workers before they read a
//! configuration). The config layer and the state store read it; neither
//! imports the plugins, so configuration never reaches the workers.

use std::sync::OnceLock;

use super::values::PluginSection;

static CATALOG: OnceLock<Vec<PluginSection>> = OnceLock::new();

/// Hands the plugins to the config layer; the first call wins (the list is
/// the program's registry: it never changes while the program runs).
pub fn install(sections: Vec<PluginSection>) {
    let _ = CATALOG.set(sections);
}

/// The plugins handed over; empty before [`install`], which every entry
/// point calls first (a configuration read without them would refuse every
/// plugin name, never accept a wrong one).
pub fn sections() -> &'static [PluginSection] {
    // The unit tests' program is assembled with every plugin too.
    #[cfg(test)]
    tests::assemble();
    CATALOG.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The plugin of that name.
pub fn find(name: &str) -> Option<&'static PluginSection> {
    sections().iter().find(|p| p.name == name)
}

/// Every plugin's name.
pub fn names() -> Vec<&'static str> {
    sections().iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    /// What `main` does for the binaries.
    pub(super) fn assemble() {
        // Once: `sections()` is read for every key looked up.
        if super::CATALOG.get().is_none() {
            crate::plugins::install_catalog();
        }
    }
}
