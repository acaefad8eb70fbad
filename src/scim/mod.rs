//! Pure SCIM protocol code (RFC 7643/7644): schemas, resource validation, the filter
//! grammar and the PATCH engine. No HTTP, no database, no async.

pub mod attr_ref;
pub mod bulk;
pub mod cursor;
pub mod error;
pub mod filter;
pub mod key;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod sort;
