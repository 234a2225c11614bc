//! `claudemesh launch`: Claude Code, started as a live member of a mesh.
//!
//! What is missing is resolved in this order: the login (the device-code
//! sign-in, in a terminal), the mesh (flag, the only one joined here, else a
//! picker), the name (flag, else your name in the mesh), the role. Then a
//! session directory is made ([`crate::stores::session_dir`]) and Claude Code runs
//! with the terminal:
//!
//! `claude [ARGS before --] [--resume=ID | --continue] --mcp-config=<dir>/mcp.json
//!  --dangerously-load-development-channels=server:claudemesh [-- ARGS after]`
//!
//! Both of those flags take several values (`<configs...>`, `<servers...>`):
//! written with `=`, each list ends with its one value (checked against
//! Claude Code 2.1.332: a prompt after the space-separated form is read as a
//! channel and refused). They also come after the user's own arguments and
//! before a `--` the user gave (after it, Claude Code takes only a prompt).
//! `--resume` takes an optional value, so it is written with `=` too. `launch` never edits `~/.claude.json` or Claude
//! Code's settings, and adds `--dangerously-skip-permissions` only if the
//! user passes it (with a warning).
//!
//! Exit: Claude Code's own status (128 + N when it died of signal N), or
//! [`Exit::ClaudeMissing`] when there is no Claude Code to run.

use super::{join, login, sync};
use crate::base::args;
use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::menu;
use crate::base::when;
use crate::cli::{JoinArgs, LaunchArgs};
use crate::context::{Account, Context};
use crate::session;
use crate::stores::config_store::JoinedMesh;
use crate::stores::session_dir::{self, MCP_SERVER_NAME, MessageMode, SessionDir, SessionFile};
use claudemesh_api::Slug;
use claudemesh_api::broker::{is_clean_label, is_group_name};
use claudemesh_api::e2e::{self, KeyPair};
use dialoguer::console::Term;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// How long the launch's attestation lasts; `claudemesh mcp` attests the
/// session key again (with the member key) when it runs out.
const ATTEST_FOR_MS: i64 = 23 * 60 * 60 * 1000;
pub const CLAUDE_BIN_ENV: &str = "CLAUDEMESH_CLAUDE_BIN";
/// What Claude Code's environment says about the session.
pub const DISPLAY_NAME_ENV: &str = "CLAUDEMESH_DISPLAY_NAME";
/// The MCP tool Claude Code asks in print mode with `--relay-permissions`.
pub const PERMISSION_PROMPT_TOOL: &str = "mcp__claudemesh__permission_prompt";

pub fn run(args: &LaunchArgs, ctx: &Context) -> CliResult<()> {
    let interactive = std::io::stdin().is_terminal() && ctx.out.stderr_is_terminal() && !args.yes;
    let plan = resolve(args, ctx, interactive)?;
    start_plan(ctx, &plan, args)
}

/// Runs Claude Code for a resolved plan and exits with its status (the
/// wizard ends here too).
pub fn start_plan(ctx: &Context, plan: &Plan, args: &LaunchArgs) -> CliResult<()> {
    let swept = session_dir::sweep(&ctx.config_dir);
    if swept > 0 {
        ctx.out.line(format!(
            "Removed {swept} session director{} of earlier launches",
            if swept == 1 { "y" } else { "ies" }
        ));
    }
    let claude = find_claude()?;
    let status = start(ctx, plan, &claude, args)?;
    // Claude Code's own status is this command's: exit with it directly,
    // once telemetry has had its (at most 300 ms) say.
    let code = exit_code(status);
    ctx.telemetry.finish(u8::try_from(code).unwrap_or(u8::MAX));
    std::process::exit(code);
}

/// The launch options a wizard launch uses: everything default.
pub fn default_args() -> LaunchArgs {
    LaunchArgs {
        slug: None,
        mesh: None,
        name: None,
        role: None,
        groups: Vec::new(),
        message_mode: crate::stores::session_dir::MessageMode::Push,
        join: None,
        resume: None,
        continue_: false,
        yes: true,
        caps: Vec::new(),
        relay_permissions: false,
        claude_args: Vec::new(),
    }
}

