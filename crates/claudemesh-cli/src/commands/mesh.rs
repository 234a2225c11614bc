//! `claudemesh mesh rename|archive|unarchive|delete [--mesh S]`: what
//! becomes of a mesh (admins only). `delete` asks for the slug to be typed
//! in a terminal; `--yes` skips that and is required without one. A deleted
//! mesh's record (and this machine's key for it) is removed from
//! `config.json` too.

use crate::base::args::slug_arg;
use crate::base::exit::{CliError, CliResult};
use crate::cli::{MeshAction, MeshArgs};
use crate::commands::members::mesh_slug;
use crate::context::{Account, Context};
use claudemesh_api::Slug;
use claudemesh_api::wire::MeshSummary;
use serde::Serialize;
use std::io::IsTerminal;

pub fn run(args: &MeshArgs, ctx: &Context) -> CliResult<()> {
    let given = args
        .mesh
        .as_deref()
        .map(|text| slug_arg(text, "--mesh"))
        .transpose()?;
    if let MeshAction::Rename { name } = &args.action {
        check_name(name)?;
    }
    let account = ctx.account()?;
    let slug = mesh_slug(ctx, &account, given)?;
    let api_error = |err: crate::api::ApiError| err.into_cli(&account.server);
    let out = &ctx.out;
    match &args.action {
        MeshAction::Rename { name } => {
            let mesh = account
                .api
                .rename_mesh(&slug, name.trim())
                .map_err(api_error)?;
            out.success(format!("Renamed {slug} to \"{}\"", mesh.name));
            print_mesh(ctx, &mesh);
        }
        MeshAction::Archive => {
            let mesh = account.api.set_archived(&slug, true).map_err(api_error)?;
            out.success(format!(
                "Archived {slug}: no sessions and no joining until `claudemesh mesh unarchive --mesh {slug}`"
            ));
            print_mesh(ctx, &mesh);
        }
        MeshAction::Unarchive => {
            let mesh = account.api.set_archived(&slug, false).map_err(api_error)?;
            out.success(format!("{slug} is live again"));
            print_mesh(ctx, &mesh);
        }
        MeshAction::Delete { yes } => {
            if !yes {
                confirm_delete(&slug)?;
            }
            let deleted = account.api.delete_mesh(&slug).map_err(api_error)?;
            forget_here(ctx, &account, &deleted.id)?;
            out.success(format!("Deleted {slug} and everything in it"));
            if out.json {
                out.json(&deleted);
            }
        }
    }
    Ok(())
}

/// The rules of a mesh name, checked before any request.
fn check_name(name: &str) -> CliResult<()> {
    let chars = name.trim().chars().count();
    if chars == 0 || name.chars().count() > claudemesh_api::rules::MAX_LABEL_CHARS {
        return Err(CliError::invalid_args(format!(
            "A mesh name must be 1 to {} characters",
            claudemesh_api::rules::MAX_LABEL_CHARS
        )));
    }
    Ok(())
}

#[derive(Serialize)]
struct MeshJson<'a> {
    #[serde(flatten)]
    mesh: &'a MeshSummary,
    archived: bool,
}

fn print_mesh(ctx: &Context, mesh: &MeshSummary) {
    if ctx.out.json {
        ctx.out.json(&MeshJson {
            mesh,
            archived: mesh.archived_at.is_some(),
        });
    }
}

/// Asks for the slug to be typed; with no terminal, refuses without --yes.
fn confirm_delete(slug: &Slug) -> CliResult<()> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(
            CliError::invalid_args(format!("Deleting {slug} needs a confirmation")).with_hint(
                format!("Add --yes: `claudemesh mesh delete --mesh {slug} --yes`."),
            ),
        );
    }
    let typed: String = dialoguer::Input::new()
        .with_prompt(format!(
            "This deletes {slug}, its members, invites and messages for good. Type `{slug}` to confirm"
        ))
        .allow_empty(true)
        .interact_text()
        .map_err(|err| CliError::failure(format!("Could not ask: {err}")))?;
    if typed.trim() == slug.as_str() {
        Ok(())
    } else {
        Err(CliError::failure("Cancelled: nothing was deleted"))
    }
}

/// Removes the deleted mesh's record (and key) from this machine.
fn forget_here(ctx: &Context, account: &Account, mesh_id: &str) -> CliResult<()> {
    let store = ctx.config();
    let locked = store.lock()?;
    let mut config = locked.load(&ctx.out)?;
    let known = config
        .meshes(&account.server, &account.user.id)
        .any(|m| m.mesh_id == mesh_id);
    if known {
        config.remove(&account.server, &account.user.id, mesh_id);
        locked.save(&config)?;
    }
    Ok(())
}
