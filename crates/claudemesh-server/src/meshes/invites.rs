//! Mesh invites: short codes behind `<public URL>/i/<code>` with a role, an
//! expiry and a use limit, optionally emailed.
//!
//! Accepting is one conditional update (`uses < max_uses`, not revoked, not
//! expired) in the same transaction as the new membership, so any number of
//! people accepting at once never exceed the limit. Accepting again as a
//! member is a no-op that uses nothing up.

use crate::app::state::AppState;
use crate::auth::caller::Caller;
use crate::auth::token_store::clean_name;
use crate::clock::{DAY_MS, rfc3339};
use crate::db::audit;
use crate::db::ids::{new_id, random_base32};
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{JsonBodyRejected, Unauthorized};
use crate::http::request::{ApiJson, ClientInfo};
use crate::meshes::log::{self as mesh_log, LogEvent};
use crate::meshes::mesh::{
    add_key, add_machine_key, clean_public_key, mesh_by_id, my_mesh, require_admin, require_live,
};
use crate::text::i18n::{self, Lang};
use crate::text::mail::{Delivery, Mail};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::wire::{
    AcceptInviteRequest, AcceptedInvite, CreateInviteRequest, CreatedInvite, InviteInfo,
    InviteList, InvitePreview, InviteStatus, MailStatus, OkResponse,
};
use claudemesh_api::{ErrorBody, ErrorCode, rules};
use fluent_templates::fluent_bundle::FluentValue;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

pub const DEFAULT_EXPIRY_DAYS: u32 = 7;
pub const MAX_EXPIRY_DAYS: u32 = rules::MAX_INVITE_EXPIRY_DAYS;
pub const MAX_USES_LIMIT: u32 = rules::MAX_INVITE_USES;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_invite, list_invites))
        .routes(routes!(revoke_invite))
        .routes(routes!(preview_invite))
        .routes(routes!(accept_invite))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub id: String,
    pub mesh_id: String,
    pub code: String,
    #[sqlx(try_from = "String")]
    pub role: claudemesh_api::wire::MeshRole,
    pub email: Option<String>,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const INVITE_COLUMNS: &str =
    "id, mesh_id, code, role, email, max_uses, uses, expires_at, created_at, revoked_at";

impl InviteRow {
    pub fn status(&self, now: i64) -> InviteStatus {
        if self.revoked_at.is_some() {
            InviteStatus::Revoked
        } else if now >= self.expires_at {
            InviteStatus::Expired
        } else if self.uses >= self.max_uses {
            InviteStatus::UsedUp
        } else {
            InviteStatus::Valid
        }
    }

    pub fn info(&self, state: &AppState) -> InviteInfo {
        InviteInfo {
            id: self.id.clone(),
            code: self.code.clone(),
            url: invite_url(state, &self.code),
            role: self.role,
            email: self.email.clone(),
            max_uses: u32::try_from(self.max_uses).unwrap_or(0),
            uses: u32::try_from(self.uses).unwrap_or(0),
            expires_at: rfc3339(self.expires_at),
            created_at: rfc3339(self.created_at),
            revoked: self.revoked_at.is_some(),
        }
    }
}

pub fn invite_url(state: &AppState, code: &str) -> String {
    format!("{}/i/{code}", state.settings.public_url)
}

/// The error for an invite that cannot be used, by why.
fn unusable(status: InviteStatus) -> AppError {
    match status {
        InviteStatus::Revoked => AppError::new(
            StatusCode::GONE,
            ErrorCode::InviteRevoked,
            "This invite has been revoked",
        ),
        InviteStatus::Expired => AppError::new(
            StatusCode::GONE,
            ErrorCode::InviteExpired,
            "This invite has expired; ask for a new one",
        ),
        InviteStatus::UsedUp => AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::InviteUsedUp,
            "This invite has been used up; ask for a new one",
        ),
        InviteStatus::Valid => AppError::internal("a valid invite was refused"),
    }
}

/// Accepts a code as typed or a whole invite URL.
fn code_from(text: &str) -> &str {
    let text = text.trim().trim_end_matches('/');
    text.rsplit('/').next().unwrap_or(text)
}

