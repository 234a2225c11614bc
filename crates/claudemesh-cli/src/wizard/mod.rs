//! Bare `claudemesh` on a terminal: from a fresh install to Claude Code in a
//! mesh in one walk (spec flow 5, "Wizard UX integration").
//!
//! 1. Not signed in: the welcome menu (Sign in / Paste an access token /
//!    Join via invite URL / Create account / Exit).
//! 2. The launch screen: status rows (Account, Mesh, Name, Role), rows
//!    already known shown done, then Continue, which hands over to Claude
//!    Code as `claudemesh launch` does.
//!
//! Not on a terminal (CI, a pipe) it prints the help and exits 3: it never
//! waits for input that cannot come. Esc, q and Ctrl-C cancel at any point
//! with the terminal restored (exit 130). Spanish when the locale is.

mod text;

use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::menu::{Item, cancelled, choose};
use crate::cli::{CreateArgs, JoinArgs};
use crate::commands::{create, join, launch, login, sync};
use crate::context::{Account, Context};
use crate::session;
use crate::stores::config_store::JoinedMesh;
use dialoguer::console::Term;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use text::Text;

pub fn run(ctx: &Context) -> CliResult<()> {
    if !terminal(ctx) {
        return not_a_terminal();
    }
    let guard = InterruptGuard::arm();
    let t = Text::for_locale();
    let term = Term::stderr();
    let mut joining = None;
    if needs_sign_in(ctx)? {
        match welcome(ctx, &term, t)? {
            Welcome::SignedIn => {}
            Welcome::Join(url) => joining = Some(url),
            Welcome::Exit => return Ok(()),
        }
    }
    launch_screen(ctx, &term, t, joining, guard)
}

/// `claudemesh <invite-url>`: join, then launch in that mesh.
pub fn join_and_launch(ctx: &Context, url: &str) -> CliResult<()> {
    if !terminal(ctx) {
        let mut args = launch::default_args();
        args.join = Some(url.to_owned());
        return launch::run(&args, ctx).map_err(|err| {
            if err == CliError::not_logged_in() {
                sign_in_to_join(url)
            } else {
                err
            }
        });
    }
    let guard = InterruptGuard::arm();
    let t = Text::for_locale();
    if needs_sign_in(ctx)? {
        login::interactive(ctx)?;
    }
    launch_screen(ctx, &Term::stderr(), t, Some(url.to_owned()), guard)
}

/// Not signed in, off a terminal: how to get an account and come back.
fn sign_in_to_join(url: &str) -> CliError {
    let server = url.split("/i/").next().unwrap_or(url);
    CliError::new(Exit::Auth, "Not logged in: sign in to join this mesh").with_hint(format!(
        "Run `claudemesh login` (no account yet? create one at {server}/register), then `claudemesh {url}` again. In CI, set CLAUDEMESH_TOKEN."
    ))
}

fn terminal(ctx: &Context) -> bool {
    std::io::stdin().is_terminal() && ctx.out.stderr_is_terminal()
}

fn not_a_terminal() -> CliResult<()> {
    use clap::CommandFactory;
    let _ = crate::cli::Cli::command().print_help();
    Err(
        CliError::invalid_args("No command given, and no terminal to ask in")
            .with_hint("Run `claudemesh launch --mesh SLUG -y` to launch without questions."),
    )
}

fn needs_sign_in(ctx: &Context) -> CliResult<bool> {
    match ctx.account() {
        Ok(_) => Ok(false),
        Err(err) if err.exit == Exit::Auth => Ok(true),
        Err(err) => Err(err),
    }
}

enum Welcome {
    SignedIn,
    Join(String),
    Exit,
}

