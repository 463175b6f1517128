//! The 9.x dashboard sample: the part of a collection that goes to the 9.x
//! document, split from the 2.x one, and the document built from both.

use serde_json::Value;

use super::{host, probe};

/// Takes the 9.x-only figures out of a PostgreSQL part (so 2.x answers and
/// the stored 2.x set stay as they were) and adds the memory in bytes:
/// `{"total_size_bytes", "memory": {"free_bytes", "active_bytes",
/// "cached_bytes"}}`.
pub fn split_v9(pg: &mut serde_json::Map<String, Value>, meminfo: &str) -> Value {
    let size = pg.remove(probe::TOTAL_SIZE_BYTES).unwrap_or(Value::Null);
    serde_json::json!({
        "total_size_bytes": size,
        "memory": host::parse_memory_bytes(meminfo),
    })
}

/// The 9.x sample (facts 5) from a stored 2.x set and its 9.x figures: the
/// same collection feeds both contracts. `timestamp` is the collection's
/// (the 2.x `buffers.time`).
pub fn sample_v9(set: &Value, v9: &Value) -> Value {
    let d = &set["databases"];
    let m = &set["memory"];
    let b = &v9["memory"];
    serde_json::json!({
        "buffers": {"nb": set["buffers"]["nb"]},
        "hitratio": set["hitratio"],
        "active_backends": {"nb": set["active_backends"]["nb"]},
        "databases": {
            "databases": d["databases"],
            "total_size": d["total_size"],
            "nb": d["databases"],
            "total_size_bytes": v9["total_size_bytes"],
            "total_commit": d["total_commit"],
            "total_rollback": d["total_rollback"],
        },
        "cpu": set["cpu"],
        "loadaverage": set["loadaverage"],
        "memory": {
            "total": m["total"],
            "free": m["free"],
            "active": m["active"],
            "cached": m["cached"],
            "free_bytes": b["free_bytes"],
            "active_bytes": b["active_bytes"],
            "cached_bytes": b["cached_bytes"],
        },
        "timestamp": set["buffers"]["time"],
    })
}
