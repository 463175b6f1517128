//! temboard-agent: a Rust re-implementation of the temBoard PostgreSQL agent.
//!
//! One binary, several processes: the [`supervisor`] (started by the operator)
//! forks the http, scheduler, probe and pg_ctl [`workers`], which talk over
//! UNIX-socket [`ipc`] and keep durable state in SQLite ([`store`]).
//! See docs/architecture.md for the process tree and the fd contract.

// The conventions, held by the compiler: every public item documented, every
// unsafe block justified, no unwrap() on input or I/O outside tests.
#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod build_info;
pub mod certgen;
pub mod cli;
pub mod config;
pub mod discover9;
pub mod doctor;
pub mod host;
pub mod http_client;
pub mod ipc;
pub mod logging;
pub mod pg;
pub mod pgbloat;
pub mod pgversion;
pub mod plugins;
pub mod privileges;
pub mod setup;
pub mod signing;
pub mod small_file;
pub mod store;
pub mod supervisor;
pub mod tls;
pub mod ui9;
pub mod users;
pub mod workers;
