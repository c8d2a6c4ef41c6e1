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

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
