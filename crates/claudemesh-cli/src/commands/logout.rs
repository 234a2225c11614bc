//! `claudemesh logout`: remove the saved token from the OS credential store
//! and delete auth.json (spec flow 7). A session token made by `login` is
//! revoked on the server first; a personal access token only with
//! `--revoke`, since the same PAT may run CI or other machines (the spec:
//! PATs are managed by the user; `gh auth logout` does not revoke either).
//! Revocation uses `POST /api/auth/cli/revoke`, which needs only the token
//! itself. Best effort: if the server cannot be reached (or the credential
//! store cannot give the token back) what is here is still removed, with a
//! warning. Not being logged in is not an error (exit 0): the state asked
//! for already holds (a token a lost login left in the credential store is
//! removed all the same).

use crate::base::exit::{CliError, CliResult, Exit, tokens_page};
use crate::cli::LogoutArgs;
use crate::context::{Context, saved_server};
use crate::stores::auth_store::{AuthStore, KeyringRemoval};
use claudemesh_api::{Token, TokenKind};
use serde::Serialize;

#[derive(Serialize, Default)]
struct LogoutJson {
    /// Whether a token was revoked on the server.
    revoked_on_server: bool,
    /// A personal access token left valid on purpose (no `--revoke`).
    kept_on_server: bool,
    /// The file removed, if any.
    removed: Option<String>,
    /// Whether the token was removed from the OS credential store.
    removed_from_keyring: bool,
}

pub fn run(args: &LogoutArgs, ctx: &Context) -> CliResult<()> {
    let result = match ctx.token_flag() {
        Some(text) => revoke_given_token(ctx, text)?,
        None => log_out_saved(ctx, args.revoke)?,
    };
    if ctx.env_token_set() {
        ctx.out
            .warn("CLAUDEMESH_TOKEN is still set: commands keep using it until you unset it");
    }
    if ctx.out.json {
        ctx.out.json(&result);
    }
    Ok(())
}

fn log_out_saved(ctx: &Context, revoke_pat: bool) -> CliResult<LogoutJson> {
    let store = ctx.store();
    let path = store.path();
    // The token is revoked at the server that issued it, whatever server
    // was asked for: a token is never sent anywhere else.
    let mut user_id = None;
    let target = match store.load(&ctx.out) {
        Ok(Some(saved)) => {
            user_id = Some(saved.file.user.id.clone());
            saved_server(&saved.file)
                .ok()
                .map(|server| (saved.token, server))
        }
        Ok(None) => {
            ctx.out.line(format!(
                "Not logged in (no saved login at {})",
                path.display()
            ));
            let mut result = LogoutJson::default();
            remove_from_keyring(ctx, &store, &mut result);
            return Ok(result);
        }
        Err(err) if err == CliError::auth_file_corrupted() => {
            ctx.out.warn(format!("{} is corrupted", path.display()));
            store.salvage_token()
        }
        // The credential store does not give the token back: nothing to
        // revoke, but the login here still goes.
        Err(err) if err.exit == Exit::Auth => {
            ctx.out.warn(format!(
                "{}, so it cannot be revoked from here",
                err.message
            ));
            let server = store.salvage().map(|(_, server)| server);
            ctx.out.line(still_valid(server.as_deref()));
            let mut result = LogoutJson::default();
            remove(ctx, &store, &mut result)?;
            if result.removed.is_some() || result.removed_from_keyring {
                ctx.telemetry.logout(server.as_deref(), None);
            }
            return Ok(result);
        }
        Err(err) => return Err(err),
    };
    let mut result = LogoutJson::default();
    let server = target.as_ref().map(|(_, server)| server.clone());
    match target {
        Some((token, server)) if token.kind() == TokenKind::Pat && !revoke_pat => {
            result.kept_on_server = true;
            ctx.out.line(format!(
                "The personal access token still works wherever else it is used (CI, other machines); revoke it with `claudemesh logout --revoke` or on the CLI tokens page ({}).",
                tokens_page(&server)
            ));
        }
        Some((token, server)) => result.revoked_on_server = revoke(ctx, &server, &token),
        None => ctx
            .out
            .warn("It holds no token and server to revoke it at; removing it anyway"),
    }
    remove(ctx, &store, &mut result)?;
    if result.removed.is_some() || result.removed_from_keyring {
        ctx.telemetry.logout(server.as_deref(), user_id.as_deref());
    }
    Ok(result)
}

/// `logout --token T`: revoke T (a leaked token, say); the saved login goes
/// too only when it is that same token.
fn revoke_given_token(ctx: &Context, text: &str) -> CliResult<LogoutJson> {
    let token = Token::parse(text).map_err(|_| {
        CliError::invalid_args("Invalid token format (expected cm_pat_… or cm_session_…)")
    })?;
    let store = ctx.store();
    let saved = store.load(&ctx.out).ok().flatten();
    // The saved login's own token goes to its own server; any other token
    // to the server asked for.
    let server = match &saved {
        Some(saved) if saved.token == token => saved_server(&saved.file)?,
        _ => ctx.requested_server(),
    };
    let mut result = LogoutJson {
        revoked_on_server: revoke(ctx, &server, &token),
        ..LogoutJson::default()
    };
    if !result.revoked_on_server {
        return Err(CliError::new(
            Exit::Network,
            "The token was not revoked; try again when the server can be reached",
        ));
    }
    if let Some(saved) = saved.filter(|s| s.token == token) {
        remove(ctx, &store, &mut result)?;
        ctx.telemetry
            .logout(Some(&server), Some(&saved.file.user.id));
    }
    Ok(result)
}

/// Revokes on the server; warns and returns false when that fails.
fn revoke(ctx: &Context, server: &str, token: &Token) -> bool {
    match ctx.api(server, None).revoke(token) {
        Ok(_) => {
            ctx.out.success("Token revoked on server");
            true
        }
        Err(err) => {
            let err = err.into_cli(server);
            ctx.out.warn(format!(
                "Could not revoke the token on the server: {}",
                err.message
            ));
            ctx.out.line(still_valid(Some(server)));
            false
        }
    }
}

/// Removes the token from the credential store, then auth.json.
fn remove(ctx: &Context, store: &AuthStore, result: &mut LogoutJson) -> CliResult<()> {
    remove_from_keyring(ctx, store, result);
    let path = store.path();
    match store.remove() {
        Ok(true) => {
            ctx.out.success(format!("Removed {}", path.display()));
            result.removed = Some(path.display().to_string());
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(err) => Err(CliError::new(
            Exit::Permission,
            format!("Could not remove {}: {err}", path.display()),
        )),
    }
}

/// Removes the credential store's copy of the token (before auth.json,
/// which names it); a store that cannot be reached is a warning.
fn remove_from_keyring(ctx: &Context, store: &AuthStore, result: &mut LogoutJson) {
    match store.remove_from_keyring() {
        KeyringRemoval::Removed => {
            ctx.out
                .success("Removed the token from the OS credential store");
            result.removed_from_keyring = true;
        }
        KeyringRemoval::NoneThere => {}
        KeyringRemoval::Failed(failure) => ctx.out.warn(format!(
            "Could not remove the token from the OS credential store ({failure}); remove the \"claudemesh\" entry there by hand"
        )),
    }
}

/// A token that could not be revoked from here: where to do it.
fn still_valid(server: Option<&str>) -> String {
    match server {
        Some(server) => format!(
            "It stays valid until it expires; revoke it on the CLI tokens page ({}).",
            tokens_page(server)
        ),
        None => "It stays valid until it expires; revoke it on the CLI tokens page.".to_owned(),
    }
}
