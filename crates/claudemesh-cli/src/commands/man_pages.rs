//! `claudemesh man-pages DIR` (hidden): one man page per command, made by
//! clap_mangen from the definitions `--help` prints (`claudemesh.1`,
//! `claudemesh-login.1`, …). The npm package ships them
//! (`scripts/npm-package`); `cargo install` users write them where `man`
//! looks (crates/claudemesh-cli/README.md).

use crate::base::exit::{CliError, CliResult};
use crate::cli::{Cli, ManPagesArgs};
use clap::CommandFactory;
use std::io::Write as _;
use std::path::Path;

pub fn run(args: &ManPagesArgs) -> CliResult<()> {
    let failed = |err: std::io::Error| {
        CliError::failure(format!(
            "Could not write the man pages to {}: {err}",
            args.dir.display()
        ))
    };
    std::fs::create_dir_all(&args.dir).map_err(failed)?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built, each subcommand knows its full name (`claudemesh-login`).
    command.build();
    write_pages(&command, &args.dir).map_err(failed)?;
    let _ = writeln!(std::io::stdout(), "{}", args.dir.display());
    Ok(())
}

/// The page of `command` and of each of its visible subcommands (hidden
/// ones, `mcp` and this one, get none).
fn write_pages(command: &clap::Command, dir: &Path) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    clap_mangen::Man::new(command.clone())
        .source(format!("claudemesh {}", env!("CARGO_PKG_VERSION")))
        .manual("claudemesh manual")
        .generate_to(dir)?;
    Ok(())
}
