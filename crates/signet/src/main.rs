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
