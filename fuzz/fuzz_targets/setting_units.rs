//! PostgreSQL setting values (`src/pgconf/settings.rs`): unit conversion,
//! JSON typing, `postgresql.conf` parsing, booleans and quotes.
//!
//! Why: these functions read values typed by API users (`POST /pgconf`),
//! found in `pg_settings` and in hand-edited `postgresql.conf` files; the probe
//! worker must answer with a value or an error, never panic on odd text such
//! as huge numbers, lone signs or multi-byte characters next to a unit.
//!
//! Properties checked (with overflow checks on, see fuzz/Cargo.toml):
//! - no function panics;
//! - `to_unit` of a plain number (no unit) is that number, whatever the unit
//!   of the setting; a suffix without a setting unit gives `None`;
//! - `typed` is `null` exactly for a missing or empty value, a JSON integer
//!   or the raw string for `integer`, a number, `null` (non-finite) or the
//!   raw string for `real`, and the raw string otherwise;
//! - `normalize_bool` answers `on`, `off` or `None` and is idempotent;
//! - `strip_outer_quotes` removes nothing or exactly one pair of quotes;
//! - `parse_conf` reads back a `name = 'value'` line written with the
//!   quoting rules of postgresql.conf (`''` and `\\` escapes).
//!
//! Input layout: lines `value`, `unit`, `name`, `vartype`; the whole text is
//! also parsed as a configuration file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use temboard_agent::plugins::pgconf::settings::{
    normalize_bool, parse_conf, strip_outer_quotes, to_unit, typed,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let value = lines.next().unwrap_or("");
    let unit = lines.next().filter(|u| !u.is_empty());
    let name = lines.next().unwrap_or("");
    let vartype = match lines.next().unwrap_or("").len() % 4 {
        0 => "integer",
        1 => "real",
        2 => "bool",
        _ => "string",
    };

    // to_unit
    if unit.is_none() {
        let v = value.trim();
        let has_suffix = v
            .find(|c: char| !(c.is_ascii_digit() || ".-+".contains(c)))
            .is_some();
        if has_suffix {
            assert_eq!(
                to_unit(value, None),
                None,
                "a unit needs the setting's unit"
            );
        }
    }
    if let Ok(x) = value.trim().parse::<f64>() {
        if x.is_finite()
            && value
                .trim()
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-+.".contains(&b))
        {
            let got = to_unit(value, unit).expect("a plain number converts");
            assert!(
                got == x || (got.is_nan() && x.is_nan()),
                "{value:?} -> {got}"
            );
        }
    }

    // typed
    let raw = Some(value);
    let t = typed(name, vartype, unit, raw);
    assert_eq!(typed(name, vartype, unit, None), Value::Null);
    assert_eq!(typed(name, vartype, unit, Some("")), Value::Null);
    if value.is_empty() {
        assert_eq!(t, Value::Null);
    } else {
        let as_raw = t.as_str() == Some(value);
        match vartype {
            "integer" => assert!(as_raw || t.is_i64(), "integer typed as {t:?}"),
            "real" => assert!(
                as_raw || t.is_number() || t.is_null(),
                "real typed as {t:?}"
            ),
            _ => assert!(as_raw, "{vartype} typed as {t:?}"),
        }
    }

    // normalize_bool
    let b = normalize_bool(value);
    assert!(matches!(b, None | Some("on") | Some("off")));
    if let Some(b) = b {
        assert_eq!(normalize_bool(b), Some(b));
    }

    // strip_outer_quotes
    let s = strip_outer_quotes(value);
    assert!(s.len() == value.len() || s.len() + 2 == value.len());
    assert!(value.contains(s));

    // parse_conf on the whole text, then on a line we write ourselves.
    let _ = parse_conf(&text);
    let ident: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    if !ident.is_empty()
        && !matches!(
            ident.as_str(),
            "include" | "include_if_exists" | "include_dir"
        )
    {
        let written: String = value
            .chars()
            .filter(|c| *c != '\n')
            .flat_map(|c| match c {
                '\'' => vec!['\'', '\''],
                '\\' => vec!['\\', '\\'],
                c => vec![c],
            })
            .collect();
        let expected: String = value.chars().filter(|c| *c != '\n').collect();
        let line = format!("{ident} = '{written}'\n");
        let (values, includes) = parse_conf(&line);
        assert!(includes.is_empty());
        let got = values.get(&ident).map(|a| a.value.as_str());
        assert_eq!(got, Some(expected.as_str()), "line {line:?}");
    }
});
