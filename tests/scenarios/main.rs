//! The one integration-test binary: black-box scenarios over real parts.

mod bench;
mod business_time;
mod cli;
mod cli_failures;
mod cli_intake;
mod cli_known;
mod cli_operator;
mod cli_refusals;
mod cli_remote;
mod cli_report;
mod cli_schedule;
mod cli_totals;
mod cli_watch;
mod partner;
mod report;
mod report_out;
mod repository;
mod schemas;
mod services;
mod witness;
