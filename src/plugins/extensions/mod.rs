//! Extensions plugin: `GET /extensions` lists, for each database, the
//! installed extensions with their version, the default version the server
//! offers, and whether an update is available — what a DBA checks after a
//! package upgrade (`ALTER EXTENSION … UPDATE` pending). Read by the probe
//! worker, one short connection per database, within the pool's cap. Off
//! unless listed in `[temboard] plugins`.
//!
//! Written through the plugin contract alone: this folder and its name in
//! the registry (docs/architecture.md, "Adding a plugin").

mod calls;
mod probe;

use serde_json::{json, Value};

use crate::api::{Plugin, Work};
use crate::ipc::messages::WorkerError;
use crate::api::{Call, Handled, Reply, Route};
use crate::api::ProbeHost;
pub use calls::{Database, Extension, ExtensionsCall};

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "extensions",
    routes: &[Route::keyed("extensions", "/extensions", "Extensions", list)],
    probe: Some(|| Box::new(ExtensionsWork)),
    ..Plugin::NOTHING
};

struct ExtensionsWork;

impl Work<ProbeHost> for ExtensionsWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: ExtensionsCall| match c {
            ExtensionsCall::List => probe::databases(host),
        })
    }
}

/// `GET /extensions`.
fn list(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let databases = c.state.call(ExtensionsCall::List).await?;
        Ok(Reply::Json(json!({ "databases": databases })))
    })
}
