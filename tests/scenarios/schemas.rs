//! Schemas agree with the Rust types (owned by the schemas work).