pub async fn find_by_code(state: &AppState, code: &str) -> AppResult<InviteRow> {
    let code = code_from(code);
    let sql = format!("SELECT {INVITE_COLUMNS} FROM mesh_invites WHERE code = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(code)
        .fetch_optional(state.pool())
        .await?
        .ok_or_else(|| AppError::not_found("No invite has this code; check the link"))
}

/// Create an invite (admins only), and email it when an address is given.
#[utoipa::path(post, path = "/api/my/meshes/{slug}/invites", tag = "invites", request_body = CreateInviteRequest,
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 201, body = CreatedInvite), JsonBodyRejected, Unauthorized, (status = 403, body = ErrorBody, description = "`forbidden`: only the mesh's admins manage its invites; `csrf_rejected`: a browser session's request from another origin"),
        crate::meshes::mesh::NoSuchMesh, crate::meshes::mesh::Archived, crate::auth::request_limit::RateLimited))]
async fn create_invite(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<CreateInviteRequest>,
) -> AppResult<(StatusCode, Json<CreatedInvite>)> {
    let lang = i18n::negotiate(body.lang.as_deref(), &headers).lang;
    let created = create(&state, &caller, &client, &slug, &body, lang).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Creates an invite and sends its email (shared with the pages).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    slug: &str,
    body: &CreateInviteRequest,
    lang: Lang,
) -> AppResult<CreatedInvite> {
    let mesh = my_mesh(state, &caller.user.id, slug).await?;
    require_admin(&mesh)?;
    require_live(&mesh)?;
    // Blank is no address ([`rules::is_blank_or_email`]).
    let email = match body.email.as_deref() {
        None => None,
        Some(raw) if !rules::is_blank_or_email(raw) => {
            return Err(AppError::bad_request("That is not a valid email address"));
        }
        Some(raw) if raw.trim().is_empty() => None,
        Some(raw) => Some(crate::auth::accounts::clean_email(raw)?.0),
    };
    let days = body.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(AppError::bad_request(format!(
            "expires_in_days must be 1 to {MAX_EXPIRY_DAYS}"
        )));
    }
    let max_uses = body.max_uses.unwrap_or(1);
    if !(1..=MAX_USES_LIMIT).contains(&max_uses) {
        return Err(AppError::bad_request(format!(
            "max_uses must be 1 to {MAX_USES_LIMIT}"
        )));
    }
    let now = state.now();
    let row = InviteRow {
        id: new_id("inv"),
        mesh_id: mesh.id.clone(),
        code: random_base32::<8>(),
        role: body.role.unwrap_or_default(),
        email,
        max_uses: i64::from(max_uses),
        uses: 0,
        expires_at: now + i64::from(days) * DAY_MS,
        created_at: now,
        revoked_at: None,
    };
    let mut tx = state.pool().begin().await?;
    sqlx::query(
        "INSERT INTO mesh_invites (id, mesh_id, code, role, email, max_uses, uses, expires_at, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&row.mesh_id)
    .bind(&row.code)
    .bind(row.role.as_str())
    .bind(&row.email)
    .bind(row.max_uses)
    .bind(row.expires_at)
    .bind(&caller.user.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    mesh_log::append(
        &mut tx,
        &mesh.id,
        now,
        &LogEvent::new(LogKind::InviteCreated)
            .with("invite_id", &row.id)
            .with("by_member_id", &mesh.member_id)
            .with("by", &mesh.display_name)
            .with("role", row.role.as_str())
            .with("max_uses", max_uses)
            .with("emailed", if row.email.is_some() { "yes" } else { "no" }),
    )
    .await?;
    audit::record(
        &mut *tx,
        now,
        "mesh.invite.created",
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "invite_id": row.id, "role": row.role.as_str(), "max_uses": max_uses, "emailed_to": row.email }),
    )
    .await?;
    tx.commit().await?;

    // The invite exists from here on, whatever happens to the email.
    let invite = row.info(state);
    let (mail, email_error) = match &row.email {
        None => (None, None),
        Some(to) => {
            let mail = invite_mail(lang, to, &caller.user.name, &mesh.name, &invite);
            match state.mailer.send(&mail).await {
                Ok(Delivery::Sent) => (Some(MailStatus::Sent), None),
                // Said as a reason too, so that a client that knows only
                // `emailed` tells its user the truth as well.
                Ok(Delivery::Outbox) => (Some(MailStatus::Outbox), Some(OUTBOX_REASON.to_owned())),
                Err(reason) => (Some(MailStatus::Failed), Some(reason)),
            }
        }
    };
    Ok(CreatedInvite {
        invite,
        emailed: mail == Some(MailStatus::Sent),
        mail,
        email_error,
    })
}

