//! The raw values being validated ([`Values`]), through which the core and
//! each plugin read and check their sections, and what the config layer
//! knows of a plugin ([`PluginSection`]).

use std::path::{Path, PathBuf};

use super::keydef::KeyDef;
use std::collections::BTreeMap;

use super::types::{Invalid, RawValue, Source};

/// What the config layer knows of a plugin: its name, whether it is loaded
/// by default, its keys and how it validates its section. Handed to the
/// config layer where the program is assembled ([`super::catalog`]), so
/// configuration never imports the plugins (nor, through them, the workers).
#[derive(Clone, Copy)]
pub struct PluginSection {
    /// Name used in `[temboard] plugins`.
    pub name: &'static str,
    /// Whether it is in the default `[temboard] plugins` list.
    pub default: bool,
    /// Its configuration keys.
    pub keys: &'static [KeyDef],
    /// Validates its section into its settings type, serialized.
    pub settings: Option<fn(&mut Values<'_>) -> serde_json::Value>,
    /// Its state database schema, in order (applied by `store::open`).
    pub migrations: &'static [&'static str],
}

/// The raw values being validated, and the errors and warnings found so
/// far. Plugins read their section through it ([`PluginSection::settings`]).
pub struct Values<'a> {
    /// The winning raw value of each (section, key) (`Layers::values`).
    raw: &'a BTreeMap<(String, String), RawValue>,
    /// Every key definition (the core's and the plugins'), for the
    /// "expected ..." of error messages.
    keys: Vec<&'static KeyDef>,
    pub(super) errors: Vec<Invalid>,
    /// Non-fatal remarks, logged once started.
    pub(super) warnings: Vec<String>,
}

/// `1/yes/true/on`, `0/no/false/off`.
pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" | "" => Some(false),
        _ => None,
    }
}

impl<'a> Values<'a> {
    /// Values of `raw` (the layers' winning values), checked against `keys`.
    pub(super) fn new(
        raw: &'a BTreeMap<(String, String), RawValue>,
        keys: Vec<&'static KeyDef>,
    ) -> Values<'a> {
        Values {
            raw,
            keys,
            errors: vec![],
            warnings: vec![],
        }
    }
}

impl Values<'_> {
    /// The raw value of a key, if any layer set it.
    pub fn raw(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.raw.get(&(section.to_string(), key.to_string()))
    }

    /// Records that a key is invalid, with why.
    pub fn fail(&mut self, section: &str, key: &str, reason: String) {
        let origin = self
            .raw(section, key)
            .map(|r| r.source.clone())
            .unwrap_or(Source::Default);
        self.errors.push(Invalid {
            origin,
            section: section.into(),
            key: key.into(),
            reason,
        });
    }

    /// What a key allows, for error messages.
    pub fn allowed(&self, section: &str, key: &str) -> &'static str {
        self.keys
            .iter()
            .find(|d| d.section == section && d.key == key)
            .map(|d| d.allowed)
            .unwrap_or("")
    }

    /// A key's text, `None` when unset or empty.
    pub fn opt_str(&self, section: &str, key: &str) -> Option<String> {
        self.raw(section, key)
            .map(|r| r.value.clone())
            .filter(|v| !v.is_empty())
    }

    /// A key's text (empty when unset).
    pub fn string(&self, section: &str, key: &str) -> String {
        self.opt_str(section, key).unwrap_or_default()
    }

    /// An integer within `min..=max`; out of range or not a number is an error naming the allowed values.
    pub fn int(&mut self, section: &str, key: &str, min: u64, max: u64) -> u64 {
        let text = self.string(section, key);
        match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let reason = format!(
                    "invalid value '{text}': expected {}",
                    self.allowed(section, key)
                );
                self.fail(section, key, reason);
                min
            }
        }
    }

    /// A path, relative ones resolved against the directory of the file that set it.
    pub fn path(&self, section: &str, key: &str) -> Option<PathBuf> {
        let raw = self.raw(section, key)?;
        if raw.value.is_empty() {
            return None;
        }
        let p = Path::new(&raw.value);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            raw.base_dir.join(p)
        })
    }

    /// A path that must name a readable regular file (required or not).
    pub fn existing_file(&mut self, section: &str, key: &str, required: bool) -> Option<PathBuf> {
        let Some(p) = self.path(section, key) else {
            if required {
                self.fail(section, key, "missing: a file path is required".into());
            }
            return None;
        };
        match std::fs::File::open(&p).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => Some(p),
            Ok(_) => {
                self.fail(
                    section,
                    key,
                    format!("{} is not a regular file", p.display()),
                );
                None
            }
            Err(e) => {
                self.fail(section, key, format!("cannot read {}: {e}", p.display()));
                None
            }
        }
    }

    /// A boolean (`1/yes/true/on`, `0/no/false/off`).
    pub fn bool(&mut self, section: &str, key: &str) -> bool {
        let text = self.string(section, key).to_lowercase();
        match parse_bool(&text) {
            Some(b) => b,
            None => {
                self.fail(
                    section,
                    key,
                    format!("invalid value '{text}': expected true or false"),
                );
                false
            }
        }
    }

    /// `*` (all: `None`) or a comma separated list, each item in `known` when given.
    pub fn list_or_all(
        &mut self,
        section: &str,
        key: &str,
        known: Option<&[&str]>,
    ) -> Option<Vec<String>> {
        let text = self.string(section, key);
        if text.trim() == "*" {
            return None;
        }
        let items: Vec<String> = text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(known) = known {
            for item in &items {
                if !known.contains(&item.as_str()) {
                    let reason = format!("unknown name '{item}': expected {}", known.join(", "));
                    self.fail(section, key, reason);
                }
            }
        }
        Some(items)
    }
}
