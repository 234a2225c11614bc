//! `/i/{code}`: an invitation to a mesh, for anyone holding the link.
//!
//! The GET only shows: the mesh, who invited, the role and the expiry, with
//! "Sign in to accept" (to `/login?next=/i/{code}`, or register with the same
//! `next`) for a signed-out browser and an Accept form (CSRF token) for a
//! signed-in one. Accepting goes through [`invites::accept`] like the JSON
//! API, without a public key: the browser has no machine key, and
//! `claudemesh sync` registers one later. A second accept changes nothing.
//!
//! Each state has its own page and status: valid (200), already a member
//! (200), expired (410), revoked (410), used up (409), unknown (404).

use super::ctx::{Ctx, PageResult, api_caller};
use super::meshes::{mesh_path, role_label};
use super::message::Message;
use crate::app::state::AppState;
use crate::auth::caller::BrowserCaller;
use crate::http::request::ClientInfo;
use crate::meshes::invites;
use crate::meshes::mesh;
use crate::text::format::{format_rfc3339, percent_encode};
use askama::Template;
use axum::extract::Path;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use claudemesh_api::ErrorCode;
use claudemesh_api::wire::{InvitePreview, InviteStatus, MeshSummary};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/i/{code}", get(invite_page).post(accept))
        .route("/i/{code}/joined", get(joined))
}

/// The page of the invite with this code.
fn invite_path(code: &str) -> String {
    format!("/i/{}", percent_encode(code))
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage<'a> {
    page: &'a Ctx,
    title: String,
    mesh_name: String,
    mesh_slug: String,
    inviter: String,
    role: String,
    expires: String,
    accept_url: String,
    login_url: String,
    register_url: String,
}

async fn invite_page(ctx: Ctx, code: Result<Path<String>, PathRejection>) -> Response {
    match code {
        Ok(Path(code)) => show(&ctx, &code).await,
        Err(_) => unknown(&ctx),
    }
}

/// The page for an invite in whatever state it is now.
async fn show(ctx: &Ctx, code: &str) -> Response {
    let state = ctx.state();
    let preview = match invites::preview(state, code).await {
        Ok(preview) => preview,
        Err(err) if err.status == StatusCode::NOT_FOUND => return unknown(ctx),
        Err(err) => return ctx.fail(err),
    };
    if let Some(user) = &ctx.user {
        match membership(ctx, user, code).await {
            Ok(Some(mesh)) => return already_member(ctx, &mesh),
            Ok(None) => {}
            Err(response) => return response,
        }
    }
    match preview.status {
        InviteStatus::Valid => invitation(ctx, &preview),
        InviteStatus::Expired => expired(ctx, &preview),
        InviteStatus::Revoked => revoked(ctx, &preview),
        InviteStatus::UsedUp => used_up(ctx, &preview),
    }
}

/// The user's membership of the invite's mesh, if any.
async fn membership(
    ctx: &Ctx,
    user: &BrowserCaller,
    code: &str,
) -> Result<Option<MeshSummary>, Response> {
    let state = ctx.state();
    let invite = invites::find_by_code(state, code)
        .await
        .map_err(|err| ctx.fail(err))?;
    match mesh::mesh_by_id(state, &user.user.id, &invite.mesh_id).await {
        Ok(mesh) => Ok(Some(mesh)),
        Err(err) if err.status == StatusCode::NOT_FOUND => Ok(None),
        Err(err) => Err(ctx.fail(err)),
    }
}

/// A valid invite: what it is for, and how to accept it.
fn invitation(ctx: &Ctx, preview: &InvitePreview) -> Response {
    let here = invite_path(&preview.code);
    ctx.render(
        StatusCode::OK,
        &InvitePage {
            page: ctx,
            title: ctx.t_args(
                "invite-title",
                &[
                    ("inviter", preview.inviter_name.clone().into()),
                    ("mesh", preview.mesh_name.clone().into()),
                ],
            ),
            mesh_name: preview.mesh_name.clone(),
            mesh_slug: preview.mesh_slug.clone(),
            inviter: preview.inviter_name.clone(),
            role: role_label(ctx, preview.role),
            expires: format_rfc3339(&preview.expires_at),
            login_url: format!("/login?next={}", percent_encode(&here)),
            register_url: format!("/register?next={}", percent_encode(&here)),
            accept_url: here,
        },
    )
}

fn unknown(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::NOT_FOUND,
        Message::new("warn", "?", ctx.t("invite-unknown-title"))
            .paragraph(ctx.t("invite-unknown-body"))
            .action("/", ctx.t("not-found-home"), false),
    )
}

/// An admin removed this account from the mesh after the invite was made.
fn removed(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::FORBIDDEN,
        Message::new("error", "✋", ctx.t("invite-removed-title"))
            .paragraph(ctx.t("invite-removed-body"))
            .action("/dashboard", ctx.t("mesh-back-dashboard"), false),
    )
}

/// The arguments every state message takes.
fn about(
    preview: &InvitePreview,
) -> [(
    &'static str,
    fluent_templates::fluent_bundle::FluentValue<'static>,
); 3] {
    [
        ("mesh", preview.mesh_name.clone().into()),
        ("inviter", preview.inviter_name.clone().into()),
        ("expires", format_rfc3339(&preview.expires_at).into()),
    ]
}