/// Why an invite mail written to the outbox reaches nobody.
pub const OUTBOX_REASON: &str = "no mail server is set up on the server, so the mail was written to its outbox folder and not sent";

fn invite_mail(lang: Lang, to: &str, inviter: &str, mesh_name: &str, invite: &InviteInfo) -> Mail {
    let args = [
        ("inviter", FluentValue::from(inviter.to_owned())),
        ("mesh", FluentValue::from(mesh_name.to_owned())),
        ("url", FluentValue::from(invite.url.clone())),
        (
            "expires",
            FluentValue::from(invite.expires_at.replace('T', " ").replace('Z', " UTC")),
        ),
    ];
    Mail {
        to: to.to_owned(),
        subject: lang.t_args("mail-invite-subject", &args),
        body: lang.t_args("mail-invite-body", &args),
    }
}

/// The mesh's invites, newest first (admins only).
#[utoipa::path(get, path = "/api/my/meshes/{slug}/invites", tag = "invites",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = InviteList), Unauthorized,
        (status = 403, body = ErrorBody, description = "`forbidden`: only the mesh's admins see its invites"),
        crate::meshes::mesh::NoSuchMesh, crate::auth::request_limit::RateLimited))]
async fn list_invites(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> AppResult<Json<InviteList>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    require_admin(&mesh)?;
    let invites = list(&state, &mesh.id).await?;
    Ok(Json(InviteList {
        invites: invites.iter().map(|row| row.info(&state)).collect(),
    }))
}

pub async fn list(state: &AppState, mesh_id: &str) -> AppResult<Vec<InviteRow>> {
    let sql = format!(
        "SELECT {INVITE_COLUMNS} FROM mesh_invites WHERE mesh_id = $1 ORDER BY created_at DESC, id"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(mesh_id)
        .fetch_all(state.pool())
        .await?)
}

/// Revoke an invite (admins only).
#[utoipa::path(delete, path = "/api/my/meshes/{slug}/invites/{id}", tag = "invites",
    params(("slug" = String, Path, description = "Mesh slug"), ("id" = String, Path, description = "Invite id")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), Unauthorized, (status = 403, body = ErrorBody, description = "`forbidden`: only the mesh's admins manage its invites; `csrf_rejected`: a browser session's request from another origin"),
        (status = 404, body = ErrorBody, description = "`not_found`: the caller has no mesh with this slug, or it has no live invite with this id"), crate::auth::request_limit::RateLimited))]
async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path((slug, id)): Path<(String, String)>,
) -> AppResult<Json<OkResponse>> {
    revoke(&state, &caller, &client, &slug, &id).await?;
    Ok(Json(OkResponse { ok: true }))
}

pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    slug: &str,
    id: &str,
) -> AppResult<()> {
    let mesh = my_mesh(state, &caller.user.id, slug).await?;
    require_admin(&mesh)?;
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    let revoked = sqlx::query("UPDATE mesh_invites SET revoked_at = $1 WHERE id = $2 AND mesh_id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .bind(&mesh.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if revoked == 0 {
        return Err(AppError::not_found("No such live invite in this mesh"));
    }
    mesh_log::append(
        &mut tx,
        &mesh.id,
        now,
        &LogEvent::new(LogKind::InviteRevoked)
            .with("invite_id", id)
            .with("by_member_id", &mesh.member_id)
            .with("by", &mesh.display_name),
    )
    .await?;
    let detail = json!({ "mesh_id": mesh.id, "invite_id": id });
    audit::record(
        &mut *tx,
        now,
        "mesh.invite.revoked",
        Some(&caller.user.id),
        Some(&client.ip),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What an invite link leads to (no sign-in needed: the link is the secret).
#[utoipa::path(get, path = "/api/invites/{code}", tag = "invites",
    params(("code" = String, Path, description = "Invite code")),
    responses((status = 200, body = InvitePreview),
        (status = 404, body = ErrorBody, description = "`not_found`: no invite has this code")))]
