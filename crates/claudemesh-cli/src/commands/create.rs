//! `claudemesh create NAME [--slug S] [--name DISPLAY]`: create a mesh on
//! the server and join it on this machine (spec flow 3).
//!
//! The config directory is made private and `config.json` is locked and read
//! before the request, so a mesh is never created with a key this machine
//! then cannot keep; a server refusal records nothing.

use crate::api::ApiError;
use crate::base::args::slug_arg;
use crate::base::display::{shell_word, short_id};
use crate::base::exit::{CliError, CliResult, Exit};
use crate::cli::CreateArgs;
use crate::context::Context;
use crate::stores::config_store::JoinedMesh;

use crate::base::when;
use claudemesh_api::wire::{CreateMeshRequest, MeshSummary};
use claudemesh_api::{ErrorCode, Slug};
use serde::Serialize;

#[derive(Serialize)]
struct CreateJson<'a> {
    #[serde(flatten)]
    mesh: &'a MeshSummary,
    /// This machine's public key for the membership.
    public_key: String,
    config_file: String,
}

pub fn run(args: &CreateArgs, ctx: &Context) -> CliResult<()> {
    let name = args.name.trim();
    if name.is_empty() {
        return Err(CliError::invalid_args("The mesh needs a name")
            .with_hint("For example: claudemesh create \"Platform team\""));
    }
    let slug = args
        .slug
        .as_deref()
        .map(|text| slug_arg(text, "--slug"))
        .transpose()?;
    let account = ctx.account()?;
    let store = ctx.config();
    let locked = store.lock()?;
    let mut config = locked.load(&ctx.out)?;

    let keys = crate::base::keys::generate()?;
    let request = CreateMeshRequest {
        name: name.to_owned(),
        slug: slug.as_ref().map(|s| s.as_str().to_owned()),
        public_key: keys.public_hex(),
        display_name: args.display_name.clone(),
    };
    let mesh = account
        .api
        .create_mesh(&request)
        .map_err(|err| refused(err, name, slug.as_ref(), &account.server))?;

    config.upsert(
        &account.server,
        JoinedMesh::new(&mesh, &account.user.id, &keys, &when::now_rfc3339()),
    );
    let path = locked.save(&config).map_err(|err| {
        CliError::failure(format!(
            "Created mesh {} on the server, but: {}",
            mesh.slug, err.message
        ))
        .with_hint("Fix that, then run `claudemesh sync` to join it on this machine.")
    })?;

    let out = &ctx.out;
    out.success(format!(
        "Created mesh {} (id: {})",
        mesh.slug,
        short_id(&mesh.id)
    ));
    out.success("Joined locally");
    out.line(format!(
        "▸ Invite peers: {}",
        out.bold(&format!("claudemesh invite --mesh {}", mesh.slug))
    ));
    if out.json {
        out.json(&CreateJson {
            mesh: &mesh,
            public_key: keys.public_hex(),
            config_file: path.display().to_string(),
        });
    }
    Ok(())
}

/// A refusal, with the free slug the server suggests when it was taken.
fn refused(err: ApiError, name: &str, slug: Option<&Slug>, server: &str) -> CliError {
    if let ApiError::Status {
        status: 409,
        body: Some(body),
    } = &err
        && body.error == ErrorCode::SlugTaken
    {
        let taken = slug
            .cloned()
            .or_else(|| Slug::from_name(name))
            .map_or_else(String::new, |s| format!(" `{s}`"));
        let mut refusal = CliError::new(Exit::Conflict, format!("The slug{taken} is taken"));
        if let Some(free) = body.suggestion.as_deref().and_then(|s| Slug::parse(s).ok()) {
            refusal = refusal.with_hint(format!(
                "Try --slug {free}: claudemesh create {} --slug {free}",
                shell_word(name)
            ));
        } else {
            refusal = refusal.with_hint("Choose another with --slug.");
        }
        return refusal;
    }
    err.into_cli(server)
}
