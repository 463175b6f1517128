//! The probe worker's side: the databases, then each one's `pg_extension`
//! on a connection of its own (the catalog is per database).

use super::calls::{Database, Extension};
use crate::ipc::messages::WorkerError;
use crate::api::ProbeHost;

/// Databases read, at most: a cluster with more answers the first ones by
/// name and says so in the log; each costs one short connection.
const MAX_DATABASES: i64 = 500;

const INSTALLED: &str = "
SELECT e.extname::text, e.extversion, a.default_version, n.nspname::text
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
LEFT JOIN pg_available_extensions a ON a.name = e.extname
ORDER BY e.extname";

/// Every database that accepts connections, by name, with its extensions.
pub fn databases(host: &ProbeHost) -> Result<Vec<Database>, WorkerError> {
    let names: Vec<String> = host.with(|c| {
        Ok(c.client
            .query(
                "SELECT datname::text FROM pg_database
                 WHERE datallowconn AND NOT datistemplate ORDER BY datname LIMIT $1",
                &[&MAX_DATABASES],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    })?;
    if names.len() as i64 == MAX_DATABASES {
        tracing::warn!("extensions: only the first {MAX_DATABASES} databases are listed");
    }
    Ok(names
        .into_iter()
        .map(|dbname| match host.with_database(&dbname, installed) {
            Ok(extensions) => Database {
                dbname,
                extensions,
                error: None,
            },
            Err(e) => Database {
                dbname,
                extensions: vec![],
                error: Some(e.to_string()),
            },
        })
        .collect())
}

fn installed(
    c: &mut crate::pg::Conn,
) -> Result<Vec<Extension>, postgres::Error> {
    Ok(c.client
        .query(INSTALLED, &[])?
        .iter()
        .map(|r| {
            let version: String = r.get(1);
            let default_version: Option<String> = r.get(2);
            Extension {
                name: r.get(0),
                update_available: default_version.as_ref().is_some_and(|d| *d != version),
                version,
                default_version,
                schema: r.get(3),
            }
        })
        .collect())
}
