//! Monitor Manager as a library: the command line, the settings and what each subcommand runs.
//! `main.rs` only dispatches; tests and the bench harness start the service through here.

pub mod cli;
pub mod config;
mod db;
pub mod run;
