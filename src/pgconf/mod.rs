//! PgConf plugin logic that needs no process of its own: setting values and
//! units, configuration file parsing, pg_hba.conf parsing and writing, and
//! safe file replacement. The probe worker (which runs as the cluster owner)
//! drives it; the http worker never touches these files.

pub mod files;
pub mod hba;
pub mod settings;
