//! The one integration-test binary: black-box scenarios over real parts.

mod cli;
mod schemas;
mod services;
