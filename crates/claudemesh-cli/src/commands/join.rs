//! `claudemesh join <invite link or code> [--name DISPLAY]`: show what the
//! invite is for, then join with a new key pair for this machine and record
//! the mesh in `config.json`.
//!
//! Already joined here: nothing is sent, nothing used up. An invite that
//! expired, was revoked or is used up is refused with the reason, unless the
//! account is already a member (then accepting only registers this machine's
//! key, which the server allows and which uses nothing up).

use crate::api::{Api, InviteCode};
use crate::base::display::role_name;
use crate::base::exit::{CliError, CliResult, Exit};
use crate::cli::JoinArgs;
use crate::context::Context;
use crate::stores::config_store::JoinedMesh;

use crate::base::when;
use claudemesh_api::Slug;
use claudemesh_api::wire::{
    AcceptInviteRequest, InvitePreview, InviteStatus, MeshDetail, MeshSummary,
};
use serde::Serialize;

#[derive(Serialize)]
struct JoinJson<'a> {
    mesh: &'a MeshSummary,
    /// The account was a member before (of this mesh, on another machine).
    already_member: bool,
    /// This machine had joined before: nothing was done.
    already_joined_here: bool,
    /// This machine's public key for the membership.
    public_key: &'a str,
    config_file: String,
}

pub fn run(args: &JoinArgs, ctx: &Context) -> CliResult<()> {
    join(args, ctx).map(|_| ())
}

/// Joins the mesh of an invite on this machine; its slug.
pub fn join(args: &JoinArgs, ctx: &Context) -> CliResult<String> {
    let code = InviteCode::parse(&args.invite).ok_or_else(|| {
        CliError::invalid_args("That is not an invite link or code")
            .with_hint("An invite link looks like https://claudemesh.com/i/k3xq9a2bmvjp3.")
    })?;
    let account = ctx.account()?;
    let server = account.server.as_str();
    let api = &account.api;
    let out = &ctx.out;
    let preview = api
        .preview_invite(&code)
        .map_err(|err| with_origin_hint(err.into_cli(server), &code, server))?;
    let slug = Slug::parse(&preview.mesh_slug)
        .map_err(|_| CliError::failure("The server sent an invite for a malformed mesh slug"))?;

    let store = ctx.config();
    let locked = store.lock()?;
    let mut config = locked.load(out)?;
    // Whether the account is in the mesh already (on any machine).
    let member: Option<MeshDetail> = member_of(api, &slug, server)?;

    if let Some(detail) = &member
        && let Some(local) = config.find(server, &account.user.id, &detail.mesh.id)
        && key_registered(detail, &local.public_key)
    {
        out.success(format!(
            "Already joined {} ({}) on this machine, as {}",
            detail.mesh.name,
            detail.mesh.slug,
            role_name(detail.mesh.role)
        ));
        if out.json {
            out.json(&JoinJson {
                mesh: &detail.mesh,
                already_member: true,
                already_joined_here: true,
                public_key: &local.public_key,
                config_file: locked.path().display().to_string(),
            });
        }
        return Ok(detail.mesh.slug.clone());
    }

    show_preview(ctx, &preview);
    if member.is_none() {
        refuse_unusable(&preview)?;
    }

    let keys = crate::base::keys::generate()?;
    let accepted = api
        .accept_invite(
            &code,
            &AcceptInviteRequest {
                public_key: keys.public_hex(),
                display_name: args.display_name.clone(),
            },
        )
        .map_err(|err| err.into_cli(server))?;
    let mesh = &accepted.mesh;
    config.upsert(
        server,
        JoinedMesh::new(mesh, &account.user.id, &keys, &when::now_rfc3339()),
    );
    let path = locked.save(&config).map_err(|err| {
        CliError::failure(format!(
            "Joined {} on the server, but: {}",
            mesh.slug, err.message
        ))
        .with_hint("Fix that, then run `claudemesh sync` to join it on this machine.")
    })?;

    out.success(format!(
        "Joined {} ({}) as {}",
        mesh.name,
        mesh.slug,
        role_name(mesh.role)
    ));
    if accepted.already_member {
        out.line("You were already a member; this machine's key was added.");
    }
    if out.json {
        out.json(&JoinJson {
            mesh,
            already_member: accepted.already_member,
            already_joined_here: false,
            public_key: &keys.public_hex(),
            config_file: path.display().to_string(),
        });
    }
    Ok(mesh.slug.clone())
}

