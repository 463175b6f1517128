//! Configuration (INI) loader: `src/config/ini_file.rs` and `config::load`.
//!
//! Why: the configuration files are edited by hand, and a reload (SIGHUP)
//! re-reads them in the running supervisor. A typo must give an error naming
//! the file and line, never a panic that takes the agent down.
//!
//! Properties checked:
//! - `IniFile::parse` never panics on any text; when it succeeds, every key
//!   has the line it was found on (the locating pass and the `configparser`
//!   crate agree on what is a key), within the file;
//! - a file built from the input as `[section]` / `key = value` / an indented
//!   continuation line reads back the value Python's configparser would give
//!   (trimmed, continuation joined with `\n`), or, only when the continuation
//!   starts with `[` and the file holds the reserved U+E000, the documented
//!   error;
//! - `config::load` on the text written to a file (with a `.d` drop-in made
//!   of the part after a form feed, if any) never panics; errors are fine.
//!   It runs in a temporary directory holding a users file, a certificate and
//!   key and a home, so that relative paths can make a valid configuration.
//!   Inputs holding `/` are not given to `load` (their paths could name any
//!   file of the machine, and opening a FIFO would block the run), nor inputs
//!   `IniFile::parse` refuses (`load` would stop at that same parse).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use temboard_agent::config::ini_file::IniFile;
use temboard_agent::config::{self, CliValues, LoadRequest};

/// A directory holding what a valid configuration refers to (users file,
/// certificate and key, home), so `load` can get past the file checks.
fn fixture() -> &'static (tempfile::TempDir, PathBuf) {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        // Assembled as the agent's main does: plugin sections included.
        temboard_agent::plugins::install_catalog();
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path();
        std::fs::write(p.join("users"), "alice:x\n").unwrap();
        temboard_agent::certgen::write_self_signed(
            &["localhost".to_string()],
            &p.join("cert.pem"),
            &p.join("key.pem"),
        )
        .unwrap();
        std::fs::create_dir(p.join("home")).unwrap();
        std::fs::create_dir(p.join("agent.conf.d")).unwrap();
        let conf = p.join("agent.conf");
        (dir, conf)
    })
}

fn check_located(text: &str) {
    let Ok(f) = IniFile::parse(Path::new("fuzz.conf"), text) else {
        return;
    };
    let nlines = text.lines().count();
    for (section, keys) in &f.sections {
        for (key, v) in keys {
            assert!(
                (1..=nlines).contains(&v.line),
                "[{section}] {key}: line {} not located (file has {nlines} lines)",
                v.line
            );
        }
    }
}

fn check_built(text: &str) {
    let mut parts = text.split('\n');
    let section: String = parts.next().unwrap_or("").replace(']', "");
    let section = match section.trim() {
        "" => "s".to_string(),
        s => s.to_string(),
    };
    let key: String = parts
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !"=:#;[".contains(*c))
        .collect();
    let key = match key.trim() {
        "" => "k".to_string(),
        k => k.to_string(),
    };
    let value = parts.next().unwrap_or("");
    let cont = parts
        .next()
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with('#') && !c.starts_with(';'));

    let mut file = format!("[{section}]\n{key} = {value}\n");
    let mut expected = value.trim().to_string();
    if let Some(c) = cont {
        file.push_str(&format!("  {c}\n"));
        expected.push('\n');
        expected.push_str(c);
    }
    match IniFile::parse(Path::new("fuzz.conf"), &file) {
        Ok(f) => {
            let got = f
                .sections
                .get(&section)
                .and_then(|s| s.get(&key.to_lowercase()));
            let got = got.unwrap_or_else(|| panic!("[{section}] {key} missing from {file:?}"));
            assert_eq!(got.value, expected, "value of {file:?}");
            assert_eq!(got.line, 2, "line of {file:?}");
        }
        Err(e) => {
            let reserved = cont.is_some_and(|c| c.starts_with('[')) && file.contains('\u{E000}');
            assert!(reserved, "valid file {file:?} refused: {e}");
        }
    }
}

fn check_load(text: &str) {
    if text.contains('/') {
        return;
    }
    let (_dir, conf) = fixture();
    let (main, dropin) = match text.split_once('\x0c') {
        Some((m, d)) => (m, Some(d)),
        None => (text, None),
    };
    // A syntax error stops `load` at the same parse as above: skip the file
    // writes and validation for those (most) inputs, keep the speed.
    if IniFile::parse(Path::new("main.conf"), main).is_err()
        || dropin.is_some_and(|d| IniFile::parse(Path::new("dropin.conf"), d).is_err())
    {
        return;
    }
    std::fs::write(conf, main).unwrap();
    let extra = conf.with_extension("conf.d").join("10.conf");
    match dropin {
        Some(d) => std::fs::write(&extra, d).unwrap(),
        None => {
            let _ = std::fs::remove_file(&extra);
        }
    }
    let req = LoadRequest {
        configfile: conf.clone(),
        env: vec![],
        cli: CliValues::default(),
    };
    if let Err(e) = config::load(&req) {
        // Errors are fine; formatting them must not panic either.
        let _ = e.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_located(&text);
    check_built(&text);
    check_load(&text);
});
