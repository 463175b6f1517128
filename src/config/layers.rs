//! Collecting raw values from every source, in precedence order:
//! defaults < main file < `<file>.d/*.conf` (POSIX order) < environment < command line.
//!
//! Runs in the supervisor and in the CLI tools; workers never read files, they get
//! a validated snapshot over IPC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ini_file::IniFile;
use super::schema;
use super::types::{CliValues, ConfigError, RawValue, Source};

/// `; did you mean X?` naming the known name closest to a misspelt one, when
/// one is close enough to be a typo (`adress` → `address`), else nothing.
fn did_you_mean<'a>(
    typed: &str,
    known: impl Iterator<Item = &'a str>,
    show: impl Fn(&str) -> String,
) -> String {
    known
        .map(|k| (strsim::jaro_winkler(typed, k), k))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean {}?", show(k)))
        .unwrap_or_default()
}

/// All raw values, keyed by (section, key), after precedence is applied.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// Winning value per key.
    pub values: BTreeMap<(String, String), RawValue>,
    /// Non-fatal remarks (unknown keys, unknown sections) to log once started.
    pub warnings: Vec<String>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
}

/// Removes one pair of matching surrounding quotes, as our decision on 2.x
/// configs says (`pg_ctl = '...'`, `dbnames = '*'`).
pub fn strip_quotes(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

impl Layers {
    /// Builds the layers. `env` is passed in (not read here) so tests are hermetic.
    pub fn collect(
        configfile: &Path,
        env: &[(String, String)],
        cli: &CliValues,
    ) -> Result<Layers, ConfigError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let configfile = if configfile.is_absolute() {
            configfile.to_path_buf()
        } else {
            cwd.join(configfile)
        };
        let file_dir = configfile
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut layers = Layers::default();
        for def in schema::keys() {
            if let Some(d) = def.default {
                layers.set(def.section, def.key, d, Source::Default, &file_dir);
            }
        }
        if !configfile.is_file() {
            return Err(ConfigError::MissingFile {
                path: configfile.display().to_string(),
            });
        }
        let mut files = vec![configfile.clone()];
        let mut dir = configfile.clone().into_os_string();
        dir.push(".d");
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            let mut extra: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| ConfigError::Unreadable {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
                .collect();
            // POSIX (byte) order: upper case before lower case.
            extra.sort_by(|a, b| {
                a.as_os_str()
                    .as_encoded_bytes()
                    .cmp(b.as_os_str().as_encoded_bytes())
            });
            files.extend(extra);
        }
        for path in &files {
            let parsed = IniFile::load(path)?;
            layers.apply_file(&parsed, &file_dir);
        }
        layers.files = files;
        for (name, value) in env {
            layers.apply_env(name, value, &cwd);
        }
        for (section, key, value, option) in &cli.values {
            layers.set(
                section,
                key,
                value,
                Source::CommandLine {
                    option: option.clone(),
                },
                &cwd,
            );
        }
        Ok(layers)
    }

    fn set(&mut self, section: &str, key: &str, value: &str, source: Source, base: &Path) {
        self.values.insert(
            (section.to_string(), key.to_string()),
            RawValue {
                value: strip_quotes(value.trim()).to_string(),
                source,
                base_dir: base.to_path_buf(),
            },
        );
    }

    fn apply_file(&mut self, file: &IniFile, base: &Path) {
        for (section, keys) in &file.sections {
            if section == super::ini_file::DEFAULT_SECTION {
                continue;
            }
            if !schema::is_known_section(section) {
                let line = file.section_lines.get(section).copied().unwrap_or(0);
                let sections: Vec<&str> = schema::keys().map(|d| d.section).collect();
                self.warnings.push(format!(
                    "{}, line {line}: unknown section [{section}] ignored{}",
                    file.path.display(),
                    did_you_mean(section, sections.iter().copied(), |s| format!("[{s}]"))
                ));
                continue;
            }
            for key in keys.keys() {
                if schema::find(section, key).is_none() {
                    let line = keys.get(key).map(|v| v.line).unwrap_or(0);
                    let known = schema::keys()
                        .filter(|d| d.section == section)
                        .map(|d| d.key);
                    self.warnings.push(format!(
                        "{}, line {line}: unknown key '{key}' in section [{section}] ignored{}",
                        file.path.display(),
                        did_you_mean(key, known, |k| format!("'{k}'"))
                    ));
                }
            }
        }
        // Keys set in [DEFAULT] cascade into every section, as in Python.
        for def in schema::keys() {
            if let Some(v) = file.get(def.section, def.key) {
                self.set(
                    def.section,
                    def.key,
                    &v.value,
                    Source::File {
                        path: file.path.clone(),
                        line: v.line,
                    },
                    base,
                );
            }
        }
    }

    /// `TEMBOARD_<SECTION>_<KEY>` sets `[section] key`; for `[temboard]` the plain
    /// `TEMBOARD_<KEY>` works too (facts 5.1). `DEBUG` feeds `[logging] debug`.
    fn apply_env(&mut self, name: &str, value: &str, cwd: &Path) {
        let source = Source::Env {
            var: name.to_string(),
        };
        if name == "DEBUG" {
            self.set("logging", "debug", value, source, cwd);
            return;
        }
        let Some(rest) = name.strip_prefix("TEMBOARD_") else {
            return;
        };
        let rest = rest.to_lowercase();
        for def in schema::keys() {
            let long = format!("{}_{}", def.section, def.key);
            if rest == long || (def.section == "temboard" && rest == def.key) {
                self.set(def.section, def.key, value, source, cwd);
                return;
            }
        }
    }

    /// The raw value of a key, if any source set it.
    pub fn get(&self, section: &str, key: &str) -> Option<&RawValue> {
        self.values.get(&(section.to_string(), key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn misspelt_names_get_a_suggestion_and_unrelated_ones_none() {
        let keys = ["address", "port", "plugins", "home"];
        assert_eq!(
            super::did_you_mean("adress", keys.into_iter(), |k| format!("'{k}'")),
            "; did you mean 'address'?"
        );
        assert_eq!(
            super::did_you_mean("plugin", keys.into_iter(), |k| format!("'{k}'")),
            "; did you mean 'plugins'?"
        );
        assert_eq!(
            super::did_you_mean("zzz", keys.into_iter(), |k| k.to_string()),
            ""
        );
    }

    use super::*;

    #[test]
    fn quotes() {
        assert_eq!(strip_quotes("'*'"), "*");
        assert_eq!(strip_quotes("\"a b\""), "a b");
        assert_eq!(strip_quotes("'a\""), "'a\"");
        assert_eq!(strip_quotes("'"), "'");
        assert_eq!(strip_quotes("x"), "x");
    }

    #[test]
    fn precedence() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("a.conf");
        std::fs::write(
            &main,
            "[temboard]\nport = 1\naddress = 127.0.0.1\nhostname = f\n",
        )
        .unwrap();
        let d = dir.path().join("a.conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("b.conf"), "[temboard]\nport = 3\nhostname = b\n").unwrap();
        std::fs::write(
            d.join("B.conf"),
            "[temboard]\nport = 2\naddress = 127.0.0.2\n",
        )
        .unwrap();
        std::fs::write(d.join("c.txt"), "[temboard]\nport = 9\n").unwrap();
        let env = vec![("TEMBOARD_HOSTNAME".to_string(), "env".to_string())];
        let l = Layers::collect(&main, &env, &CliValues::default()).unwrap();
        assert_eq!(l.get("temboard", "port").unwrap().value, "3");
        assert_eq!(l.get("temboard", "address").unwrap().value, "127.0.0.2");
        assert_eq!(l.get("temboard", "hostname").unwrap().value, "env");
        assert_eq!(l.get("temboard", "users").unwrap().source, Source::Default);
        let cli = CliValues {
            values: vec![(
                "temboard".into(),
                "hostname".into(),
                "cli".into(),
                "--x".into(),
            )],
        };
        let l = Layers::collect(&main, &env, &cli).unwrap();
        assert_eq!(l.get("temboard", "hostname").unwrap().value, "cli");
        let env = vec![("TEMBOARD_POSTGRESQL_PORT".to_string(), "6000".to_string())];
        let l = Layers::collect(&main, &env, &CliValues::default()).unwrap();
        assert_eq!(l.get("postgresql", "port").unwrap().value, "6000");
    }
}
