//! `monitor-manager`: parse the command line, hand over.

mod cli;
mod config;
mod db;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run::main(cli)
}