/// The welcome menu, until a sign-in works or the user leaves.
fn welcome(ctx: &Context, term: &Term, t: &Text) -> CliResult<Welcome> {
    let header = vec![ctx.out.bold("██ claudemesh"), String::new()];
    let items = [
        Item::new(t.sign_in),
        Item::new(t.paste_token),
        Item::new(t.join_invite),
        Item::new(t.create_account),
        Item::new(t.exit),
    ];
    loop {
        let attempt = match choose(term, &header, &items, 0)? {
            0 => login::interactive(ctx).map(|()| Welcome::SignedIn),
            1 => {
                let token = dialoguer::Password::new()
                    .with_prompt(t.token_prompt)
                    .interact()
                    .map_err(|_| cancelled())?;
                login::with_token_text(ctx, token.trim()).map(|()| Welcome::SignedIn)
            }
            2 => {
                let url = ask(t.invite_prompt, "")?;
                if url.is_empty() {
                    continue;
                }
                // Joining needs an account: sign in first, then come back to it.
                login::interactive(ctx).map(|()| Welcome::Join(url))
            }
            3 => {
                let register = format!("{}/register", ctx.requested_server());
                ctx.out
                    .line(t.create_account_opening.replace("{url}", &register));
                let _ = open::that_detached(&register);
                ctx.out.line(t.then_sign_in);
                login::interactive(ctx).map(|()| Welcome::SignedIn)
            }
            _ => return Ok(Welcome::Exit),
        };
        match attempt {
            Ok(next) => return Ok(next),
            Err(err) if err.exit == Exit::Cancelled => return Err(err),
            // Say what went wrong and offer the menu again.
            Err(err) => {
                ctx.out.error(&err.message);
                if let Some(hint) = &err.hint {
                    ctx.out.line(hint);
                }
            }
        }
    }
}

fn ask(prompt: &str, default: &str) -> CliResult<String> {
    let input: String = dialoguer::Input::new()
        .with_prompt(prompt)
        .with_initial_text(default)
        .allow_empty(true)
        .interact_text()
        .map_err(|_| cancelled())?;
    Ok(input.trim().to_owned())
}

/// What the launch screen has settled so far.
struct Choices {
    mesh: Option<JoinedMesh>,
    name: Option<String>,
    role: String,
}

fn launch_screen(
    ctx: &Context,
    term: &Term,
    t: &Text,
    joining: Option<String>,
    guard: InterruptGuard,
) -> CliResult<()> {
    let account = ctx.account()?;
    let joined_slug = match joining {
        Some(url) => Some(join::join(
            &JoinArgs {
                invite: url,
                display_name: None,
            },
            ctx,
        )?),
        None => None,
    };
    let mut meshes = launch::joined_here(ctx, &account)?;
    if meshes.is_empty() {
        // In meshes on the server that this machine has not joined yet?
        sync::reconcile(ctx, &account.api, &account.server, &account.user.id, false)?;
        meshes = launch::joined_here(ctx, &account)?;
    }
    let preset = match &joined_slug {
        Some(slug) => meshes.iter().find(|m| &m.slug == slug).cloned(),
        None if meshes.len() == 1 => meshes.first().cloned(),
        None => None,
    };
    let mut choices = Choices {
        name: preset
            .as_ref()
            .map(|m| session::presence_name(&m.display_name)),
        mesh: preset,
        role: String::new(),
    };
    loop {
        if choices.mesh.is_none() {
            match pick_mesh(ctx, term, t, &account, &mut meshes)? {
                Some(mesh) => {
                    choices.name = Some(session::presence_name(&mesh.display_name));
                    choices.mesh = Some(mesh);
                }
                None => return Err(cancelled()),
            }
        }
        let header = status_rows(ctx, t, &account, &choices);
        let items = [
            Item::new(t.continue_),
            Item::new(t.change_mesh),
            Item::new(t.change_name),
            Item::new(t.change_role),
            Item::new(t.cancel),
        ];
        match choose(term, &header, &items, 0)? {
            0 => break,
            1 => choices.mesh = None,
            2 => {
                let name = ask(t.name_prompt, choices.name.as_deref().unwrap_or_default())?;
                if name.is_empty() {
                    ctx.out.error(t.empty_name);
                } else if claudemesh_api::broker::is_clean_label(&name, false) {
                    choices.name = Some(name);
                } else {
                    ctx.out.error(t.bad_name);
                }
            }
            3 => {
                let role = ask(t.role_prompt, &choices.role)?;
                if claudemesh_api::broker::is_clean_label(&role, true) {
                    choices.role = role;
                } else {
                    ctx.out.error(t.bad_name);
                }
            }
            _ => return Err(cancelled()),
        }
    }
    let (Some(mesh), Some(name)) = (choices.mesh, choices.name) else {
        return Err(cancelled());
    };
    // Claude Code gets the terminal, Ctrl-C included, from here on.
    guard.disarm();
    let plan = launch::Plan {
        account,
        mesh,
        display_name: name,
        role: choices.role,
        groups: Vec::new(),
        rights: None,
    };
    launch::start_plan(ctx, &plan, &launch::default_args())
}