fn expired(ctx: &Ctx, preview: &InvitePreview) -> Response {
    ctx.message(
        StatusCode::GONE,
        Message::new("warn", "⏱", ctx.t("invite-expired-title"))
            .paragraph(ctx.t_args("invite-expired-body", &about(preview)))
            .paragraph(ctx.t_args("invite-ask-again", &about(preview))),
    )
}

fn revoked(ctx: &Ctx, preview: &InvitePreview) -> Response {
    ctx.message(
        StatusCode::GONE,
        Message::new("error", "✗", ctx.t("invite-revoked-title"))
            .paragraph(ctx.t_args("invite-revoked-body", &about(preview)))
            .paragraph(ctx.t_args("invite-ask-again", &about(preview))),
    )
}

fn used_up(ctx: &Ctx, preview: &InvitePreview) -> Response {
    ctx.message(
        StatusCode::CONFLICT,
        Message::new("warn", "!", ctx.t("invite-used-up-title"))
            .paragraph(ctx.t_args("invite-used-up-body", &about(preview)))
            .paragraph(ctx.t_args("invite-ask-again", &about(preview))),
    )
}

/// Signed in as a member of the invite's mesh: nothing to accept.
fn already_member(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    ctx.message(
        StatusCode::OK,
        Message::new(
            "info",
            "✓",
            ctx.t_args("invite-member-title", &[("mesh", mesh.name.clone().into())]),
        )
        .paragraph(ctx.t_args(
            "invite-member-body",
            &[
                ("mesh", mesh.name.clone().into()),
                ("role", role_label(ctx, mesh.role).into()),
            ],
        ))
        .paragraph_html(ctx.t_with_code("invite-use-in-terminal", "claudemesh sync"))
        .action(&mesh_path(&mesh.slug), ctx.t("invite-open-mesh"), true),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AcceptForm {
    csrf: String,
}

/// Joins the invite's mesh (no machine key), then shows the result on its
/// own page so a reload does not post again.
async fn accept(
    ctx: Ctx,
    client: ClientInfo,
    code: Result<Path<String>, PathRejection>,
    form: Result<Form<AcceptForm>, FormRejection>,
) -> PageResult {
    let Ok(Path(code)) = code else {
        return Err(unknown(&ctx).into());
    };
    let (user, _form) = ctx.signed_in_form(&invite_path(&code), form, |form| &form.csrf)?;
    let caller = api_caller(&user);
    match invites::accept(ctx.state(), &caller, &client, &code, None, None).await {
        Ok(accepted) if accepted.already_member => Ok(ctx.redirect(&invite_path(&code))),
        Ok(_) => Ok(ctx.redirect(&format!("{}/joined", invite_path(&code)))),
        // The page of the state that refused it, with its status.
        Err(err)
            if matches!(
                err.code,
                ErrorCode::NotFound
                    | ErrorCode::InviteExpired
                    | ErrorCode::InviteRevoked
                    | ErrorCode::InviteUsedUp
            ) =>
        {
            Err(show(&ctx, &code).await.into())
        }
        Err(err) if err.code == ErrorCode::RemovedFromMesh => Err(removed(&ctx).into()),
        Err(err) => Err(ctx.fail(err).into()),
    }
}

/// After accepting: "You joined …", and how to get the mesh into a terminal.
async fn joined(ctx: Ctx, code: Result<Path<String>, PathRejection>) -> PageResult {
    let Ok(Path(code)) = code else {
        return Err(unknown(&ctx).into());
    };
    let user = ctx.require_user()?;
    let invite = match invites::find_by_code(ctx.state(), &code).await {
        Ok(invite) => invite,
        Err(err) if err.status == StatusCode::NOT_FOUND => return Err(unknown(&ctx).into()),
        Err(err) => return Err(ctx.fail(err).into()),
    };
    let mesh = match mesh::mesh_by_id(ctx.state(), &user.user.id, &invite.mesh_id).await {
        Ok(mesh) => mesh,
        // Not (or no longer) a member: the invite's own page says what to do.
        Err(err) if err.status == StatusCode::NOT_FOUND => {
            return Ok(ctx.redirect(&invite_path(&code)));
        }
        Err(err) => return Err(ctx.fail(err).into()),
    };
    let url = invites::invite_url(ctx.state(), &invite.code);
    Ok(ctx.message(
        StatusCode::OK,
        Message::new(
            "ok",
            "✓",
            ctx.t_args("invite-joined-title", &[("mesh", mesh.name.clone().into())]),
        )
        .paragraph(ctx.t_args(
            "invite-joined-body",
            &[
                ("mesh", mesh.name.clone().into()),
                ("role", role_label(&ctx, mesh.role).into()),
            ],
        ))
        .paragraph_html(ctx.t_with_code("invite-use-in-terminal", "claudemesh sync"))
        .paragraph_html(ctx.t_with_codes(
            "invite-joined-other-machine",
            &[
                ("login", "claudemesh login"),
                ("join", &format!("claudemesh join {url}")),
            ],
        ))
        .action(&mesh_path(&mesh.slug), ctx.t("invite-open-mesh"), true)
        .action("/dashboard", ctx.t("nav-dashboard"), false),
    ))
}
