//! Who is in a mesh and what becomes of it: the member list (with last
//! seen, sessions online and pending invites), adding a member by email
//! (an invite, through the same path and mail as `invite --email`),
//! changing roles, and renaming, archiving, unarchiving and deleting the
//! mesh. Admins only for every change; the last admin is never demoted.
//! Every change is written by the audit module with actor, target, mesh and
//! time.

use crate::app::state::AppState;
use crate::auth::caller::Caller;
use crate::auth::token_store::clean_name;
use crate::broker::Broker;
use crate::clock::rfc3339;
use crate::db::audit;
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{JsonBodyRejected, Unauthorized};
use crate::http::request::{ApiJson, ClientInfo};
use crate::meshes::invites;
use crate::meshes::log::{self as mesh_log, LogEvent};
use crate::meshes::mesh::{
    Archived, NoSuchMesh, live_role, lock_for_member_change, members, my_mesh, require_admin,
    require_role_admin,
};
use crate::text::i18n;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::wire::{
    AddMemberRequest, ChangeRoleRequest, CreateInviteRequest, CreatedInvite, DeletedMesh,
    MemberInfo, MemberList, MeshRole, MeshSummary, OkResponse, PendingInvite, RenameMeshRequest,
};
use claudemesh_api::{ErrorBody, ErrorCode};
use serde_json::json;
use std::collections::HashMap;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(change_role))
        .routes(routes!(rename_mesh, delete_mesh))
        .routes(routes!(archive_mesh))
        .routes(routes!(unarchive_mesh))
}

/// 403 for a change only the mesh's admins may make.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "`forbidden`: only the mesh's admins may do this; `csrf_rejected`: a browser session's request from another origin"
)]
pub struct AdminsOnly(pub ErrorBody);

/// The members of a mesh as `claudemesh members` shows them, and its
/// pending invites (shared with the pages).
pub async fn member_list(
    state: &AppState,
    mesh: &MeshSummary,
    caller_id: &str,
) -> AppResult<MemberList> {
    let activity: HashMap<String, (Option<i64>, i64)> = state
        .broker
        .member_activity(&mesh.id)
        .await?
        .into_iter()
        .map(|(member_id, seen, online)| (member_id, (seen, online)))
        .collect();
    let members = members(state, &mesh.id, caller_id)
        .await?
        .into_iter()
        .map(|m| {
            let (seen, online) = activity.get(&m.id).copied().unwrap_or((None, 0));
            MemberInfo {
                last_seen_at: seen.map(rfc3339),
                sessions_online: u32::try_from(online).unwrap_or(0),
                id: m.id,
                display_name: m.display_name,
                role: m.role,
                joined_at: m.joined_at,
                public_keys: m.public_keys,
                you: m.you,
            }
        })
        .collect();
    let now = state.now();
    let pending: Vec<(String, Option<String>, String, String, i64, i64)> = sqlx::query_as(
        "SELECT i.id, i.email, i.role, u.name, i.created_at, i.expires_at \
         FROM mesh_invites i JOIN users u ON u.id = i.created_by \
         WHERE i.mesh_id = $1 AND i.revoked_at IS NULL AND i.expires_at > $2 AND i.uses < i.max_uses \
         ORDER BY i.created_at DESC, i.id",
    )
    .bind(&mesh.id)
    .bind(now)
    .fetch_all(state.pool())
    .await?;
    let pending = pending
        .into_iter()
        .map(|(id, email, role, invited_by, created_at, expires_at)| {
            Ok(PendingInvite {
                id,
                email,
                role: MeshRole::try_from(role).map_err(|err| err.to_string())?,
                invited_by,
                created_at: rfc3339(created_at),
                expires_at: rfc3339(expires_at),
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(AppError::internal)?;
    Ok(MemberList {
        mesh: mesh.slug.clone(),
        members,
        pending,
    })
}

/// The members of a mesh: role, joined, last seen, sessions online now,
/// machine keys; and its pending invites (who invited, when they expire).
#[utoipa::path(get, path = "/api/my/meshes/{slug}/members", tag = "members",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = MemberList), Unauthorized, NoSuchMesh, crate::auth::request_limit::RateLimited))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> AppResult<Json<MemberList>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    Ok(Json(member_list(&state, &mesh, &caller.user.id).await?))
}

/// Invite a person by email (admins only): the same invite and mail as
/// `POST /api/my/meshes/{slug}/invites` with an address; it shows as
/// pending until they accept.
#[utoipa::path(post, path = "/api/my/meshes/{slug}/members", tag = "members", request_body = AddMemberRequest,
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 201, body = CreatedInvite), JsonBodyRejected, Unauthorized, AdminsOnly,
        NoSuchMesh, Archived, crate::auth::request_limit::RateLimited))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> AppResult<(StatusCode, Json<CreatedInvite>)> {
    if body.email.trim().is_empty() {
        return Err(AppError::bad_request("email must be an email address"));
    }
    let lang = i18n::negotiate(body.lang.as_deref(), &headers).lang;
    let request = CreateInviteRequest {
        email: Some(body.email.clone()),
        role: body.role,
        expires_in_days: None,
        max_uses: None,
        lang: body.lang.clone(),
    };
    let created = invites::create(&state, &caller, &client, &slug, &request, lang).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Change a member's role (admins only). The mesh's only admin cannot be
/// demoted (409 `last_admin`).
#[utoipa::path(patch, path = "/api/my/meshes/{slug}/members/{member}", tag = "members", request_body = ChangeRoleRequest,
    params(("slug" = String, Path, description = "Mesh slug"),
           ("member" = String, Path, description = "Member id")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), JsonBodyRejected, Unauthorized, AdminsOnly,
        (status = 404, body = ErrorBody, description = "`not_found`: the caller has no mesh with this slug, or it has no such member"),
        (status = 409, body = ErrorBody, description = "`last_admin`: the member is the mesh's only admin"),
        crate::auth::request_limit::RateLimited))]