async fn preview_invite(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> AppResult<Json<InvitePreview>> {
    Ok(Json(preview(&state, &code).await?))
}

pub async fn preview(state: &AppState, code: &str) -> AppResult<InvitePreview> {
    let invite = find_by_code(state, code).await?;
    let (mesh_name, mesh_slug, inviter_name): (String, String, String) = sqlx::query_as(
        "SELECT m.name, m.slug, u.name FROM mesh_invites i JOIN meshes m ON m.id = i.mesh_id \
         JOIN users u ON u.id = i.created_by WHERE i.id = $1",
    )
    .bind(&invite.id)
    .fetch_one(state.pool())
    .await?;
    Ok(InvitePreview {
        code: invite.code.clone(),
        mesh_name,
        mesh_slug,
        inviter_name,
        role: invite.role,
        expires_at: rfc3339(invite.expires_at),
        status: invite.status(state.now()),
    })
}

/// Join the invite's mesh with this machine's public key.
#[utoipa::path(post, path = "/api/invites/{code}/accept", tag = "invites", request_body = AcceptInviteRequest,
    params(("code" = String, Path, description = "Invite code")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = AcceptedInvite), JsonBodyRejected,
        (status = 400, body = ErrorBody, description = "`invalid_request`: a field breaks a rule, the body is not of the documented shape, or the membership has 100 machine keys already; `invalid_json`: the body is not JSON"),
        Unauthorized,
        (status = 403, body = ErrorBody, description = "`removed_from_mesh`: an admin removed the caller from the mesh after the invite was made; `csrf_rejected`: a browser session's request from another origin"),
        (status = 404, body = ErrorBody, description = "`not_found`: no invite has this code"),
        (status = 409, body = ErrorBody, description = "`invite_used_up`: the invite has been used as often as it allows; `mesh_archived`: the mesh is archived"),
        (status = 410, body = ErrorBody, description = "`invite_expired`, `invite_revoked`"), crate::auth::request_limit::RateLimited))]
async fn accept_invite(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<AcceptInviteRequest>,
) -> AppResult<Json<AcceptedInvite>> {
    let public_key = clean_public_key(&body.public_key)?;
    Ok(Json(
        accept(
            &state,
            &caller,
            &client,
            &code,
            Some(&public_key),
            body.display_name.as_deref(),
        )
        .await?,
    ))
}

/// Whether an admin removed this account from the invite's mesh after the
/// invite was made: a link from before a removal does not undo it.
async fn removed_after(state: &AppState, user_id: &str, invite: &InviteRow) -> AppResult<bool> {
    let (removals,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM mesh_members \
         WHERE mesh_id = $1 AND user_id = $2 AND removed_by IS NOT NULL AND revoked_at > $3",
    )
    .bind(&invite.mesh_id)
    .bind(user_id)
    .bind(invite.created_at)
    .fetch_one(state.pool())
    .await?;
    Ok(removals > 0)
}

