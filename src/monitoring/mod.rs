//! Monitoring plugin logic shared by the scheduler (collector) and the http
//! worker (probe routes): host probes, delta computation, the payload.
//! SQL probes run in the probe worker (`workers::probe::monitoring`).

pub mod client;
pub mod deltas;
pub mod host;
pub mod payload;

/// Agent time as 2.x writes it in host probes: `YYYY-MM-DD HH:MM:SS +0000` (UTC).
pub fn agent_datetime() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S +0000")
        .to_string()
}

/// Probes computed from the host rather than PostgreSQL.
pub const HOST_PROBES: [&str; 5] = ["filesystems_size", "cpu", "process", "memory", "loadavg"];
