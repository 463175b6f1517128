//! Records what the agent is built with (rustc, and the versions of its
//! dependencies from Cargo.lock) so `/discover`, `--version` and the logs
//! can say what this agent is made of, as the Python agent reported its
//! Python, psycopg2 and libpq versions.

fn main() {
    // `built` reads Cargo.lock and the compiler; the generated file is
    // included by src/build_info.rs.
    if let Err(e) = built::write_built_file() {
        // A build must not fail for want of metadata, but it must not pass
        // silently either: the generated file is required by the crate.
        panic!("cannot write build information: {e}");
    }
}
