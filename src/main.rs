//! `monitor-manager`: parse the command line, hand over.

use monitor_manager::{cli, commands};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    bound_c_heaps();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    commands::main(cli)
}

/// Our allocations go through jemalloc, but SQLite's are C code on glibc's malloc, which gives
/// each thread that allocates an arena of its own, up to eight per core, each reserving 64 MiB
/// of address space. Under an address-space limit (`ulimit -v`, some containers) those
/// reservations left new threads without room for their stacks; two arenas suffice for
/// SQLite's few threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_c_heaps() {
    // SAFETY: mallopt only sets an allocator parameter; it runs before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_c_heaps() {}
