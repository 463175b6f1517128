//! PgConf plugin (2.x facts 11, 9.x facts 6): PostgreSQL settings (`ALTER
//! SYSTEM`, pending reload or restart), pg_hba.conf with versions,
//! pg_ident.conf; for signed requests the 9.x settings routes and the
//! deprecated `/pgconf/configuration*` ones the UI 9.0.1 calls. Parameter
//! checks and notifications in the http worker; the files and SQL in the
//! probe worker, which runs as the cluster owner. The http worker never
//! writes PostgreSQL's files.

mod change;
mod calls;
pub mod files;
pub mod hba;
mod probe;
pub mod probe9;
mod routes;
mod routes9;
pub mod settings;

pub use calls::PgconfCall;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Plugin, Work};
use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "pgconf",
    default: true,
    routes: ROUTES,
    probe: Some(|| Box::new(PgconfWork)),
    keys: KEYS,
    settings: Some(validate),
    ..Plugin::NOTHING
};

/// The keys of `[pgconf]`.
const KEYS: &[KeyDef] = &[k(
    "pgconf",
    "protected_settings",
    None,
    "a comma separated list of settings the API may not change",
)];

/// The validated `[pgconf]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Settings `ALTER SYSTEM` may not change through the API (lowercase):
    /// those that run programs (`archive_command`, `restore_command`,
    /// `ssl_passphrase_command`, `*_preload_libraries`,
    /// `dynamic_library_path`) are code execution as the cluster owner one
    /// reload or restart away.
    pub protected_settings: Vec<String>,
}

fn validate(c: &mut Values<'_>) -> Value {
    let mut protected = vec![];
    if let Some(list) = c.opt_str("pgconf", "protected_settings") {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.len() > 63 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
                c.fail(
                    "pgconf",
                    "protected_settings",
                    format!("'{name}' is not a setting name"),
                );
                continue;
            }
            protected.push(name.to_ascii_lowercase());
        }
    }
    crate::api::section_value(&Section {
        protected_settings: protected,
    })
}

/// The `[pgconf]` section in force.
pub fn section(config: &Config) -> Section {
    config.section("pgconf").unwrap_or_default()
}

/// Refuses a change of a protected setting, before any is applied: 403
/// through both contracts.
fn check_protected<'a>(
    host: &ProbeHost,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), WorkerError> {
    let protected = section(&host.settings().config).protected_settings;
    for name in names {
        if protected.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            return Err(WorkerError::Forbidden(format!(
                "Setting '{name}' is protected on this agent ([pgconf] protected_settings): change it on the server itself."
            )));
        }
    }
    Ok(())
}

const fn route(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    handler: crate::api::HandlerFn,
) -> Route {
    Route::new("pgconf", method, path, id, handler)
}

const ROUTES: &[Route] = &[
    route("GET", "/pgconf/configuration", "PgconfSettings", routes::settings),
    route(
        "GET",
        "/pgconf/configuration/category/{category}",
        "PgconfCategory",
        routes::category,
    ),
    route(
        "GET",
        "/pgconf/configuration/categories",
        "PgconfCategories",
        routes::categories,
    ),
    route(
        "GET",
        "/pgconf/configuration/status",
        "PgconfStatus",
        routes::status,
    ),
    route("POST", "/pgconf/configuration", "PgconfUpdate", routes::update),
    route("GET", "/pgconf/hba", "HbaGet", routes::hba_get),
    route("POST", "/pgconf/hba", "HbaPost", routes::hba_post),
    route("DELETE", "/pgconf/hba", "HbaDelete", routes::hba_delete),
    route("GET", "/pgconf/hba/raw", "HbaRawGet", routes::hba_raw_get),
    route("POST", "/pgconf/hba/raw", "HbaRawPost", routes::hba_raw_post),
    route("GET", "/pgconf/hba/options", "HbaOptions", routes::hba_options),
    route("GET", "/pgconf/hba/versions", "HbaVersions", routes::hba_versions),
    route("GET", "/pgconf/pg_ident", "IdentGet", routes::ident_get),
    route("POST", "/pgconf/pg_ident", "IdentPost", routes::ident_post),
    signed("GET", "/pgconf/settings", "PgconfSettings9", routes9::settings),
    signed("POST", "/pgconf/settings", "PgconfSet9", routes9::set),
    signed(
        "DELETE",
        "/pgconf/settings/{name}",
        "PgconfDefault9",
        routes9::to_default,
    ),
    signed(
        "POST",
        "/pgconf/settings/{name}/reset",
        "PgconfReset9",
        routes9::reset,
    ),
    signed("POST", "/pgconf/reload", "PgconfReload9", routes9::reload),
    signed(
        "GET",
        "/pgconf/configuration",
        "PgconfConfiguration9",
        routes9::configuration,
    ),
    signed(
        "GET",
        "/pgconf/configuration/categories",
        "PgconfCategories9",
        routes9::categories,
    ),
    signed(
        "GET",
        "/pgconf/configuration/status",
        "PgconfStatus9",
        routes9::status,
    ),
    signed(
        "GET",
        "/pgconf/configuration/category/{category*}",
        "PgconfCategory9",
        routes9::category,
    ),
    signed(
        "POST",
        "/pgconf/configuration",
        "PgconfUpdate9",
        routes9::update,
    ),
];

const fn signed(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    handler: crate::api::HandlerFn,
) -> Route {
    Route::signed("pgconf", method, path, id, handler)
}

struct PgconfWork;

impl Work<ProbeHost> for PgconfWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: PgconfCall| {
            match &c {
                PgconfCall::Update { settings, .. } => check_protected(
                    host,
                    settings
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i.get("name").and_then(Value::as_str)),
                )?,
                PgconfCall::V9(probe9::Pgconf9Call::Apply { resets, sets }) => check_protected(
                    host,
                    resets
                        .iter()
                        .map(String::as_str)
                        .chain(sets.iter().map(|(n, _)| n.as_str())),
                )?,
                PgconfCall::V9(probe9::Pgconf9Call::Unset { name, .. }) => {
                    check_protected(host, [name.as_str()])?
                }
                _ => {}
            }
            probe::handle(host, c)
        })
    }
}