/// Accepts an invite (shared with the pages, which have no key to give).
pub async fn accept(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    code: &str,
    public_key: Option<&str>,
    display_name: Option<&str>,
) -> AppResult<AcceptedInvite> {
    let invite = find_by_code(state, code).await?;
    let display_name = clean_name(display_name.unwrap_or(&caller.user.name), "display_name")?;
    let now = state.now();
    if let Some(accepted) = already_member(state, caller, &invite, public_key, now).await? {
        return Ok(accepted);
    }
    let status = invite.status(now);
    if status != InviteStatus::Valid {
        return Err(unusable(status));
    }
    let (archived_at,): (Option<i64>,) =
        sqlx::query_as("SELECT archived_at FROM meshes WHERE id = $1")
            .bind(&invite.mesh_id)
            .fetch_one(state.pool())
            .await?;
    if archived_at.is_some() {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::MeshArchived,
            "This mesh is archived: its invites do not work until an admin unarchives it",
        ));
    }
    if removed_after(state, &caller.user.id, &invite).await? {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::RemovedFromMesh,
            "An admin removed you from this mesh after this invite was made; ask an admin for a new invite",
        ));
    }
    let member_id = new_id("mem");
    // The first statement writes, so SQLite takes its write lock at once and
    // concurrent accepts queue instead of deadlocking on a lock upgrade.
    let mut tx = state.pool().begin().await?;
    let taken = sqlx::query(
        "UPDATE mesh_invites SET uses = uses + 1 \
         WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND uses < max_uses",
    )
    .bind(&invite.id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if taken == 0 {
        tx.rollback().await?;
        let fresh = find_by_code(state, &invite.code).await?;
        return Err(unusable(match fresh.status(now) {
            InviteStatus::Valid => InviteStatus::UsedUp,
            other => other,
        }));
    }
    let joined = sqlx::query(
        "INSERT INTO mesh_members (id, mesh_id, user_id, display_name, role, joined_at, default_caps) \
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT default_caps FROM meshes WHERE id = $2))",
    )
    .bind(&member_id)
    .bind(&invite.mesh_id)
    .bind(&caller.user.id)
    .bind(&display_name)
    .bind(invite.role.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(err)) = &joined
        && err.is_unique_violation()
    {
        // The same account accepted twice at once: the other one joined.
        tx.rollback().await?;
        return already_member(state, caller, &invite, public_key, now)
            .await?
            .ok_or_else(|| AppError::internal("membership vanished during accept"));
    }
    joined?;
    if let Some(key) = public_key {
        add_key(&mut *tx, &member_id, key, now).await?;
    }
    mesh_log::append(
        &mut tx,
        &invite.mesh_id,
        now,
        &LogEvent::new(LogKind::InviteAccepted)
            .with("invite_id", &invite.id)
            .with("member_id", &member_id),
    )
    .await?;
    mesh_log::append(
        &mut tx,
        &invite.mesh_id,
        now,
        &LogEvent::new(LogKind::MemberJoined)
            .with("member_id", &member_id)
            .with("display_name", &display_name)
            .with("role", invite.role.as_str())
            .with("how", "accepted an invite")
            .with("invite_id", &invite.id),
    )
    .await?;
    let detail =
        json!({ "mesh_id": invite.mesh_id, "invite_id": invite.id, "member_id": member_id });
    audit::record(
        &mut *tx,
        now,
        "mesh.invite.accepted",
        Some(&caller.user.id),
        Some(&client.ip),
        detail,
    )
    .await?;
    tx.commit().await?;
    let mesh = mesh_by_id(state, &caller.user.id, &invite.mesh_id).await?;
    Ok(AcceptedInvite {
        mesh,
        already_member: false,
    })
}

/// When the caller is already in the invite's mesh: registers the key and
/// answers, using nothing up.
async fn already_member(
    state: &AppState,
    caller: &Caller,
    invite: &InviteRow,
    public_key: Option<&str>,
    now: i64,
) -> AppResult<Option<AcceptedInvite>> {
    let mesh = match mesh_by_id(state, &caller.user.id, &invite.mesh_id).await {
        Ok(mesh) => mesh,
        Err(err) if err.status == StatusCode::NOT_FOUND => return Ok(None),
        Err(err) => return Err(err),
    };
    if let Some(key) = public_key {
        add_machine_key(state, &mesh.member_id, key, now).await?;
    }
    Ok(Some(AcceptedInvite {
        mesh,
        already_member: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_urls_and_bare() {
        assert_eq!(code_from("https://claudemesh.com/i/abc123"), "abc123");
        assert_eq!(code_from(" abc123/ "), "abc123");
        assert_eq!(code_from("abc123"), "abc123");
    }
}
