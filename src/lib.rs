//! Monitor Manager as a library: the command line, the settings parsed once into a
//! [`config::Config`], the [`app::Application`] they build, and one module per subcommand.
//! `main.rs` only dispatches; the test harness starts the service in process through here.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
mod db;
mod files;

pub use app::Application;
pub use config::{Config, Role, Topology};
