//! Integration tests of the projector over real ledgers in temporary directories.

mod chain;
mod follow;
mod harness;
mod model;
mod persistence;
mod recompute;
mod report;
mod scenario;