/// Everything a launch needs, resolved.
pub struct Plan {
    pub account: Account,
    pub mesh: JoinedMesh,
    pub display_name: String,
    pub role: String,
    pub groups: Vec<String>,
    /// What the session may do (`--caps`); `None`: all the member's rights.
    pub rights: Option<Vec<claudemesh_api::broker::SessionRight>>,
}

/// Login, mesh, name and role, from the flags, the saved state, or (in a
/// terminal) by asking.
pub fn resolve(args: &LaunchArgs, ctx: &Context, interactive: bool) -> CliResult<Plan> {
    let account = match ctx.account() {
        Ok(account) => account,
        Err(err)
            if err.exit == Exit::Auth
                && interactive
                && ctx.token_flag().is_none()
                && !ctx.env_token_set() =>
        {
            ctx.out.line("You are not signed in; signing in first.");
            login::interactive(ctx)?;
            ctx.account()?
        }
        Err(err) => return Err(err),
    };
    let joined_slug = match &args.join {
        Some(url) => Some(join::join(
            &JoinArgs {
                invite: url.clone(),
                display_name: args.name.clone(),
            },
            ctx,
        )?),
        None => None,
    };
    let given = match (&args.slug, &args.mesh) {
        (Some(a), Some(b)) if a != b => {
            return Err(CliError::invalid_args(format!(
                "Two meshes given: `{a}` and --mesh `{b}`"
            )));
        }
        (Some(slug), _) | (None, Some(slug)) => Some(args::slug_arg(slug, "mesh")?),
        (None, None) => joined_slug
            .as_deref()
            .map(|s| args::slug_arg(s, "mesh"))
            .transpose()?,
    };
    let mesh = pick_mesh(ctx, &account, given.as_ref(), interactive)?;
    let display_name = match &args.name {
        Some(name) => clean_label(name, "--name", false)?,
        None => session::presence_name(&mesh.display_name),
    };
    let role = match &args.role {
        Some(role) => clean_label(role, "--role", true)?,
        None if interactive => ask_role()?,
        None => String::new(),
    };
    let mut groups = Vec::new();
    for group in &args.groups {
        let group = group.trim().trim_start_matches('@').to_ascii_lowercase();
        if group.is_empty() {
            continue;
        }
        if !is_group_name(&group) {
            return Err(CliError::invalid_args(format!(
                "Invalid group {group:?}: 1 to 40 of a-z, 0-9, - and _"
            )));
        }
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(Plan {
        account,
        mesh,
        display_name,
        role,
        groups,
        rights: crate::cli::RightArg::rights(&args.caps),
    })
}

fn clean_label(text: &str, flag: &str, may_be_empty: bool) -> CliResult<String> {
    let text = text.trim().to_owned();
    if is_clean_label(&text, may_be_empty) {
        Ok(text)
    } else {
        Err(CliError::invalid_args(format!(
            "Invalid {flag} {text:?}: at most {} characters, no control characters",
            claudemesh_api::broker::MAX_NAME_CHARS
        )))
    }
}

/// The mesh to launch in: the one named, else the only one joined here
/// (syncing first when none is), else a picker in a terminal.
pub fn pick_mesh(
    ctx: &Context,
    account: &Account,
    given: Option<&Slug>,
    interactive: bool,
) -> CliResult<JoinedMesh> {
    let mut joined = joined_here(ctx, account)?;
    let named_missing = given.is_some_and(|slug| !joined.iter().any(|m| m.slug == slug.as_str()));
    if joined.is_empty() || named_missing {
        // Meshes the account is in but this machine has not joined yet.
        sync::reconcile(ctx, &account.api, &account.server, &account.user.id, false)?;
        joined = joined_here(ctx, account)?;
    }
    let records: Vec<&JoinedMesh> = joined.iter().collect();
    if given.is_none() && records.len() > 1 && interactive {
        // The wizard's menu: the same keys, and Esc or Ctrl-C exit 130.
        let items: Vec<menu::Item> = records
            .iter()
            .map(|m| menu::Item::new(format!("{} ({})", m.name, m.slug)))
            .collect();
        let header = vec![format!("Mesh ({} available):", items.len())];
        let choice = menu::choose(&Term::stderr(), &header, &items, 0)?;
        return Ok(records[choice].clone());
    }
    session::choose(&records, given, "launch").cloned()
}

/// The meshes joined on this machine for the account, still on the server.
pub fn joined_here(ctx: &Context, account: &Account) -> CliResult<Vec<JoinedMesh>> {
    let config = ctx.config().load(&ctx.out)?;
    Ok(config
        .meshes(&account.server, &account.user.id)
        .filter(|m| m.on_server())
        .cloned()
        .collect())
}

fn ask_role() -> CliResult<String> {
    let role: String = dialoguer::Input::new()
        .with_prompt("Role in the mesh (optional, e.g. reviewer)")
        .allow_empty(true)
        .validate_with(|text: &String| {
            if is_clean_label(text.trim(), true) {
                Ok(())
            } else {
                Err("At most 100 characters")
            }
        })
        .interact_text()
        .map_err(|_| menu::cancelled())?;
    Ok(role.trim().to_owned())
}

/// The Claude Code binary: `CLAUDEMESH_CLAUDE_BIN`, then `claude` on
/// `PATH`, then where its installers put it.
pub fn find_claude() -> CliResult<PathBuf> {
    if let Some(bin) = std::env::var_os(CLAUDE_BIN_ENV).filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            // The install hint stays: the variable may point at where
            // Claude Code was meant to be installed.
            Err(CliError::new(
                Exit::ClaudeMissing,
                format!(
                    "{CLAUDE_BIN_ENV} names {}, which is not a file",
                    bin.display()
                ),
            )
            .with_hint(INSTALL_HINT))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("claude"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let home = std::env::home_dir().unwrap_or_default();
    let usual = [
        home.join(".claude/local/claude"),
        home.join(".local/bin/claude"),
        home.join(".npm-global/bin/claude"),
        PathBuf::from("/usr/local/bin/claude"),
        PathBuf::from("/opt/homebrew/bin/claude"),
    ];
    on_path
        .into_iter()
        .chain(usual)
        .find(|candidate| is_executable(candidate))
        .ok_or_else(missing_claude)
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

const INSTALL_HINT: &str = "Install it with `npm install -g @anthropic-ai/claude-code` \
     (see https://docs.claude.com/claude-code), or point CLAUDEMESH_CLAUDE_BIN at it.";

fn missing_claude() -> CliError {
    CliError::new(
        Exit::ClaudeMissing,
        "Claude Code is not installed (no `claude` found)",
    )
    .with_hint(INSTALL_HINT)
}

/// Claude Code's arguments: the user's, with the launch's flags placed so
/// that neither swallows the other (see the module docs).
pub fn claude_args(mcp_config: &Path, args: &LaunchArgs) -> Vec<String> {
    let (before, after) = match args.claude_args.iter().position(|a| a == "--") {
        Some(i) => (&args.claude_args[..i], Some(&args.claude_args[i + 1..])),
        None => (&args.claude_args[..], None),
    };
    let mut argv: Vec<String> = before.to_vec();
    if let Some(id) = &args.resume {
        argv.push(format!("--resume={id}"));
    }
    if args.continue_ {
        argv.push("--continue".to_owned());
    }
    argv.extend([
        format!("--mcp-config={}", mcp_config.display()),
        format!("--dangerously-load-development-channels=server:{MCP_SERVER_NAME}"),
    ]);
    if args.relay_permissions {
        // Print mode asks this tool instead of a person (interactive
        // sessions relay through the channel capability instead).
        argv.push(format!("--permission-prompt-tool={PERMISSION_PROMPT_TOOL}"));
    }
    if let Some(after) = after {
        argv.push("--".to_owned());
        argv.extend(after.iter().cloned());
    }
    argv
}

/// Makes the session directory, runs Claude Code with the terminal, and
/// removes the directory after.
fn start(ctx: &Context, plan: &Plan, claude: &Path, args: &LaunchArgs) -> CliResult<ExitStatus> {
    if args
        .claude_args
        .iter()
        .any(|a| a == "--dangerously-skip-permissions")
    {
        ctx.out.warn(
            "--dangerously-skip-permissions: peers in the mesh can send text into this session, \
             and Claude Code will act on it without asking you.",
        );
    }
    let file = session_file(plan, args.message_mode)?;
    let exe = std::env::current_exe()
        .map_err(|err| CliError::failure(format!("Cannot find the claudemesh binary: {err}")))?;
    // `--relay-permissions`, or the config's setting.
    let relay = args.relay_permissions || ctx.config().load(&ctx.out)?.settings.relay_permissions;
    let args = &LaunchArgs {
        relay_permissions: relay,
        ..args.clone()
    };
    let mcp_args: &[&str] = if relay { &["--relay-permissions"] } else { &[] };
    let dir = SessionDir::create_with_args(&ctx.config_dir, &file, &exe, mcp_args)?;
    if relay {
        ctx.out.line(format!(
            "Permission prompts are relayed to your other sessions: answer with `claudemesh approve ID --mesh {}`",
            plan.mesh.slug
        ));
    }
    ctx.out.success(format!(
        "Launching Claude Code in {} as {}",
        plan.mesh.slug, plan.display_name
    ));
    let mut command = Command::new(claude);
    command
        .args(claude_args(&dir.mcp_config_path(), args))
        .env(session_dir::CONFIG_DIR_ENV, &dir.path)
        .env(DISPLAY_NAME_ENV, &plan.display_name);
    let result = run_child(command);
    dir.remove();
    result.map_err(|err| CliError::failure(format!("Could not run {}: {err}", claude.display())))
}

/// The session a launch gives Claude Code: a fresh session key, attested by
/// the member key of the plan's mesh for [`ATTEST_FOR_MS`].
pub fn session_file(plan: &Plan, message_mode: MessageMode) -> CliResult<SessionFile> {
    let member = KeyPair::from_secret_hex(&plan.mesh.secret_key).ok_or_else(|| {
        CliError::failure(format!(
            "The key of mesh `{}` in config.json is damaged",
            plan.mesh.slug
        ))
    })?;
    let session_key = KeyPair::generate().map_err(|_| {
        CliError::failure("Could not make a session key: the system's random source failed")
    })?;
    let expires_at = when::now_ms() + ATTEST_FOR_MS;
    let rights = plan.rights.clone();
    let attestation = member.sign_hex(&e2e::attestation_bytes_for(
        &plan.mesh.mesh_id,
        &session_key.public_hex(),
        expires_at,
        rights.as_deref(),
    ));
    let file = SessionFile {
        version: SessionFile::new_version(),
        server: plan.account.server.clone(),
        user_id: plan.account.user.id.clone(),
        mesh_id: plan.mesh.mesh_id.clone(),
        mesh_slug: plan.mesh.slug.clone(),
        mesh_name: plan.mesh.name.clone(),
        display_name: plan.display_name.clone(),
        role: plan.role.clone(),
        groups: plan.groups.clone(),
        message_mode,
        session_secret_key: session_key.secret_hex(),
        session_public_key: session_key.public_hex(),
        attestation_expires_at: expires_at,
        attestation_signature: attestation,
        rights,
        launcher_pid: std::process::id(),
        created_at: when::now_rfc3339(),
    };
    Ok(file)
}

/// Runs Claude Code with this terminal until it exits. In a terminal, Ctrl-C
/// reaches it from the terminal itself (this process only ignores it);
/// SIGTERM and SIGHUP sent to this process are passed on, and so is
/// SIGINT when there is no terminal to deliver it.
fn run_child(command: Command) -> std::io::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut child = tokio::process::Command::from(command).spawn()?;
        let pid = child.id();
        let terminal = std::io::stdin().is_terminal();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            let mut hangup = signal(SignalKind::hangup())?;
            loop {
                tokio::select! {
                    status = child.wait() => return status,
                    _ = interrupt.recv() => if !terminal { forward(pid, "INT") },
                    _ = terminate.recv() => forward(pid, "TERM"),
                    _ = hangup.recv() => forward(pid, "HUP"),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (pid, terminal);
            child.wait().await
        }
    })
}

/// Sends a signal to the child (with kill(1): this crate has no unsafe code).
fn forward(pid: Option<u32>, signal: &str) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status();
    }
}