async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path((slug, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChangeRoleRequest>,
) -> AppResult<Json<OkResponse>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    set_role(&state, &caller, &client, &mesh, &member, body.role).await?;
    Ok(Json(OkResponse { ok: true }))
}

/// Sets a member's role (shared with the pages). Setting the role a member
/// already has changes nothing and writes no audit event.
pub async fn set_role(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
    member_id: &str,
    role: MeshRole,
) -> AppResult<()> {
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    let caller_role = lock_for_member_change(&mut tx, mesh).await?;
    require_role_admin(caller_role, &mesh.slug)?;
    let current = live_role(&mut tx, &mesh.id, member_id)
        .await?
        .ok_or_else(|| {
            AppError::not_found(format!("`{}` has no member `{member_id}`", mesh.slug))
        })?;
    if current == role {
        return Ok(());
    }
    if current == MeshRole::Admin {
        let (admins,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM mesh_members \
             WHERE mesh_id = $1 AND role = 'admin' AND revoked_at IS NULL",
        )
        .bind(&mesh.id)
        .fetch_one(&mut *tx)
        .await?;
        if admins <= 1 {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                ErrorCode::LastAdmin,
                format!(
                    "This member is the only admin of `{}`; make another member admin first",
                    mesh.slug
                ),
            ));
        }
    }
    let (display_name,): (String,) =
        sqlx::query_as("UPDATE mesh_members SET role = $1 WHERE id = $2 RETURNING display_name")
            .bind(role.as_str())
            .bind(member_id)
            .fetch_one(&mut *tx)
            .await?;
    mesh_log::append(
        &mut tx,
        &mesh.id,
        now,
        &by_caller(LogEvent::new(LogKind::MemberRoleChanged), mesh)
            .with("member_id", member_id)
            .with("display_name", &display_name)
            .with("from", current.as_str())
            .with("to", role.as_str()),
    )
    .await?;
    audit::record(
        &mut *tx,
        now,
        audit::MEMBER_ROLE_CHANGED,
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "member_id": member_id, "from": current.as_str(), "to": role.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A mesh log event saying which member of `mesh` made the change.
pub fn by_caller(event: LogEvent, mesh: &MeshSummary) -> LogEvent {
    event
        .with("by_member_id", &mesh.member_id)
        .with("by", &mesh.display_name)
}

/// Rename a mesh (admins only); its slug stays.
#[utoipa::path(patch, path = "/api/my/meshes/{slug}", tag = "meshes", request_body = RenameMeshRequest,
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = MeshSummary), JsonBodyRejected, Unauthorized, AdminsOnly, NoSuchMesh,
        crate::auth::request_limit::RateLimited))]
