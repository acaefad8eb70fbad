//! One integration-test binary: every test starts the real server on a random port and
//! talks HTTP to it, once on SQLite and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin;
mod auth;
mod bulk;
mod conformance;
mod discovery;
mod errors;
mod explain;
mod groups;
mod idp_replay;
mod races;
mod roles;
mod search;
mod sole_server;
mod tls;
mod user_reads;
mod users;
