//! The mesh page's admin actions: change a member's role, rename, archive,
//! unarchive and delete the mesh. Each is a GET confirmation page (which
//! never changes anything) and a CSRF-checked POST; deleting asks for the
//! mesh's slug to be typed. Removing a member lives with the member list
//! in [`super::meshes`].
//!
//! Every change goes through the functions the JSON API uses
//! ([`crate::meshes::governance`]), so the rules are the same: admins only
//! (403 page), the last admin keeps the role (409 page), a name of 1 to 100
//! characters (400 page), a mesh the caller is not in is the 404 page.

use super::confirm::ConfirmPage;
use super::ctx::{Ctx, PageError, PageResult, api_caller};
use super::meshes::{
    about_mesh, load_admin_mesh, mesh_path, no_such_mesh, not_admin, posted_form, role_label,
    slug_of,
};
use super::message::Message;
use crate::app::state::AppState;
use crate::http::error::AppError;
use crate::http::request::ClientInfo;
use crate::meshes::{governance, mesh};
use askama::Template;
use axum::extract::Path;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use claudemesh_api::ErrorCode;
use claudemesh_api::wire::{MeshRole, MeshSummary};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/dashboard/meshes/{slug}/members/role",
            get(role_page).post(change_role),
        )
        .route(
            "/dashboard/meshes/{slug}/rename",
            get(rename_page).post(rename),
        )
        .route(
            "/dashboard/meshes/{slug}/archive",
            get(archive_page).post(archive),
        )
        .route(
            "/dashboard/meshes/{slug}/unarchive",
            get(unarchive_page).post(unarchive),
        )
        .route(
            "/dashboard/meshes/{slug}/delete",
            get(delete_page).post(delete),
        )
}

/// The role named in a form or link; anything else is no role.
fn parse_role(raw: &str) -> Option<MeshRole> {
    match raw {
        "admin" => Some(MeshRole::Admin),
        "member" => Some(MeshRole::Member),
        _ => None,
    }
}

/// A request that named no role we have.
fn bad_role(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let message = Message::new("warn", "?", ctx.t("role-unknown-title"));
    about_mesh(
        ctx,
        mesh,
        StatusCode::BAD_REQUEST,
        message.paragraph(ctx.t("role-unknown-body")),
    )
}

/// The mesh's only admin asked to step down.
fn last_admin_demoted(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let body = ctx.t_args(
        "role-last-admin-body",
        &[("mesh", mesh.name.clone().into())],
    );
    let message = Message::new("warn", "!", ctx.t("member-last-admin-title"));
    about_mesh(ctx, mesh, StatusCode::CONFLICT, message.paragraph(body))
}

/// A member id that names nobody in the mesh (any more).
fn no_such_member(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let message = Message::new("warn", "?", ctx.t("role-member-gone-title"));
    about_mesh(
        ctx,
        mesh,
        StatusCode::NOT_FOUND,
        message.paragraph(ctx.t("member-gone-body")),
    )
}

/// A name the mesh cannot have (empty, too long, control characters).
fn bad_name(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let body = ctx.t_args(
        "mesh-rename-invalid-body",
        &[("max", claudemesh_api::rules::MAX_LABEL_CHARS.into())],
    );
    let message = Message::new("warn", "!", ctx.t("mesh-rename-invalid-title"));
    about_mesh(ctx, mesh, StatusCode::BAD_REQUEST, message.paragraph(body))
}

/// What the domain refused, as the page that says so: the same refusals
/// for every action here.
fn refused(ctx: &Ctx, mesh: &MeshSummary, err: AppError) -> PageError {
    if err.code == ErrorCode::LastAdmin {
        last_admin_demoted(ctx, mesh).into()
    } else if err.status == StatusCode::FORBIDDEN {
        not_admin(ctx, mesh).into()
    } else if err.status == StatusCode::NOT_FOUND {
        no_such_member(ctx, mesh).into()
    } else {
        ctx.fail(err).into()
    }
}

/// Asks before giving a member the other role (a GET never changes it).
async fn role_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let Some(role) = parse_role(ctx.param("role").unwrap_or_default()) else {
        return Err(bad_role(&ctx, &mesh).into());
    };
    let id = ctx.param("id").unwrap_or_default();
    let member = mesh::members(ctx.state(), &mesh.id, &user.user.id)
        .await
        .map_err(|err| ctx.fail(err))?
        .into_iter()
        .find(|member| member.id == id)
        .ok_or_else(|| no_such_member(&ctx, &mesh))?;
    let name = || member.display_name.clone().into();
    let (title, body, confirm) = match role {
        MeshRole::Admin => (
            ctx.t_args("role-admin-title", &[("name", name())]),
            ctx.t_args("role-admin-body", &[("mesh", mesh.name.clone().into())]),
            ctx.t("role-admin-confirm"),
        ),
        MeshRole::Member => (
            ctx.t_args("role-member-title", &[("name", name())]),
            ctx.t_args("role-member-body", &[("mesh", mesh.name.clone().into())]),
            ctx.t("role-member-confirm"),
        ),
    };
    Ok(ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: &ctx,
            action: format!("{}/members/role", mesh_path(&mesh.slug)),
            back: mesh_path(&mesh.slug),
            hidden: vec![("id", member.id), ("role", role.as_str().to_owned())],
            title,
            label: format!(
                "{} · {} → {}",
                member.display_name,
                role_label(&ctx, member.role),
                role_label(&ctx, role)
            ),
            body,
            confirm,
        },
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleForm {
    id: String,
    role: String,
    csrf: String,
}