/// Whether this machine's key belongs to the account's current membership
/// (a record left from an earlier membership does not count as joined).
fn key_registered(detail: &MeshDetail, public_key: &str) -> bool {
    detail.members.iter().any(|m| {
        m.you && m.id == detail.mesh.member_id && m.public_keys.iter().any(|k| k == public_key)
    })
}

/// The account's membership of the mesh, if any (404: not a member).
fn member_of(api: &Api, slug: &Slug, server: &str) -> CliResult<Option<MeshDetail>> {
    match api.mesh(slug) {
        Ok(detail) => Ok(Some(detail)),
        Err(err) if err.status() == Some(404) => Ok(None),
        Err(err) => Err(err.into_cli(server)),
    }
}

fn show_preview(ctx: &Context, preview: &InvitePreview) {
    let out = &ctx.out;
    out.line(format!(
        "Invite to {} ({}) from {}",
        out.bold(&preview.mesh_name),
        preview.mesh_slug,
        preview.inviter_name
    ));
    out.line(format!("  Role:     {}", role_name(preview.role)));
    match preview.status {
        InviteStatus::Expired => out.line(format!(
            "  Expired:  {}",
            expired_when(&preview.expires_at, when::now())
        )),
        _ => out.line(format!(
            "  Expires:  {}",
            when::describe(&preview.expires_at, when::now())
        )),
    }
}

/// An invite that cannot be used, refused with why (exit 1).
fn refuse_unusable(preview: &InvitePreview) -> CliResult<()> {
    let why = match preview.status {
        InviteStatus::Valid => return Ok(()),
        InviteStatus::Expired => format!(
            "This invite expired {}",
            expired_when(&preview.expires_at, when::now())
        ),
        InviteStatus::Revoked => "This invite was revoked".to_owned(),
        InviteStatus::UsedUp => "This invite has been used up".to_owned(),
    };
    Err(CliError::new(Exit::Failure, why).with_hint(format!(
        "Ask {} for a new invite to {}.",
        preview.inviter_name, preview.mesh_slug
    )))
}

/// When an invite the server calls expired expired: "2 days ago (date)",
/// or just the date when this machine's clock says it has not yet (the
/// server's clock decides).
fn expired_when(expires_at: &str, now: time::OffsetDateTime) -> String {
    match when::parse(expires_at) {
        Some(at) if at <= now => when::describe(expires_at, now),
        Some(at) => format!("on {}", when::date(at)),
        None => expires_at.to_owned(),
    }
}

/// On "no such invite", says so when the link is for another server than
/// the one this login talks to.
fn with_origin_hint(err: CliError, code: &InviteCode, server: &str) -> CliError {
    match code.origin() {
        Some(origin) if err.exit == Exit::NotFound && !origin.eq_ignore_ascii_case(server) => err
            .with_hint(format!(
                "The link is for {origin}, but you are signed in to {server}."
            )),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_never_described_as_in_the_future() {
        let now = when::parse("2026-03-10T12:00:00Z").unwrap();
        assert_eq!(
            expired_when("2026-03-08T12:00:00Z", now),
            "2 days ago (2026-03-08 12:00 UTC)"
        );
        assert_eq!(
            expired_when("2026-03-17T12:00:00Z", now),
            "on 2026-03-17 12:00 UTC"
        );
        assert_eq!(expired_when("soon", now), "soon");
    }
}
