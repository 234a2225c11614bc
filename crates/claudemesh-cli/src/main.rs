//! `claudemesh`, the command-line client.
//!
//! Three layers, kept apart: argument parsing ([`cli`]), one module per
//! command ([`commands`]), and the client and state they use ([`api`],
//! [`auth_store`], [`config_store`], [`keys`], [`private_file`],
//! [`device_info`], [`output`], [`exit`], [`backoff`], [`session`] for
//! the broker's WebSocket, and [`telemetry`]). A [`context::Context`] built
//! once from the command line and the environment carries the config
//! directory, the output, the server and the command's telemetry to every
//! command.

mod api;
mod auth_store;
mod backoff;
mod cli;
mod commands;
mod config_store;
mod context;
mod credential_store;
mod device_info;
mod exit;
mod keys;
mod mcp;
mod output;
mod private_file;
mod session;
mod session_dir;
mod telemetry;
mod when;

use clap::Parser;
use clap::error::ErrorKind;
use cli::Cli;
use context::Context;
use exit::Exit;
use output::Output;
use std::process::ExitCode;
use telemetry::Telemetry;

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
    let mut ctx = match Context::from_cli(&cli, out.clone()) {
        Ok(ctx) => ctx,
        Err(err) => return ExitCode::from(fail(&out, &err)),
    };
    // The first-run notice, then this command's events (docs/telemetry.md).
    ctx.telemetry = Telemetry::start(&cli, &ctx);
    let code = match commands::run(cli, &ctx) {
        Ok(()) => Exit::Success.code(),
        Err(err) => fail(&out, &err),
    };
    // Once the result is shown: sending waits at most 300 ms.
    ctx.telemetry.finish(code);
    ExitCode::from(code)
}

/// Says what went wrong; the exit code to end with.
fn fail(out: &Output, err: &exit::CliError) -> u8 {
    out.error(&err.message);
    if let Some(hint) = &err.hint {
        out.line(hint);
    }
    err.exit.code()
}
