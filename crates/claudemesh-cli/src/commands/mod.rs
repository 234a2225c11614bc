//! One module per command; each has one `run(args, ctx)`.

mod completions;
mod login;
mod logout;
mod whoami;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::exit::CliResult;
use clap::CommandFactory;

pub fn run(cli: Cli, ctx: &Context) -> CliResult<()> {
    match cli.command {
        Some(Command::Login(args)) => login::run(&args, ctx),
        Some(Command::Logout(args)) => logout::run(&args, ctx),
        Some(Command::Whoami(args)) => whoami::run(&args, ctx),
        Some(Command::Completions(args)) => completions::run(&args),
        // The launch wizard (spec flow 5) will live here; until then, help.
        None => {
            let _ = Cli::command().print_help();
            Ok(())
        }
    }
}
