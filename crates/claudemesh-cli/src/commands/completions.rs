//! `claudemesh completions <shell>`: the completion script on stdout.

use crate::base::exit::CliResult;
use crate::cli::{Cli, CompletionsArgs};
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
