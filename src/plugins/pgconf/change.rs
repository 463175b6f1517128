//! A change of a setting, in one place for both contracts: how a 2.x
//! update ([`validate_v2`]) and a 9.x one ([`check_v9`]) are validated, the
//! [`Change`] and its `ALTER SYSTEM` statement, and the notification texts
//! of what was done. Both run in the probe worker; the http worker only
//! parses the request and records the notifications it is given.

use super::settings as conv;
use crate::ipc::messages::WorkerError;
use crate::pg::Conn;

/// The notification of a reload.
pub const NOTE_RELOAD: &str = "PostgreSQL reload";

/// Longest 9.x value (9.x: `Setting value is too long.`).
pub const MAX_VALUE_9: usize = 1024;

/// The notification of a changed setting; values that may hold a secret are
/// not recorded.
pub fn note_changed(name: &str, previous: &str, value: &str) -> String {
    if conv::may_hold_secret(name) {
        format!("Setting '{name}' changed (values not recorded: they may hold a secret)")
    } else {
        format!("Setting '{name}' changed: '{previous}' -> '{value}'")
    }
}

/// The notification of a setting reset (or set to its default).
pub fn note_reset(name: &str) -> String {
    format!("Setting '{name}' reset")
}

/// What the 2.x validation needs of a setting (`pg_settings`).
pub struct Kind<'a> {
    /// `vartype`.
    pub vartype: &'a str,
    /// `unit`.
    pub unit: Option<&'a str>,
    /// `min_val`.
    pub min: Option<f64>,
    /// `max_val`.
    pub max: Option<f64>,
    /// `enumvals`.
    pub enumvals: &'a [String],
}

/// The 9.x checks of a setting's name and, when one is set, its value, with
/// 9.x's messages (406): PostgreSQL judges the value itself.
pub fn check_v9(name: &str, value: Option<&str>) -> Result<(), WorkerError> {
    check_name_v9(name)?;
    value.map_or(Ok(()), check_value_v9)
}

/// The 9.x check of a setting's name.
pub fn check_name_v9(name: &str) -> Result<(), WorkerError> {
    if name.is_empty() || name.len() > 200 || name.contains('\0') {
        return Err(WorkerError::Invalid("Parameter 'name' is malformed.".into()));
    }
    Ok(())
}

/// The 9.x check of a value set.
pub fn check_value_v9(value: &str) -> Result<(), WorkerError> {
    if value.len() > MAX_VALUE_9 {
        return Err(WorkerError::Invalid("Setting value is too long.".into()));
    }
    if value.contains('\0') {
        return Err(WorkerError::Invalid("Setting value is malformed.".into()));
    }
    Ok(())
}

/// The 2.x validation of one item of an update, typed by the setting
/// (facts 11): what to do, or why not.
pub fn validate_v2(s: &Kind<'_>, name: &str, value: &str) -> Result<Change, WorkerError> {
    let invalid = || WorkerError::Invalid(format!("{name}: Invalid setting."));
    if value.contains('\0') {
        return Err(invalid());
    }
    if conv::never_formatted(name) {
        return Ok(if value.is_empty() {
            Change::Reset
        } else {
            Change::Set(value.to_string())
        });
    }
    match s.vartype {
        "integer" | "real" => {
            if value.is_empty() {
                return Ok(Change::Reset);
            }
            let n = conv::to_unit(value, s.unit).ok_or_else(invalid)?;
            if s.vartype == "integer" && n.fract() != 0.0 {
                return Err(invalid());
            }
            if s.min.is_some_and(|m| n < m) || s.max.is_some_and(|m| n > m) {
                return Err(invalid());
            }
            Ok(Change::Set(value.trim().to_string()))
        }
        "bool" => conv::normalize_bool(value)
            .map(|b| Change::Set(b.to_string()))
            .ok_or_else(|| WorkerError::Invalid(format!("Invalid setting: {}.", value.to_lowercase()))),
        "enum" => {
            let v = conv::strip_outer_quotes(value);
            if s.enumvals.iter().any(|e| e == v) {
                Ok(Change::Set(v.to_string()))
            } else {
                Err(WorkerError::Invalid(format!("Invalid setting: {v}.")))
            }
        }
        _ => Ok(if value.is_empty() {
            Change::Reset
        } else {
            Change::Set(value.to_string())
        }),
    }
}

/// What one item of an update asks, after validation.
pub enum Change {
    /// `ALTER SYSTEM SET name TO value`.
    Set(String),
    /// `ALTER SYSTEM RESET name`.
    Reset,
    /// `ALTER SYSTEM SET name TO DEFAULT` (9.x `DELETE /pgconf/settings/<name>`).
    Default,
}

/// The `ALTER SYSTEM` statement of one change, the name and value quoted by
/// the server (`format('%I', '%L')`); list settings element by element.
pub fn alter_sql(conn: &mut Conn, name: &str, change: &Change) -> Result<String, postgres::Error> {
    Ok(match change {
        Change::Set(v) => match conv::list_elements(name, v) {
            // Element by element, each quoted by the server.
            Some(elements) if !elements.is_empty() => conn.client.query_one(
                "SELECT format('ALTER SYSTEM SET %I TO ', $1::text) \
                 || string_agg(quote_literal(e), ', ' ORDER BY i) \
                 FROM unnest($2::text[]) WITH ORDINALITY AS t(e, i)",
                &[&name, &elements],
            ),
            _ => conn.client.query_one(
                "SELECT format('ALTER SYSTEM SET %I TO %L', $1::text, $2::text)",
                &[&name, v],
            ),
        },
        Change::Default => conn
            .client
            .query_one("SELECT format('ALTER SYSTEM SET %I TO DEFAULT', $1::text)", &[&name]),
        Change::Reset => conn
            .client
            .query_one("SELECT format('ALTER SYSTEM RESET %I', $1::text)", &[&name]),
    }?
    .get(0))
}


#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<(), WorkerError>) -> String {
        match r {
            Err(WorkerError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_contracts_are_validated_here_with_their_own_words() {
        assert!(check_v9("work_mem", Some("4MB")).is_ok());
        assert_eq!(
            refused(check_v9("work_mem", Some(&"x".repeat(MAX_VALUE_9 + 1)))),
            "Setting value is too long."
        );
        assert_eq!(
            refused(check_v9("work_mem", Some("a\0b"))),
            "Setting value is malformed."
        );
        assert_eq!(
            refused(check_v9("", None)),
            "Parameter 'name' is malformed."
        );
        let int = Kind {
            vartype: "integer",
            unit: Some("kB"),
            min: Some(64.0),
            max: Some(2147483647.0),
            enumvals: &[],
        };
        assert!(matches!(validate_v2(&int, "work_mem", "4MB"), Ok(Change::Set(v)) if v == "4MB"));
        assert!(matches!(validate_v2(&int, "work_mem", ""), Ok(Change::Reset)));
        assert_eq!(
            validate_v2(&int, "work_mem", "1kB").err().map(|e| e.to_string()),
            Some(WorkerError::Invalid("work_mem: Invalid setting.".into()).to_string())
        );
        // One text per notification, whichever contract made the change.
        assert_eq!(note_changed("work_mem", "4MB", "8MB"), "Setting 'work_mem' changed: '4MB' -> '8MB'");
        assert!(note_changed("primary_conninfo", "a", "b").contains("values not recorded"));
        assert_eq!(note_reset("work_mem"), "Setting 'work_mem' reset");
    }
}
