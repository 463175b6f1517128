//! pg_hba.conf reader and writer round trip (`src/pgconf/hba.rs`).
//!
//! Why: the pgconf API reads pg_hba.conf into entries, the UI edits them and
//! sends them back to be written. pg_hba.conf decides who may connect to
//! PostgreSQL: a read/write cycle must not change what the file says, drop a
//! line, or let one line turn into two (or two into one).
//!
//! Property checked: `parse(text)` never panics, and for `e1 = parse(text)`,
//! `write(&e1)` succeeds and `e2 = parse(write(&e1))` equals `e1`, with the
//! two exceptions the module documents or enforces by design:
//! - comments are written in the 2.x form `# text` (leading blanks of the
//!   comment text collapse to that one space), so comment entries compare
//!   with their leading whitespace removed, and a second cycle is exact
//!   (`parse(write(&e2)) == e2`);
//! - `write` refuses (`Invalid HBA entry.`) any value holding CR or NUL, which
//!   it treats as line-break injection; `parse` can return such values from a
//!   line with a lone CR or a NUL, so for those inputs only that error is
//!   accepted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use temboard_agent::plugins::pgconf::hba::{parse, write, HbaError};

/// Entries with comment texts left-trimmed, the one normalization the 2.x
/// writer applies.
fn normalized(entries: &[Value]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(Value::String(c)) = e.get_mut("comment") {
                *c = c.trim_start().to_string();
            }
            e
        })
        .collect()
}

fn has_forbidden(entries: &[Value]) -> bool {
    entries.iter().any(|e| {
        e.as_object().is_some_and(|m| {
            m.values()
                .any(|v| v.as_str().is_some_and(|s| s.contains(['\r', '\0'])))
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let e1 = parse(&text);
    let written = match write(&e1) {
        Ok(w) => w,
        Err(err) => {
            assert!(
                err == HbaError::InvalidEntry && has_forbidden(&e1),
                "parsed entries cannot be written back: {err}\nentries: {e1:?}"
            );
            return;
        }
    };
    let e2 = parse(&written);
    assert_eq!(
        normalized(&e1),
        normalized(&e2),
        "read/write/read changed the entries\nwritten: {written:?}"
    );
    let again = write(&e2).expect("entries read from our own output must write");
    assert_eq!(
        parse(&again),
        e2,
        "second cycle is not exact\nwritten: {again:?}"
    );
    assert_eq!(again, written, "writer output is not stable");
});
