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
mod import;
mod lifecycle;
mod settings;
mod split_out;
mod trust;

use clap::Parser;

/// mimalloc instead of glibc's allocator: ingest allocates and frees many small strings per event
/// on one thread and frees them on another, where glibc's arenas spent about a sixth of the
/// server's CPU (docs/benchmarks.md, "Where the ingest time goes"). The `override` feature makes
/// it the C `malloc` too, so DuckDB allocates from it: with glibc, DuckDB's idle worker threads
/// call `malloc_trim` (every 0.5 s idle), which hands every free page back to the kernel, and
/// the next projection batch faults them in again (about 220,000 page faults per million
/// sign-ins ingested; docs/benchmarks.md run 25).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the C library of libmimalloc-sys
/// 0.1.49, pinned in Cargo.lock; re-check on an upgrade).
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

fn main() -> std::process::ExitCode {
    // mimalloc gives freed memory back to the OS after a second by default, and the next
    // ingest batch faults it in again, each page zeroed by the kernel (13 % of the server's CPU
    // during ingest, docs/benchmarks.md run 19). Ten seconds outlasts the gaps between batches
    // of a busy ingest, and still gives the memory of a burst, or of a large query, back once
    // the server is quiet (run 25; "never" kept the process at its peak).
    // SAFETY: sets a plain integer option; mimalloc reads options at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