async fn rename_mesh(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<RenameMeshRequest>,
) -> AppResult<Json<MeshSummary>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    Ok(Json(
        rename(&state, &caller, &client, &mesh, &body.name).await?,
    ))
}

/// Renames a mesh (shared with the pages).
pub async fn rename(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
    name: &str,
) -> AppResult<MeshSummary> {
    let name = clean_name(name, "name")?;
    require_admin(mesh)?;
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    sqlx::query("UPDATE meshes SET name = $1 WHERE id = $2")
        .bind(&name)
        .bind(&mesh.id)
        .execute(&mut *tx)
        .await?;
    mesh_log::append(
        &mut tx,
        &mesh.id,
        now,
        &by_caller(LogEvent::new(LogKind::MeshRenamed), mesh)
            .with("from", &mesh.name)
            .with("to", &name),
    )
    .await?;
    audit::record(
        &mut *tx,
        now,
        audit::MESH_RENAMED,
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "from": mesh.name, "to": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(MeshSummary {
        name,
        ..mesh.clone()
    })
}

/// Archive a mesh (admins only; idempotent): the broker refuses new
/// sessions and closes live ones on every instance, invites stop working,
/// messages stay until they expire.
#[utoipa::path(post, path = "/api/my/meshes/{slug}/archive", tag = "meshes",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = MeshSummary), Unauthorized, AdminsOnly, NoSuchMesh,
        crate::auth::request_limit::RateLimited))]
async fn archive_mesh(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(slug): Path<String>,
) -> AppResult<Json<MeshSummary>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    Ok(Json(
        set_archived(&state, &caller, &client, &mesh, true).await?,
    ))
}

/// Unarchive a mesh (admins only; idempotent).
#[utoipa::path(post, path = "/api/my/meshes/{slug}/unarchive", tag = "meshes",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = MeshSummary), Unauthorized, AdminsOnly, NoSuchMesh,
        crate::auth::request_limit::RateLimited))]
async fn unarchive_mesh(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(slug): Path<String>,
) -> AppResult<Json<MeshSummary>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    Ok(Json(
        set_archived(&state, &caller, &client, &mesh, false).await?,
    ))
}

/// Archives or unarchives a mesh (shared with the pages). Asking for the
/// state it is in changes nothing and writes no audit event.
pub async fn set_archived(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
    archived: bool,
) -> AppResult<MeshSummary> {
    require_admin(mesh)?;
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    let changed = if archived {
        sqlx::query("UPDATE meshes SET archived_at = $1 WHERE id = $2 AND archived_at IS NULL")
            .bind(now)
            .bind(&mesh.id)
    } else {
        sqlx::query(
            "UPDATE meshes SET archived_at = NULL WHERE id = $1 AND archived_at IS NOT NULL",
        )
        .bind(&mesh.id)
    }
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if changed {
        let kind = if archived {
            LogKind::MeshArchived
        } else {
            LogKind::MeshUnarchived
        };
        mesh_log::append(
            &mut tx,
            &mesh.id,
            now,
            &by_caller(LogEvent::new(kind), mesh),
        )
        .await?;
        audit::record(
            &mut *tx,
            now,
            if archived {
                audit::MESH_ARCHIVED
            } else {
                audit::MESH_UNARCHIVED
            },
            Some(&caller.user.id),
            Some(&client.ip),
            json!({ "mesh_id": mesh.id, "slug": mesh.slug }),
        )
        .await?;
    }
    tx.commit().await?;
    if changed && archived {
        state.broker.mesh_closed(&mesh.id, false).await;
    }
    // Unchanged: it was already as asked, as `mesh` (just read) says.
    let archived_at = if changed {
        archived.then(|| rfc3339(now))
    } else {
        mesh.archived_at.clone()
    };
    Ok(MeshSummary {
        archived_at,
        ..mesh.clone()
    })
}

