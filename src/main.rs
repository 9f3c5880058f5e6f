//! `monitor-manager`: parse the command line, hand over.

mod cli;
mod config;
mod db;
mod db_errors;
mod run;

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    run::main(cli)
}
