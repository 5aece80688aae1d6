//! Integration tests of the ledger crate over real sled directories.

mod audit;
mod audit_positions;
mod crash;
mod decoding;
mod failure;
mod follow;
mod harness;
mod index;
mod model;
mod pipeline;
mod rejections;
mod scenario;
