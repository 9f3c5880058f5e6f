//! The integration suite, one binary with a module per feature. Each test starts the real
//! `monitor-manager` binary (the one cargo built for this target, [`common::BIN`]) on a fresh
//! database through `testkit`, or the same service in process (`in_process`), and talks to it
//! over HTTP, WebSocket and the database.

// First: its `spawn_app!` is used by the modules below it.
#[macro_use]
mod common;

mod architecture;
mod check_options;
mod checks;
mod clients;
mod deployment;
mod distributed;
mod dns_checks;
mod edge;
mod fuzz;
mod graphql;
mod history;
mod in_process;
mod incidents;
mod input;
mod live;
mod maintenance;
mod migrations;
mod monitors;
mod notifications;
mod push_checks;
mod scheduling;
mod services;
mod shutdown;
mod startup;
mod storage;
mod tcp_checks;
mod websocket;
