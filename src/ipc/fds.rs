//! The fixed file-descriptor contract between the supervisor and a worker.
//!
//! Everything else is close-on-exec; stdin is `/dev/null`; stdout and stderr are
//! the supervisor's.

/// Control socket to the supervisor (a socketpair end). EOF means the supervisor
/// is gone and the worker must exit.
pub const CONTROL_FD: i32 = 3;

/// Inherited listening socket: the TCP listener for the http worker, the UNIX
/// listener `<home>/run/<role>.sock` for the probe and pg_ctl workers.
pub const LISTENER_FD: i32 = 4;

/// Environment variable naming the role of a worker process. Not a `TEMBOARD_`
/// name so it can never be mistaken for configuration.
pub const ROLE_ENV: &str = "TBA_WORKER_ROLE";

/// Environment variable carrying the supervisor's pid, so a worker can tell
/// that its parent is still the supervisor (even when the supervisor is pid 1
/// in a container).
pub const SUPERVISOR_PID_ENV: &str = "TBA_SUPERVISOR_PID";