/// Gives a member a role (admins only), then back to the mesh.
async fn change_role(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let Some(role) = parse_role(&form.role) else {
        return Err(bad_role(&ctx, &mesh).into());
    };
    let caller = api_caller(&user);
    governance::set_role(ctx.state(), &caller, &client, &mesh, &form.id, role)
        .await
        .map_err(|err| refused(&ctx, &mesh, err))?;
    // An admin who stepped down comes back to the page without its admin parts.
    Ok(ctx.redirect(&format!("{}?notice=role-changed", mesh_path(&mesh.slug))))
}

/// Asks before renaming: the mesh page's rename form comes here with the
/// new name, checked before anything is asked.
async fn rename_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let Ok(name) =
        crate::auth::token_store::clean_name(ctx.param("name").unwrap_or_default(), "name")
    else {
        return Err(bad_name(&ctx, &mesh).into());
    };
    Ok(ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: &ctx,
            action: format!("{}/rename", mesh_path(&mesh.slug)),
            back: mesh_path(&mesh.slug),
            title: ctx.t_args("mesh-rename-title", &[("mesh", mesh.name.clone().into())]),
            label: format!("{} → {name}", mesh.name),
            body: ctx.t_args("mesh-rename-body", &[("slug", mesh.slug.clone().into())]),
            confirm: ctx.t("mesh-rename-confirm"),
            hidden: vec![("name", name)],
        },
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RenameForm {
    name: String,
    csrf: String,
}

/// Renames the mesh (admins only), then back to it.
async fn rename(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<RenameForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let caller = api_caller(&user);
    match governance::rename(ctx.state(), &caller, &client, &mesh, &form.name).await {
        Ok(_) => Ok(ctx.redirect(&format!("{}?notice=renamed", mesh_path(&mesh.slug)))),
        Err(err) if err.status == StatusCode::BAD_REQUEST => Err(bad_name(&ctx, &mesh).into()),
        Err(err) => Err(refused(&ctx, &mesh, err)),
    }
}

/// The confirmation page of archiving (`true`) or unarchiving.
async fn archive_confirmation(
    ctx: Ctx,
    slug: Result<Path<String>, PathRejection>,
    archive: bool,
) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let mesh_name = || mesh.name.clone().into();
    let (what, title, body, confirm) = if archive {
        (
            "archive",
            ctx.t_args("mesh-archive-title", &[("mesh", mesh_name())]),
            ctx.t("mesh-archive-body"),
            ctx.t("mesh-archive-confirm"),
        )
    } else {
        (
            "unarchive",
            ctx.t_args("mesh-unarchive-title", &[("mesh", mesh_name())]),
            ctx.t("mesh-unarchive-body"),
            ctx.t("mesh-unarchive-confirm"),
        )
    };
    Ok(ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: &ctx,
            action: format!("{}/{what}", mesh_path(&mesh.slug)),
            back: mesh_path(&mesh.slug),
            hidden: Vec::new(),
            title,
            label: format!("{} · {}", mesh.name, mesh.slug),
            body,
            confirm,
        },
    ))
}

async fn archive_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    archive_confirmation(ctx, slug, true).await
}

async fn unarchive_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    archive_confirmation(ctx, slug, false).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// Archives (`true`) or unarchives the mesh (admins only; doing it twice
/// changes nothing), then back to it.
async fn set_archived(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
    archive: bool,
) -> PageResult {
    let (slug, user, _) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let caller = api_caller(&user);
    governance::set_archived(ctx.state(), &caller, &client, &mesh, archive)
        .await
        .map_err(|err| refused(&ctx, &mesh, err))?;
    let notice = if archive { "archived" } else { "unarchived" };
    Ok(ctx.redirect(&format!("{}?notice={notice}", mesh_path(&mesh.slug))))
}

async fn archive(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> PageResult {
    set_archived(ctx, client, slug, form, true).await
}

async fn unarchive(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> PageResult {
    set_archived(ctx, client, slug, form, false).await
}

/// The delete confirmation: the slug must be typed.
#[derive(Template)]
#[template(path = "mesh_delete.html")]
struct DeletePage<'a> {
    page: &'a Ctx,
    title: String,
    /// "Type its slug, `team`, to confirm" (HTML: the slug as code).
    type_label: String,
    name: String,
    slug: String,
    path: String,
    /// The typed slug did not match.
    mismatch: bool,
}

fn delete_form(ctx: &Ctx, mesh: &MeshSummary, status: StatusCode, mismatch: bool) -> Response {
    ctx.render(
        status,
        &DeletePage {
            page: ctx,
            title: ctx.t_args("mesh-delete-title", &[("mesh", mesh.name.clone().into())]),
            type_label: ctx.t_with_code("mesh-delete-type", &mesh.slug),
            name: mesh.name.clone(),
            slug: mesh.slug.clone(),
            path: mesh_path(&mesh.slug),
            mismatch,
        },
    )
}

/// Asks for the slug before deleting the mesh (a GET never deletes).
async fn delete_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    Ok(delete_form(&ctx, &mesh, StatusCode::OK, false))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteForm {
    confirm_slug: String,
    csrf: String,
}

/// Deletes the mesh for good (admins only, the slug typed), then to the
/// dashboard.
async fn delete(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<DeleteForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    if form.confirm_slug.trim() != mesh.slug {
        return Ok(delete_form(&ctx, &mesh, StatusCode::BAD_REQUEST, true));
    }
    let caller = api_caller(&user);
    match governance::delete(ctx.state(), &caller, &client, &mesh).await {
        Ok(()) => Ok(ctx.redirect("/dashboard?notice=deleted")),
        // Deleted a moment ago by someone else.
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(no_such_mesh(&ctx).into()),
        Err(err) => Err(refused(&ctx, &mesh, err)),
    }
}
