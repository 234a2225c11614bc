//! `claudemesh leave <slug> [--yes]`: end the account's membership of a mesh
//! on the server, then delete the mesh's record (and this machine's key) from
//! `config.json`.
//!
//! Leaving is undone only by a new invite, so it asks first; a script says
//! `--yes`. A mesh the server no longer lists for the account (removed by an
//! admin, say) is still cleaned off this machine, with a note: but only once
//! the account's list of meshes confirms it, never on a bare 404.

use crate::api::ApiError;
use crate::base::args::slug_arg;
use crate::base::exit::{CliError, CliResult, Exit};
use crate::cli::LeaveArgs;
use crate::context::Context;
use claudemesh_api::Slug;
use serde::Serialize;
use std::io::IsTerminal;

#[derive(Serialize)]
struct LeaveJson<'a> {
    mesh: &'a str,
    /// Whether the server ended a membership just now (false: there was none).
    left_on_server: bool,
    /// Whether a record (and key) was deleted from this machine.
    removed_here: bool,
}

pub fn run(args: &LeaveArgs, ctx: &Context) -> CliResult<()> {
    let slug = slug_arg(&args.mesh, "mesh slug")?;
    let account = ctx.account()?;
    if !args.yes {
        confirm(&slug)?;
    }
    // Which mesh this is on the server, if the account is in it. A 404 is
    // only believed once the account's list agrees: a proxy or a wrong URL
    // answering 404 must not cost this machine its key.
    let api_error = |err: ApiError| err.into_cli(&account.server);
    let on_server = match account.api.mesh(&slug) {
        Ok(detail) => Some(detail.mesh.id),
        Err(err) if err.status() == Some(404) => {
            let listed = account.api.meshes().map_err(api_error)?;
            if listed.meshes.iter().any(|m| m.slug == slug.as_str()) {
                return Err(CliError::failure(format!(
                    "The server gave two answers about {slug}; nothing was changed"
                ))
                .with_hint("Try again in a moment."));
            }
            None
        }
        Err(err) => return Err(api_error(err)),
    };
    if on_server.is_some() {
        account.api.leave_mesh(&slug).map_err(api_error)?;
    }
    let left_on_server = on_server.is_some();

    let store = ctx.config();
    let locked = store.lock()?;
    let mut config = locked.load(&ctx.out)?;
    // The record of this mesh; without one on the server, any record of the
    // slug (none of them is a membership any more).
    let records: Vec<String> = config
        .meshes(&account.server, &account.user.id)
        .filter(|m| match &on_server {
            Some(mesh_id) => m.mesh_id == *mesh_id,
            None => m.slug == slug.as_str(),
        })
        .map(|m| m.mesh_id.clone())
        .collect();
    for mesh_id in &records {
        config.remove(&account.server, &account.user.id, mesh_id);
    }
    let removed_here = !records.is_empty();
    if removed_here {
        locked.save(&config).map_err(|err| {
            CliError::failure(format!(
                "Left {slug} on the server, but could not update this machine: {}",
                err.message
            ))
            .with_hint("Fix that, then run `claudemesh sync --prune`.")
        })?;
    }

    let out = &ctx.out;
    match (left_on_server, removed_here) {
        (false, false) => {
            return Err(
                CliError::new(Exit::NotFound, format!("You have no mesh called `{slug}`"))
                    .with_hint("See `claudemesh list`."),
            );
        }
        (true, _) => out.success(format!("Left mesh {slug}")),
        (false, true) => out.warn(format!(
            "You were no longer a member of {slug} on the server"
        )),
    }
    if removed_here {
        out.line("Removed it from this machine, with its key.");
    }
    if out.json {
        out.json(&LeaveJson {
            mesh: slug.as_str(),
            left_on_server,
            removed_here,
        });
    }
    Ok(())
}

/// Asks on the terminal; with no terminal to ask in, refuses without --yes.
fn confirm(slug: &Slug) -> CliResult<()> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(
            CliError::invalid_args(format!("Leaving {slug} needs a confirmation"))
                .with_hint(format!("Add --yes: `claudemesh leave {slug} --yes`.")),
        );
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Leave mesh {slug}? Coming back will take a new invite"
        ))
        .default(false)
        .interact()
        .map_err(|err| CliError::failure(format!("Could not ask: {err}")))?;
    if yes {
        Ok(())
    } else {
        Err(CliError::failure("Cancelled: still a member"))
    }
}
