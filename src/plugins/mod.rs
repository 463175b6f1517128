//! Plugins: each is one folder holding everything of one feature — its HTTP
//! routes and handlers, the work it asks the probe or pg_ctl worker to do, its
//! scheduled jobs, its store queries — and one line of [`REGISTRY`].
//!
//! The workers are hosts: the http worker routes to [`Plugin::routes`], the
//! probe, pg_ctl and task workers run [`Plugin::probe`], [`Plugin::pgctl`]
//! and [`Plugin::task`] work, the scheduler runs [`Plugin::jobs`]. None of them names a plugin; each reads
//! this registry. `[temboard] plugins` selects which entries are loaded.
//!
//! IPC stays typed at both ends: a plugin's calls are its own enum implementing
//! [`PluginCall`], which names the worker that must run it and the reply type.
//! The host channel carries the call as `(plugin name, JSON value)` without
//! knowing its type (see docs/architecture.md, "Plugin contract").

pub use crate::api::plugin::{loaded_work, Plugin, Works};

/// Declares the plugin modules and [`REGISTRY`] from one list of names.
macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every plugin of the agent, in the order their routes are matched
        /// and their jobs run.
        pub static REGISTRY: &[&Plugin] = &[$(&$name::PLUGIN),*];
    };
}

// Adding a plugin is adding its folder and one line here.
registry! {
    activity,
    administration,
    dashboard,
    monitoring,
    pgconf,
    extensions,
    statements,
    maintenance,
    risks,
}

/// Hands the registry to the config layer and the state store (see
/// [`crate::config::catalog`]): called first by every program of the crate.
pub fn install_catalog() {
    crate::config::catalog::install(
        REGISTRY
            .iter()
            .map(|p| crate::config::PluginSection {
                name: p.name,
                default: p.default,
                keys: p.keys,
                settings: p.settings,
                migrations: p.migrations,
            })
            .collect(),
    );
}

/// The registered plugin of that name.
pub fn find(name: &str) -> Option<&'static Plugin> {
    REGISTRY.iter().copied().find(|p| p.name == name)
}

/// Names of every registered plugin.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_known() {
        let mut seen = std::collections::HashSet::new();
        for p in REGISTRY {
            assert!(seen.insert(p.name), "plugin {} registered twice", p.name);
        }
        let defaults: Vec<_> = REGISTRY
            .iter()
            .filter(|p| p.default)
            .map(|p| p.name)
            .collect();
        let default_key = crate::config::schema::keys()
            .find(|k| k.section == "temboard" && k.key == "plugins")
            .and_then(|k| k.default)
            .unwrap_or("");
        let listed: Vec<String> = serde_json::from_str(default_key).unwrap_or_default();
        let mut listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(
            listed, defaults,
            "the default list is the registry's defaults"
        );
    }

    #[test]
    fn plugin_routes_belong_to_their_plugin() {
        for p in REGISTRY {
            for r in p.routes {
                assert_eq!(r.plugin, Some(p.name), "{} {}", r.method, r.path);
            }
        }
    }
}
