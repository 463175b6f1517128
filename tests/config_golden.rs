//! Golden test: every fixture under tests/fixtures/config is read by the agent's
//! INI reader and by Python's `configparser.RawConfigParser` (the parser of the
//! 2.x agent); both must give the same sections, keys and values, or both must
//! refuse the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use temboard_agent::config::ini_file::{IniFile, DEFAULT_SECTION};

const PY: &str = r#"
import configparser, json, sys
p = configparser.RawConfigParser()
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        p.read_file(f)
except configparser.Error as e:
    print(json.dumps({"error": type(e).__name__}))
    sys.exit(0)
print(json.dumps({s: dict(p.items(s)) for s in p.sections()}))
"#;

fn python_view(path: &Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PY)
        .arg(path)
        .output()
        .expect("python3 is needed for the golden config test");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn agent_view(path: &Path) -> Result<serde_json::Value, String> {
    let f = IniFile::load(path).map_err(|e| e.to_string())?;
    let defaults = f.sections.get(DEFAULT_SECTION).cloned().unwrap_or_default();
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (section, keys) in &f.sections {
        if section == DEFAULT_SECTION {
            continue;
        }
        let entry = out.entry(section.clone()).or_default();
        for (k, v) in defaults.iter().chain(keys.iter()) {
            entry.insert(k.clone(), v.value.clone());
        }
    }
    Ok(serde_json::to_value(out).unwrap())
}

#[test]
fn agent_reads_config_files_like_python() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for path in files {
        let py = python_view(&path);
        let ours = agent_view(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(err) = py.get("error") {
            let msg = ours.expect_err(&format!(
                "{name}: Python refuses it ({err}), the agent accepted it"
            ));
            assert!(
                msg.contains(&path.display().to_string()),
                "{name}: message must name the file: {msg}"
            );
            assert!(
                msg.contains("line "),
                "{name}: message must name the line: {msg}"
            );
        } else {
            let ours = ours
                .unwrap_or_else(|e| panic!("{name}: Python accepts it, the agent refused it: {e}"));
            assert_eq!(ours, py, "{name}: agent and Python disagree");
        }
    }
}
