//! The collector payload (facts 10.4): `{"datetime", "version", "hostinfo",
//! "instances", "data"}`, every probe a list.

use serde_json::{json, Map, Value};

use crate::config::Config;

/// Probes to run: `[monitoring] probes` or all of them.
pub fn probe_list(config: &Config) -> Vec<String> {
    match super::config::settings(config).probes {
        Some(list) => list,
        None => super::PROBES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// Host probe rows, raw (cpu and process need deltas applied by the caller).
pub fn host_probe(name: &str) -> Vec<Value> {
    use super::host;
    match name {
        "filesystems_size" => host::filesystems(true),
        "cpu" => host::cpu_raw().into_iter().collect(),
        "process" => host::process_raw().into_iter().collect(),
        "memory" => vec![host::memory()],
        "loadavg" => vec![host::loadavg()],
        _ => vec![],
    }
}

/// Assembles the payload. `instance` is the probe worker's answer (or
/// `{"available": false}`), completed here with what the configuration says.
pub fn build(
    config: &Config,
    hostname: &str,
    mut instance: Value,
    data: Map<String, Value>,
) -> Value {
    let pg = &config.postgresql;
    if let Value::Object(m) = &mut instance {
        m.insert("hostname".into(), json!(hostname));
        m.insert("instance".into(), json!(pg.instance));
        m.insert("local_name".into(), json!(pg.instance));
        m.insert("host".into(), json!(pg.host));
        m.insert("port".into(), json!(pg.port));
        m.insert("user".into(), json!(pg.user));
        m.insert("database".into(), json!(pg.dbname));
    }
    json!({
        "datetime": super::agent_datetime(),
        "version": env!("CARGO_PKG_VERSION"),
        "hostinfo": super::host::hostinfo(hostname),
        "instances": [instance],
        "data": data,
    })
}
