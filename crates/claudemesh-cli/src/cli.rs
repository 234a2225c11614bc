//! The command line: every flag and command, and its help text. Each
//! command's doc comment *is* its `--help`, examples included.

use crate::exit::EXIT_CODES_HELP;
use clap::{Args, Parser, Subcommand};

/// Sign this terminal into claudemesh, then manage meshes and launch Claude Code in one.
///
/// Start with `claudemesh login`. In CI, set CLAUDEMESH_TOKEN to a personal
/// access token (cm_pat_…) or run `claudemesh login --with-token < token.txt`.
///
/// Which token a command uses: --token, then CLAUDEMESH_TOKEN, then the login
/// saved in ~/.claudemesh/auth.json.
#[derive(Debug, Parser)]
#[command(
    name = "claudemesh",
    version,
    propagate_version = true,
    after_help = EXIT_CODES_HELP,
    max_term_width = 100
)]
pub struct Cli {
    /// Use this token (cm_pat_… or cm_session_…) instead of CLAUDEMESH_TOKEN or the saved login
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Print the result as JSON on stdout (messages stay on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// The claudemesh server for login and explicit tokens [default: https://claudemesh.com]; a saved login always uses its own
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "CLAUDEMESH_API_URL",
        hide_env_values = true
    )]
    pub api_url: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Login(LoginArgs),
    Logout(LogoutArgs),
    Whoami(WhoamiArgs),
    Completions(CompletionsArgs),
}

/// Sign this terminal into your claudemesh account
///
/// With no options, opens the browser to approve this device with a short
/// code (the device-code flow); over SSH or without a display it prints the
/// link and the code for you to open on any device. With --token or
/// --with-token, checks a personal access token with the server instead.
/// Either way the token is saved to ~/.claudemesh/auth.json (mode 0600),
/// replacing any earlier login.
///
/// Examples:
///   claudemesh login
///   claudemesh login --no-browser
///   claudemesh login --with-token < token.txt
///   echo "$CLAUDEMESH_PAT" | claudemesh login --with-token
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LoginArgs {
    /// Read a personal access token from stdin instead of using the browser
    #[arg(long)]
    pub with_token: bool,

    /// Do not open a browser; just print the link and the code
    #[arg(long)]
    pub no_browser: bool,

    /// How this machine is named on the approval page and in session lists [default: host name]
    #[arg(long, value_name = "NAME")]
    pub device_name: Option<String>,
}

/// Sign out: revoke the saved token on the server and delete auth.json
///
/// If the server cannot be reached, the local file is still removed and a
/// warning says the token stays valid until it expires (revoke it in the
/// dashboard). Not being logged in is not an error (exit 0).
///
/// With --token, revokes that token on the server instead (for a token that
/// leaked), and removes auth.json only if it holds that same token.
///
/// Examples:
///   claudemesh logout
///   claudemesh logout --token "$LEAKED_TOKEN"
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LogoutArgs {}

/// Show who you are signed in as, with which token, on which server
///
/// Prints the account, the server, where the token came from (--token,
/// CLAUDEMESH_TOKEN or auth.json), its kind and name, when it expires and when
/// it was last used, and warns when it expires within 7 days. Exits 2 when
/// not logged in or the token no longer works.
///
/// Examples:
///   claudemesh whoami
///   claudemesh whoami --sessions
///   claudemesh whoami --json | jq -r .user.email
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct WhoamiArgs {
    /// Also list every CLI session of the account (device, created, last seen)
    #[arg(long)]
    pub sessions: bool,
}

/// Print a shell completion script
///
/// Examples:
///   claudemesh completions bash > ~/.local/share/bash-completion/completions/claudemesh
///   claudemesh completions zsh > "${fpath[1]}/_claudemesh"
///   claudemesh completions fish > ~/.config/fish/completions/claudemesh.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_before_and_after_the_command() {
        let before =
            Cli::try_parse_from(["claudemesh", "--json", "--token", "t", "whoami"]).unwrap();
        let after =
            Cli::try_parse_from(["claudemesh", "whoami", "--json", "--token", "t"]).unwrap();
        for cli in [before, after] {
            assert!(cli.json);
            assert_eq!(cli.token.as_deref(), Some("t"));
            assert!(matches!(cli.command, Some(Command::Whoami(_))));
        }
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("2  authentication"));
    }
}