fn status_rows(ctx: &Context, t: &Text, account: &Account, choices: &Choices) -> Vec<String> {
    let done = |label: &str, value: &str| format!("{label:<8} {} {value}", ctx.out.check());
    let mut rows = vec![ctx.out.bold("██ claudemesh launch"), String::new()];
    rows.push(done(t.account, &account.user.name));
    if let Some(mesh) = &choices.mesh {
        rows.push(done(t.mesh, &format!("{} ({})", mesh.name, mesh.slug)));
    }
    rows.push(done(t.name, choices.name.as_deref().unwrap_or_default()));
    if choices.role.is_empty() {
        rows.push(format!("{:<8} – {}", t.role, t.no_role));
    } else {
        rows.push(done(t.role, &choices.role));
    }
    rows.push(String::new());
    rows
}

/// The mesh picker; with no mesh at all, offers to create or join one.
fn pick_mesh(
    ctx: &Context,
    term: &Term,
    t: &Text,
    account: &Account,
    meshes: &mut Vec<JoinedMesh>,
) -> CliResult<Option<JoinedMesh>> {
    loop {
        let mut items: Vec<Item> = meshes
            .iter()
            .map(|m| Item::new(format!("{} ({})", m.name, m.slug)))
            .collect();
        let first_extra = items.len();
        items.push(Item::new(t.create_mesh));
        items.push(Item::new(t.join_invite));
        items.push(Item::new(t.cancel));
        let header = vec![
            ctx.out.bold("██ claudemesh launch"),
            String::new(),
            if meshes.is_empty() {
                t.no_mesh.to_owned()
            } else {
                t.pick_mesh.replace("{n}", &meshes.len().to_string())
            },
        ];
        let picked = choose(term, &header, &items, 0)?;
        let slug = if picked < first_extra {
            return Ok(Some(meshes[picked].clone()));
        } else if picked == first_extra {
            let name = ask(t.mesh_name_prompt, "")?;
            if name.is_empty() {
                continue;
            }
            let created = create::run(
                &CreateArgs {
                    name,
                    slug: None,
                    display_name: None,
                },
                ctx,
            );
            match created {
                Ok(()) => None,
                Err(err) => {
                    ctx.out.error(&err.message);
                    continue;
                }
            }
        } else if picked == first_extra + 1 {
            let url = ask(t.invite_prompt, "")?;
            if url.is_empty() {
                continue;
            }
            match join::join(
                &JoinArgs {
                    invite: url,
                    display_name: None,
                },
                ctx,
            ) {
                Ok(slug) => Some(slug),
                Err(err) => {
                    ctx.out.error(&err.message);
                    continue;
                }
            }
        } else {
            return Ok(None);
        };
        let before: Vec<String> = meshes.iter().map(|m| m.mesh_id.clone()).collect();
        *meshes = launch::joined_here(ctx, account)?;
        // The mesh just joined or created.
        let new = match slug {
            Some(slug) => meshes.iter().find(|m| m.slug == slug),
            None => meshes.iter().find(|m| !before.contains(&m.mesh_id)),
        };
        if let Some(mesh) = new {
            return Ok(Some(mesh.clone()));
        }
    }
}

/// While the wizard asks, Ctrl-C (outside a menu, which reads it as a key)
/// restores the terminal and exits 130 instead of leaving it without echo
/// or cursor. Disarmed when Claude Code takes the terminal.
struct InterruptGuard {
    armed: Arc<AtomicBool>,
}

impl InterruptGuard {
    /// Returns once the handler is in place: a Ctrl-C that came while it
    /// was being installed would be swallowed, leaving the prompt waiting.
    fn arm() -> Self {
        let armed = Arc::new(AtomicBool::new(true));
        let watching = Arc::clone(&armed);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = ready_tx.send(());
                return;
            };
            // Registered here, not at the first poll of a future.
            let interrupts = {
                let _entered = runtime.enter();
                interrupts()
            };
            let _ = ready_tx.send(());
            let Ok(mut interrupts) = interrupts else {
                return;
            };
            runtime.block_on(async move {
                while interrupts.recv().await.is_some() {
                    if watching.load(Ordering::SeqCst) {
                        restore_terminal();
                        eprintln!();
                        std::process::exit(i32::from(Exit::Cancelled.code()));
                    }
                }
            });
        });
        let _ = ready.recv();
        Self { armed }
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}

#[cfg(unix)]
fn interrupts() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

#[cfg(windows)]
fn interrupts() -> std::io::Result<tokio::signal::windows::CtrlC> {
    tokio::signal::windows::ctrl_c()
}

fn restore_terminal() {
    let _ = Term::stderr().show_cursor();
    if let Ok(tty) = std::fs::File::open("/dev/tty") {
        let _ = std::process::Command::new("stty")
            .arg("sane")
            .stdin(tty)
            .status();
    }
}
