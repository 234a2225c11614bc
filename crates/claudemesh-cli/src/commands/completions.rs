//! `claudemesh completions <shell>`: the completion script on stdout.

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::CliResult;
use clap::CommandFactory;

pub fn run(args: &CompletionsArgs) -> CliResult<()> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "claudemesh",
        &mut std::io::stdout(),
    );
    Ok(())
}