/// The exit code for Claude Code's status: its own, or 128 + the signal
/// that ended it, as a shell reports it.
fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn launch(argv: &[&str]) -> LaunchArgs {
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Some(crate::cli::Command::Launch(args)) => args,
            other => panic!("not a launch: {other:?}"),
        }
    }

    #[test]
    fn a_prompt_is_never_swallowed_by_the_variadic_flags() {
        let config = Path::new("/s/mcp.json");
        let args = launch(&["claudemesh", "launch", "--", "fix the flaky test"]);
        assert_eq!(
            claude_args(config, &args),
            [
                "fix the flaky test",
                "--mcp-config=/s/mcp.json",
                "--dangerously-load-development-channels=server:claudemesh"
            ]
        );
        let args = launch(&[
            "claudemesh",
            "launch",
            "--resume",
            "abc",
            "--",
            "--model",
            "opus",
            "--",
            "-x starts with a dash",
        ]);
        assert_eq!(
            claude_args(config, &args),
            [
                "--model",
                "opus",
                "--resume=abc",
                "--mcp-config=/s/mcp.json",
                "--dangerously-load-development-channels=server:claudemesh",
                "--",
                "-x starts with a dash"
            ]
        );
    }

    /// docs/cli.md and this crate's README show what `launch` really runs:
    /// the example is computed here and must stand in both, and neither may
    /// show the flags in their old form, separate from their values.
    #[test]
    fn the_docs_show_the_arguments_launch_gives_claude_code() {
        let args = launch(&[
            "claudemesh",
            "launch",
            "--continue",
            "--",
            "--model",
            "opus",
            "fix the flaky test",
        ]);
        let argv = claude_args(Path::new("SESSION_DIR/mcp.json"), &args);
        let shown = std::iter::once("claude".to_owned())
            .chain(argv.iter().map(|a| crate::base::display::shell_word(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for doc in ["docs/cli.md", "crates/claudemesh-cli/README.md"] {
            let text = std::fs::read_to_string(workspace.join(doc)).unwrap();
            assert!(
                text.contains(&shown),
                "{doc} must show what launch runs:\n{shown}"
            );
            for old in [
                "--mcp-config <",
                "--mcp-config SESSION_DIR",
                "--dangerously-load-development-channels server:",
            ] {
                assert!(!text.contains(old), "{doc} still shows `{old}`");
            }
        }
    }

    #[test]
    fn relaying_permissions_names_the_prompt_tool_before_the_prompt() {
        let args = launch(&[
            "claudemesh",
            "launch",
            "--relay-permissions",
            "--",
            "-p",
            "--",
            "deploy",
        ]);
        assert_eq!(
            claude_args(Path::new("/s/mcp.json"), &args),
            [
                "-p",
                "--mcp-config=/s/mcp.json",
                "--dangerously-load-development-channels=server:claudemesh",
                "--permission-prompt-tool=mcp__claudemesh__permission_prompt",
                "--",
                "deploy"
            ]
        );
    }

    #[test]
    fn resume_and_continue_exclude_each_other() {
        assert!(
            Cli::try_parse_from(["claudemesh", "launch", "--resume", "a", "--continue"]).is_err()
        );
    }
}
