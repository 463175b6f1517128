//! Reading one INI file the way Python's `configparser.RawConfigParser` reads it.
//!
//! Runs in the supervisor (and in the CLI tools). The values come from the `ini`
//! crate's `configparser` parser configured to match Python (no inline comments,
//! multi-line values, case-sensitive sections, lower-cased keys). A small locating
//! pass over the same text adds what that parser does not give: the line of every
//! key (so errors can name it), and Python's strictness (duplicate sections or keys,
//! a key before any section, a line without `=` or `:` are errors, not silence).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ini::configparser::ini::{Ini, IniDefault};

/// Name of the section whose keys Python cascades into every other section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// One value read from a file, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    /// The value as Python would return it (multi-line values joined with `\n`).
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A parsed file: section -> key (lower-cased) -> value.
#[derive(Debug, Clone, Default)]
pub struct IniFile {
    /// Where the file was read from, for messages.
    pub path: PathBuf,
    /// Sections in file order are not needed; sorted maps keep output stable.
    pub sections: BTreeMap<String, BTreeMap<String, FileValue>>,
    /// 1-based line of each section header (for warnings).
    pub section_lines: BTreeMap<String, usize>,
}

/// Why a file could not be read; the message names the file and line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IniError {
    /// The file could not be opened or is not UTF-8.
    #[error("{path}: cannot read: {reason}")]
    Unreadable {
        /// File path.
        path: String,
        /// OS error text.
        reason: String,
    },
    /// A syntax error at a known line.
    #[error("{path}, line {line}: {reason}")]
    Syntax {
        /// File path.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl IniFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<IniFile, IniError> {
        let text = std::fs::read_to_string(path).map_err(|e| IniError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` read from `path` (the path is only used in messages).
    pub fn parse(path: &Path, text: &str) -> Result<IniFile, IniError> {
        let shown = path.display().to_string();
        let located = locate(&shown, text)?;
        let lines = located.keys;
        let section_lines = located.sections.into_iter().collect();
        // The crate tests for a section header before it tests for a
        // continuation line, so an indented continuation starting with `[`
        // (e.g. a JSON plugin list on its own line) would become a section.
        // Python reads it as part of the value: mask that bracket, restore it
        // in the values.
        let masking = !located.bracket_continuations.is_empty();
        let masked = if !masking {
            text.to_owned()
        } else {
            if text.contains(BRACKET_MASK) {
                return Err(IniError::Syntax {
                    path: shown,
                    line: 0,
                    reason: "the file contains the reserved character U+E000".into(),
                });
            }
            mask_brackets(text, &located.bracket_continuations)
        };
        let mut parser = Ini::new_from_defaults(python_like_defaults());
        let map = parser.read(masked).map_err(|reason| IniError::Syntax {
            path: shown.clone(),
            line: line_from_message(&reason),
            reason,
        })?;
        let mut sections: BTreeMap<String, BTreeMap<String, FileValue>> = BTreeMap::new();
        for (section, keys) in map {
            let entry = sections.entry(section.clone()).or_default();
            for (key, value) in keys {
                let lower = key.to_lowercase();
                let line = lines
                    .get(&(section.clone(), lower.clone()))
                    .copied()
                    .unwrap_or(0);
                let mut value = value.unwrap_or_default();
                // Only a masked file holds masks (it had no U+E000 of its
                // own); elsewhere U+E000 is a character of the value.
                if masking {
                    value = value.replace(BRACKET_MASK, "[");
                }
                entry.insert(lower, FileValue { value, line });
            }
        }
        Ok(IniFile {
            path: path.to_path_buf(),
            sections,
            section_lines,
        })
    }

    /// Returns a key of a section, falling back to `[DEFAULT]` as Python does.
    pub fn get(&self, section: &str, key: &str) -> Option<&FileValue> {
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .or_else(|| {
                if self.sections.contains_key(section) {
                    self.sections.get(DEFAULT_SECTION).and_then(|s| s.get(key))
                } else {
                    None
                }
            })
    }
}

/// The parser settings that make `configparser` read what Python's
/// RawConfigParser reads: `#` and `;` only as whole-line comments (so a password
/// `a#1` or a pg_ctl template `a ; b` stays intact), both delimiters, indented
/// continuation lines, and case kept so we can lower-case keys but not sections.
fn python_like_defaults() -> IniDefault {
    let mut d = IniDefault::default();
    d.default_section = DEFAULT_SECTION.to_string();
    d.comment_symbols = vec!['#', ';'];
    d.inline_comment_symbols = Some(vec![]);
    d.enable_inline_comments = false;
    d.delimiters = vec!['=', ':'];
    d.case_sensitive = true;
    d.multiline = true;
    d.cascade_defaults = false;
    d
}

fn line_from_message(msg: &str) -> usize {
    msg.strip_prefix("line ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Stands in for `[` at the start of continuation lines while the crate parses.
const BRACKET_MASK: char = '\u{E000}';

fn mask_brackets(text: &str, lines: &[usize]) -> String {
    let mut out = String::with_capacity(text.len());
    for (idx, raw) in text.split_inclusive('\n').enumerate() {
        if lines.contains(&idx) {
            out.push_str(&raw.replacen('[', &BRACKET_MASK.to_string(), 1));
        } else {
            out.push_str(raw);
        }
    }
    out
}

struct Located {
    /// Line of each (section, key).
    keys: HashMap<(String, String), usize>,
    /// Line of each section header.
    sections: HashMap<String, usize>,
    /// 0-based indexes of continuation lines whose text starts with `[`.
    bracket_continuations: Vec<usize>,
}

/// The locating pass: line of each (section, key) and Python's strict checks.
fn locate(path: &str, text: &str) -> Result<Located, IniError> {
    let err = |line: usize, reason: String| IniError::Syntax {
        path: path.to_string(),
        line,
        reason,
    };
    let mut found: HashMap<(String, String), usize> = HashMap::new();
    let mut seen_sections: HashMap<String, usize> = HashMap::new();
    let mut section: Option<String> = None;
    let mut key_indent: Option<usize> = None;
    let mut bracket_continuations = vec![];
    for (idx, raw) in text.lines().enumerate() {
        let num = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        if let (Some(ki), Some(_)) = (key_indent, section.as_ref()) {
            if indent > ki {
                if line.starts_with('[') {
                    bracket_continuations.push(idx);
                }
                continue; // continuation of a multi-line value
            }
        }
        if line.starts_with('[') {
            let Some(end) = line.rfind(']') else {
                return Err(err(num, format!("section header without ']': {line}")));
            };
            let name = line[1..end].trim().to_string();
            if let Some(first) = seen_sections.insert(name.clone(), num) {
                return Err(err(
                    num,
                    format!("section [{name}] already defined at line {first}"),
                ));
            }
            section = Some(name);
            key_indent = None;
            continue;
        }
        let Some(current) = section.as_ref() else {
            return Err(err(num, "a key before any [section] header".to_string()));
        };
        let Some(pos) = line.find(['=', ':']) else {
            return Err(err(
                num,
                format!(
                    "expected 'key = value' or 'key: value' in section [{current}], got: {line}"
                ),
            ));
        };
        let key = line[..pos].trim().to_lowercase();
        if key.is_empty() {
            return Err(err(num, "empty key name".to_string()));
        }
        if let Some(first) = found.insert((current.clone(), key.clone()), num) {
            return Err(err(
                num,
                format!("key '{key}' in section [{current}] already set at line {first}"),
            ));
        }
        key_indent = Some(indent);
    }
    Ok(Located {
        keys: found,
        sections: seen_sections,
        bracket_continuations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IniFile, IniError> {
        IniFile::parse(Path::new("t.conf"), text)
    }

    #[test]
    fn python_semantics() {
        let f = parse(
            "[temboard]\nPort: 1234\n; comment\n# comment\nusers = a ; b\n[postgresql]\npassword = se#cret;x\n[temboard.x]\nplugins = [\"a\",\n  \"b\"]\n",
        )
        .unwrap();
        assert_eq!(f.get("temboard", "port").unwrap().value, "1234");
        assert_eq!(f.get("temboard", "port").unwrap().line, 2);
        assert_eq!(f.get("temboard", "users").unwrap().value, "a ; b");
        assert_eq!(f.get("postgresql", "password").unwrap().value, "se#cret;x");
        assert_eq!(
            f.get("temboard.x", "plugins").unwrap().value,
            "[\"a\",\n\"b\"]"
        );
    }

    #[test]
    fn strictness_names_lines() {
        let e = parse("[a]\nx=1\nX=2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.conf, line 3: key 'x' in section [a] already set at line 2"
        );
        let e = parse("x=1\n").unwrap_err();
        assert!(e.to_string().contains("line 1: a key before any [section]"));
        let e = parse("[a]\njunk\n").unwrap_err();
        assert!(e.to_string().contains("line 2: expected 'key = value'"));
        let e = parse("[a]\n[a]\n").unwrap_err();
        assert!(e
            .to_string()
            .contains("line 2: section [a] already defined at line 1"));
        let e = parse("[a\n").unwrap_err();
        assert!(e.to_string().starts_with("t.conf, line 1"));
    }

    #[test]
    fn private_use_character_is_kept_without_bracket_continuation() {
        // Found by fuzz/fuzz_targets/config_ini.rs: U+E000 (the bracket mask)
        // in a value came back as '[' when no line needed masking.
        let f = parse("[temboard]\nPort = 1234 \u{E000}x]\n").unwrap();
        assert_eq!(f.get("temboard", "port").unwrap().value, "1234 \u{E000}x]");
        // With a bracket continuation the character is refused, as documented.
        let e = parse("[a]\nk = \u{E000}\n  [b]\n").unwrap_err();
        assert!(e.to_string().contains("reserved character U+E000"));
    }

    #[test]
    fn default_section_cascades() {
        let f = parse("[DEFAULT]\nlevel = DEBUG\n[logging]\nmethod = stderr\n").unwrap();
        assert_eq!(f.get("logging", "level").unwrap().value, "DEBUG");
        assert!(f.get("nosuch", "level").is_none());
    }
}
