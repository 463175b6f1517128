//! One change of a setting ([`Change`]) and its `ALTER SYSTEM` statement,
//! shared by the 2.x and 9.x updates.

use super::settings as conv;
use crate::pg::Conn;

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

