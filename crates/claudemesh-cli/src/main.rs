//! `claudemesh`, the command-line client.
//!
//! Layers that only point down (ARCHITECTURE.md; the tidy test
//! `import_cycles` keeps them so), from the bottom:
//!
//! 1. [`base`]: exit codes and errors, output, time, private files, keys,
//!    the server URL, command-line words, display. Uses nothing above.
//! 2. [`cli`]: the arguments (clap). [`stores`]: `auth.json` and the OS
//!    keyring, `config.json`, per-launch session directories.
//! 3. [`telemetry`]: this command's usage events, started from the config
//!    directory and the arguments; [`api`]: the typed HTTP client.
//! 4. [`context`]: what every command gets, built once from the command
//!    line and the environment (config directory, output, server, token).
//! 5. [`session`]: a one-off command's session with the broker.
//! 6. [`commands`]: one module per command.
//! 7. [`wizard`] (bare `claudemesh`) and [`mcp`] (the MCP server Claude
//!    Code runs), on top; `main` picks what runs.

mod api;
mod base;
mod cli;
mod commands;
mod context;
mod mcp;
mod session;
mod stores;
mod telemetry;
mod wizard;

use base::args::looks_like_invite;
use base::exit::{CliError, CliResult, Exit};
use base::output::Output;
use clap::Parser;
use clap::error::ErrorKind;
use cli::{Cli, Command};
use commands::mesh_log;
use commands::stream;
use commands::{approve, relay::Behavior};
use commands::{
    completions, create, doctor, grants, inbox, invite, join, launch, leave, list, login, logout,
    man_pages, members, mesh, peers, send, sync, telemetry as telemetry_command, whoami,
};
use context::Context;
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
    let token_given = ctx.token_flag().is_some() || ctx.env_token_set();
    ctx.telemetry = Telemetry::start(&cli, &ctx.config_dir, &out, token_given);
    let code = match run(cli, &ctx) {
        Ok(()) => Exit::Success.code(),
        Err(err) => fail(&out, &ctx.explain(err)),
    };
    // Once the result is shown: sending waits at most 300 ms.
    ctx.telemetry.finish(code);
    ExitCode::from(code)
}

/// The command asked for; bare `claudemesh` is the welcome wizard.
fn run(cli: Cli, ctx: &Context) -> CliResult<()> {
    match cli.command {
        Some(Command::Login(args)) => login::run(&args, ctx),
        Some(Command::Logout(args)) => logout::run(&args, ctx),
        Some(Command::Whoami(args)) => whoami::run(&args, ctx),
        Some(Command::Create(args)) => create::run(&args, ctx),
        Some(Command::List(args)) => list::run(&args, ctx),
        Some(Command::Sync(args)) => sync::run(&args, ctx),
        Some(Command::Invite(args)) => invite::run(&args, ctx),
        Some(Command::Join(args)) => join::run(&args, ctx),
        Some(Command::Leave(args)) => leave::run(&args, ctx),
        Some(Command::Peers(args)) => peers::run(&args, ctx),
        Some(Command::Send(args)) => send::run(&args, ctx),
        Some(Command::Inbox(args)) => inbox::run(&args, ctx),
        Some(Command::Launch(args)) => launch::run(&args, ctx),
        Some(Command::Mcp(args)) => mcp::run(&args, ctx),
        // Permission prompts relayed to their owner (issue 18).
        Some(Command::Approve(args)) => approve::run(&args, Behavior::Allow, ctx),
        Some(Command::Deny(args)) => approve::run(&args, Behavior::Deny, ctx),
        Some(Command::Doctor(args)) => doctor::run(&args, ctx),
        Some(Command::Completions(args)) => completions::run(&args),
        Some(Command::ManPages(args)) => man_pages::run(&args),
        Some(Command::Telemetry(args)) => telemetry_command::run(&args, ctx),
        // Governance (issue 17).
        Some(Command::Members(args)) => members::run(&args, ctx),
        Some(Command::Mesh(args)) => mesh::run(&args, ctx),
        Some(Command::Grant(args)) => grants::run_grant(&args, grants::Change::Grant, ctx),
        Some(Command::Revoke(args)) => grants::run_grant(&args, grants::Change::Revoke, ctx),
        Some(Command::Block(args)) => grants::run_block(&args, grants::Change::Block, ctx),
        Some(Command::Unblock(args)) => grants::run_block(&args, grants::Change::Unblock, ctx),
        Some(Command::Grants(args)) => grants::run_list(&args, ctx),
        Some(Command::Log(command)) => mesh_log::run(&command, ctx),
        Some(Command::Stream(command)) => stream::run(&command, ctx),
        // `claudemesh <invite link>`: join and launch.
        Some(Command::External(words)) => match words.as_slice() {
            [word] if looks_like_invite(word) => wizard::join_and_launch(ctx, word),
            _ => {
                let word = words.first().map(String::as_str).unwrap_or_default();
                let hint = match cli::closest_command(word) {
                    Some(name) => {
                        format!("Did you mean `claudemesh {name}`? See `claudemesh --help`.")
                    }
                    None => "See `claudemesh --help`.".to_owned(),
                };
                Err(CliError::invalid_args(format!("Unknown command `{word}`")).with_hint(hint))
            }
        },
        // Bare `claudemesh`: the welcome wizard (help, off a terminal).
        None => wizard::run(ctx),
    }
}

/// Says what went wrong; the exit code to end with.
fn fail(out: &Output, err: &CliError) -> u8 {
    out.error(&err.message);
    if let Some(hint) = &err.hint {
        out.line(hint);
    }
    err.exit.code()
}
