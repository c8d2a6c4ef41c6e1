//! `signet`: one binary for the server and every command-line task.
//!
//! Commands that read or write data work on a data directory (`--data`, default
//! `./signet-data`) when no server holds it, or against a running server with `--server URL`.

mod admin;
mod archive;
mod bench;
mod cli;
mod clickhouse;
mod config;
mod demo;
mod settings;
mod split_out;
mod trust;

use clap::Parser;

/// mimalloc instead of glibc's allocator: ingest allocates and frees many small strings per event
/// on one thread and frees them on another, where glibc's arenas spent about a sixth of the
/// server's CPU (docs/benchmarks.md, "Where the ingest time goes").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the C library of libmimalloc-sys
/// 0.1.49, pinned in Cargo.lock; re-check on an upgrade).
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

fn main() -> std::process::ExitCode {
    // mimalloc gives freed memory back to the OS after a second, and the next ingest batch
    // faults it in again, each page zeroed by the kernel (13 % of the server's CPU during
    // ingest, docs/benchmarks.md run 19). Never purging keeps the process at its peak, which
    // the ingest limits (`ingest_queue_mb`, in-flight events) bound.
    // SAFETY: sets a plain integer option; mimalloc reads options at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
