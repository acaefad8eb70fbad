//! rolecall: SCIM 2.0 provisioning from an identity provider, and the roles that follow.

pub mod access;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod huge_pages;
pub mod metrics;
pub mod provision;
pub mod roles;
pub mod scim;
pub mod startup;
pub mod store;
pub mod telemetry;
