//! The one integration-test binary: black-box scenarios over real parts.

mod schemas;
mod services;
