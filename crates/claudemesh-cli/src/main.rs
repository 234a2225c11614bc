//! `claudemesh`, the command-line client.
//!
//! Three layers, kept apart: argument parsing ([`cli`]), one module per
//! command ([`commands`]), and the client and state they use ([`api`],
//! [`auth_store`], [`config_store`], [`keys`], [`private_file`],
//! [`device_info`], [`output`], [`exit`], [`backoff`], and [`session`] for
//! the broker's WebSocket). A [`context::Context`] built once from the
//! command line and the environment carries the config directory, the output
//! and the server to every command.

mod api;
mod auth_store;
mod backoff;
mod cli;
mod commands;
mod config_store;
mod context;
mod device_info;
mod exit;
mod keys;
mod mcp;
mod output;
mod private_file;
mod session;
mod session_dir;
mod when;

use clap::Parser;
use clap::error::ErrorKind;
use cli::Cli;
use context::Context;
use exit::Exit;
use output::Output;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are successes; every usage error is "invalid
            // arguments" (3), never clap's 2, which here means authentication.
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(Exit::InvalidArgs.code()),
            };
        }
    };
    let out = Output::from_env(cli.json);
    let result = Context::from_cli(&cli, out.clone()).and_then(|ctx| commands::run(cli, &ctx));
    match result {
        Ok(()) => ExitCode::from(Exit::Success.code()),
        Err(err) => {
            out.error(&err.message);
            if let Some(hint) = &err.hint {
                out.line(hint);
            }
            ExitCode::from(err.exit.code())
        }
    }
}
