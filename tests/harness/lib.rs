//! Test harness: real `nats-server` processes, temporary directories, the built binaries.

pub mod bins;
pub mod nats;
pub mod readme;
