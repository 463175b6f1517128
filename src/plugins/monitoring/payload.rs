//! The collector payload (facts 10.4): `{"datetime", "version", "hostinfo",
//! "instances", "data"}`, every probe a list; and the temBoard 9.x document
//! (facts 9.x 7.1) built from the same collection.

use serde_json::{json, Map, Value};

use crate::config::Config;

/// Probes to run: `[monitoring] probes` or all of them.
pub fn probe_list(config: &Config) -> Vec<String> {
    match super::config::settings(config).probes {
        Some(list) => list,
        None => super::probes::PROBES
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
        "datetime": super::probes::agent_datetime(),
        "version": env!("CARGO_PKG_VERSION"),
        "hostinfo": super::host::hostinfo(hostname),
        "instances": [instance],
        "data": data,
    })
}

/// The 9.x document of one collection (facts 9.x 7.1), from the same rows
/// as the 2.x payload: probes in the 9.x order (without the 2.x-only
/// ones; a probe not due this time is absent), every record's `datetime`
/// the run's start (a per-database probe's, its own run's) (ISO, microseconds,
/// `+00:00`), no `port`; the instance with its 9.x fields (`max_connections`
/// an integer, `version` the full `version()`, `start_time`, `instance` =
/// `local_name` = `cluster_name`). `v9` is what the probe worker returned
/// for the 9.x fields (`null` when PostgreSQL did not answer); the times
/// are the run's start (records) and end (the document).
pub fn build9(
    config: &Config,
    hostname: &str,
    hostinfo: Value,
    instance: &Value,
    v9: &Value,
    data: &Map<String, Value>,
    (run_start, datetime): (&str, &str),
) -> Value {
    let pg = &config.postgresql;
    let cluster = v9["cluster_name"].as_str().unwrap_or("");
    let mut inst = Map::new();
    inst.insert("hostname".into(), json!(hostname));
    inst.insert("instance".into(), json!(cluster));
    inst.insert("local_name".into(), json!(cluster));
    let available = instance["available"] == json!(true);
    inst.insert("available".into(), json!(available));
    inst.insert("host".into(), json!(pg.host));
    inst.insert("port".into(), json!(pg.port));
    inst.insert("user".into(), json!(pg.user));
    inst.insert("database".into(), json!(pg.dbname));
    if available {
        inst.insert("version_num".into(), instance["version_num"].clone());
        inst.insert("version".into(), v9["version"].clone());
        inst.insert("data_directory".into(), instance["data_directory"].clone());
        let max = &instance["max_connections"];
        inst.insert(
            "max_connections".into(),
            max.as_str()
                .and_then(|m| m.parse::<i64>().ok())
                .map(Value::from)
                .unwrap_or_else(|| max.clone()),
        );
        inst.insert("start_time".into(), v9["start_time"].clone());
        inst.insert("standby".into(), instance["standby"].clone());
        inst.insert("tablespaces".into(), instance["tablespaces"].clone());
        inst.insert("dbnames".into(), instance["dbnames"].clone());
        inst.insert("sysuser".into(), instance["sysuser"].clone());
    }
    let mut out = Map::new();
    for probe in super::probes::PROBES.iter().filter(|p| !super::probes::V2_ONLY.contains(p)) {
        let Some(Value::Array(rows)) = data.get(*probe) else {
            continue;
        };
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if let Value::Object(m) = &mut r {
                    m.remove("port");
                    // Per-database probes keep the date of their own run.
                    if !super::probes::PER_DATABASE.contains(probe) {
                        m.insert("datetime".into(), json!(run_start));
                    }
                }
                r
            })
            .collect();
        out.insert(probe.to_string(), Value::Array(rows));
    }
    json!({
        "datetime": datetime,
        "hostinfo": hostinfo,
        "instances": [inst],
        "data": out,
        "version": crate::discover9::agent_version(),
    })
}