/// Delete a mesh for good (admins only): the mesh, its memberships, keys,
/// invites, grants, messages, deliveries and sessions are gone, live
/// sessions close on every instance, and the slug is free again.
#[utoipa::path(delete, path = "/api/my/meshes/{slug}", tag = "meshes",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = DeletedMesh), Unauthorized, AdminsOnly, NoSuchMesh,
        crate::auth::request_limit::RateLimited))]
async fn delete_mesh(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(slug): Path<String>,
) -> AppResult<Json<DeletedMesh>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    delete(&state, &caller, &client, &mesh).await?;
    Ok(Json(DeletedMesh {
        id: mesh.id,
        slug: mesh.slug,
        deleted: true,
    }))
}

/// Deletes a mesh and every row of it in one transaction (shared with the
/// pages); the audit event stays.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
) -> AppResult<()> {
    require_admin(mesh)?;
    // Sessions close first, so none writes into the mesh while it goes.
    state.broker.mesh_closed(&mesh.id, true).await;
    // What they sent last may still be on its way to the database (messages,
    // acknowledgements, the mesh log's entries). On PostgreSQL such a write
    // and this transaction can deadlock, and the database cancels one of
    // them: when it is this one, it runs again.
    let mut attempt = 1;
    loop {
        match delete_rows(state, caller, client, mesh).await {
            Err(err) if attempt < DELETE_ATTEMPTS && is_write_conflict(&err) => {
                tracing::debug!(error = %err, attempt, "mesh deletion met a concurrent write; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(25 * attempt)).await;
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
            Ok(deleted) => return deleted,
        }
    }
}

/// Tries of [`delete`] before a write conflict is the caller's error.
const DELETE_ATTEMPTS: u64 = 4;

/// A deadlock or serialization failure (PostgreSQL's SQLSTATE 40P01 and
/// 40001): the transaction was cancelled and may simply run again.
fn is_write_conflict(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// One try of [`delete`]: the database's errors apart (they may be worth
/// another try), the answer.
async fn delete_rows(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
) -> Result<AppResult<()>, sqlx::Error> {
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    // Write first: on SQLite a transaction that reads and then writes fails
    // at once (SQLITE_BUSY) if another connection wrote in between, as the
    // sessions closed just above do when they record their departure.
    let caller_role = match lock_for_member_change(&mut tx, mesh).await {
        Ok(role) => role,
        Err(refused) => return Ok(Err(refused)),
    };
    if let Err(refused) = require_role_admin(caller_role, &mesh.slug) {
        return Ok(Err(refused));
    }
    Broker::delete_mesh_rows(&mut tx, &mesh.id).await?;
    for sql in [
        "DELETE FROM mesh_grants WHERE mesh_id = $1",
        "DELETE FROM mesh_invites WHERE mesh_id = $1",
        "DELETE FROM mesh_member_keys WHERE member_id IN (SELECT id FROM mesh_members WHERE mesh_id = $1)",
        "DELETE FROM mesh_members WHERE mesh_id = $1",
        "DELETE FROM meshes WHERE id = $1",
    ] {
        sqlx::query(sql).bind(&mesh.id).execute(&mut *tx).await?;
    }
    audit::record(
        &mut *tx,
        now,
        audit::MESH_DELETED,
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "slug": mesh.slug, "name": mesh.name }),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}
