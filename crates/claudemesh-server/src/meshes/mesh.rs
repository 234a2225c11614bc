//! Meshes and their members.
//!
//! A mesh has a name, a slug (the CLI's handle, unique among live meshes),
//! an owner, and members with a role. Each member registers one ed25519
//! public key per machine; the secret halves never leave those machines.
//! Every route checks membership first: a mesh the caller is not in answers
//! exactly like one that does not exist.

use crate::app::state::AppState;
use crate::auth::caller::Caller;
use crate::auth::token_store::clean_name;
use crate::clock::rfc3339;
use crate::db::audit;
use crate::db::ids::{new_id, random_base32};
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{CsrfRejected, JsonBodyRejected, Unauthorized};
use crate::http::request::{ApiJson, ClientInfo};
use crate::meshes::log::{self as mesh_log, LogEvent};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::wire::{
    CreateMeshRequest, MeshDetail, MeshList, MeshMember, MeshRole, MeshSummary, OkResponse,
    RegisterKeyRequest,
};
use claudemesh_api::{ErrorBody, ErrorCode, Slug};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Machine keys one membership may register: plenty for a person's
/// machines, and a bound on what one account can make the server store.
pub const MAX_KEYS_PER_MEMBER: i64 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_mesh, list_meshes))
        .routes(routes!(get_mesh))
        .routes(routes!(register_key))
        .routes(routes!(remove_member))
}

/// The answer of a route under `/api/my/meshes/{slug}` for a mesh the
/// caller is not in (or that does not exist: the same answer).
#[derive(utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "`not_found`: the caller has no mesh with this slug"
)]
pub struct NoSuchMesh(pub ErrorBody);

/// The answer of a change that needs a live mesh, for an archived one.
#[derive(utoipa::IntoResponses)]
#[response(status = 409, description = "`mesh_archived`: the mesh is archived")]
pub struct Archived(pub ErrorBody);

/// Checks an ed25519 public key in hex (64 characters,
/// [`claudemesh_api::rules::is_public_key`]), trims and lowercases it.
pub fn clean_public_key(raw: &str) -> AppResult<String> {
    let key = raw.trim().to_ascii_lowercase();
    if !claudemesh_api::rules::is_public_key(raw) {
        return Err(AppError::bad_request(
            "public_key must be an ed25519 public key in hex (64 characters)",
        ));
    }
    Ok(key)
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: String,
    slug: String,
    name: String,
    created_at: i64,
    member_id: String,
    #[sqlx(try_from = "String")]
    role: MeshRole,
    display_name: String,
    member_count: i64,
    archived_at: Option<i64>,
}

impl SummaryRow {
    fn into_summary(self) -> MeshSummary {
        MeshSummary {
            id: self.id,
            slug: self.slug,
            name: self.name,
            role: self.role,
            member_id: self.member_id,
            display_name: self.display_name,
            member_count: u64::try_from(self.member_count).unwrap_or(0),
            created_at: rfc3339(self.created_at),
            archived_at: self.archived_at.map(rfc3339),
        }
    }
}

macro_rules! my_meshes_sql {
    ($extra:literal) => {
        concat!(
            "SELECT m.id, m.slug, m.name, m.created_at, m.archived_at, mm.id AS member_id, mm.role, mm.display_name, \
             (SELECT COUNT(*) FROM mesh_members c WHERE c.mesh_id = m.id AND c.revoked_at IS NULL) AS member_count \
             FROM meshes m JOIN mesh_members mm ON mm.mesh_id = m.id \
             WHERE mm.user_id = $1 AND mm.revoked_at IS NULL ",
            $extra
        )
    };
}

/// The caller's membership of the mesh with this slug, or 404.
pub async fn my_mesh(state: &AppState, user_id: &str, slug: &str) -> AppResult<MeshSummary> {
    let row: Option<SummaryRow> = sqlx::query_as(my_meshes_sql!("AND m.slug = $2"))
        .bind(user_id)
        .bind(slug)
        .fetch_optional(state.pool())
        .await?;
    row.map(SummaryRow::into_summary)
        .ok_or_else(|| AppError::not_found(format!("You have no mesh called `{slug}`")))
}

/// The caller's membership of the mesh with this id, or 404.
pub async fn mesh_by_id(state: &AppState, user_id: &str, mesh_id: &str) -> AppResult<MeshSummary> {
    let row: Option<SummaryRow> = sqlx::query_as(my_meshes_sql!("AND m.id = $2"))
        .bind(user_id)
        .bind(mesh_id)
        .fetch_optional(state.pool())
        .await?;
    row.map(SummaryRow::into_summary)
        .ok_or_else(|| AppError::not_found("You are not a member of this mesh"))
}

/// Every mesh the account belongs to, oldest first.
pub async fn my_meshes(state: &AppState, user_id: &str) -> AppResult<Vec<MeshSummary>> {
    let rows: Vec<SummaryRow> = sqlx::query_as(my_meshes_sql!("ORDER BY m.created_at, m.id"))
        .bind(user_id)
        .fetch_all(state.pool())
        .await?;
    Ok(rows.into_iter().map(SummaryRow::into_summary).collect())
}

/// Refuses a change that needs a live mesh (a new invite, a new member).
pub fn require_live(mesh: &MeshSummary) -> AppResult<()> {
    if mesh.archived_at.is_some() {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::MeshArchived,
            format!(
                "`{}` is archived; an admin can unarchive it (claudemesh mesh unarchive --mesh {})",
                mesh.slug, mesh.slug
            ),
        ));
    }
    Ok(())
}

pub fn require_admin(mesh: &MeshSummary) -> AppResult<()> {
    require_role_admin(mesh.role, &mesh.slug)
}

pub fn require_role_admin(role: MeshRole, slug: &str) -> AppResult<()> {
    if role == MeshRole::Admin {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "Only admins of `{slug}` can do that"
        )))
    }
}

/// Adds a machine's key to a membership; adding a known key changes nothing.
pub async fn add_key<'e, E>(
    executor: E,
    member_id: &str,
    public_key: &str,
    now: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO mesh_member_keys (member_id, public_key, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (member_id, public_key) DO NOTHING",
    )
    .bind(member_id)
    .bind(public_key)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// Adds a machine's key to an existing membership, up to
/// [`MAX_KEYS_PER_MEMBER`]; a key it already has is always fine.
pub async fn add_machine_key(
    state: &AppState,
    member_id: &str,
    public_key: &str,
    now: i64,
) -> AppResult<()> {
    let (keys, known): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN public_key = $2 THEN 1 ELSE 0 END), 0) \
         FROM mesh_member_keys WHERE member_id = $1",
    )
    .bind(member_id)
    .bind(public_key)
    .fetch_one(state.pool())
    .await?;
    if known == 0 && keys >= MAX_KEYS_PER_MEMBER {
        return Err(AppError::bad_request(format!(
            "A member can register at most {MAX_KEYS_PER_MEMBER} machine keys in a mesh; \
             leave and join again to start afresh"
        )));
    }
    add_key(state.pool(), member_id, public_key, now).await?;
    Ok(())
}

/// The first free `slug-N` (N from 2) among meshes (archived ones keep
/// their slug).
async fn suggest_slug(state: &AppState, taken: &Slug) -> AppResult<Slug> {
    let similar: Vec<(String,)> = sqlx::query_as("SELECT slug FROM meshes WHERE slug LIKE $1")
        .bind(format!(
            "{}%",
            &taken.as_str()[..taken.as_str().len().min(30)]
        ))
        .fetch_all(state.pool())
        .await?;
    let similar: HashSet<String> = similar.into_iter().map(|(slug,)| slug).collect();
    // At most `similar.len()` suffixes are taken, so one of the first
    // `similar.len() + 1` is free.
    (2..)
        .take(similar.len() + 1)
        .map(|n| taken.with_suffix(n))
        .find(|candidate| !similar.contains(candidate.as_str()))
        .ok_or_else(|| AppError::internal("no free slug suffix"))
}

/// Create a mesh; the caller becomes its first admin.
#[utoipa::path(post, path = "/api/my/meshes", tag = "meshes", request_body = CreateMeshRequest,
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 201, body = MeshSummary), JsonBodyRejected, Unauthorized, CsrfRejected,
        (status = 409, body = ErrorBody, description = "`slug_taken`: a live mesh has this slug; `suggestion` is a free one"), crate::auth::request_limit::RateLimited))]
async fn create_mesh(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    ApiJson(body): ApiJson<CreateMeshRequest>,
) -> AppResult<(StatusCode, Json<MeshSummary>)> {
    let mesh = create(&state, &caller, &client, &body).await?;
    Ok((StatusCode::CREATED, Json(mesh)))
}

/// Creates a mesh and its admin member in one transaction (shared with the pages).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    body: &CreateMeshRequest,
) -> AppResult<MeshSummary> {
    let name = clean_name(&body.name, "name")?;
    let slug = match body.slug.as_deref().map(str::trim) {
        Some(given) => Slug::parse(given).map_err(|err| AppError::bad_request(err.to_string()))?,
        None => match Slug::from_name(&name) {
            Some(slug) => slug,
            None => Slug::parse(&format!("mesh-{}", random_base32::<3>()))
                .map_err(|err| AppError::internal(format!("a generated slug: {err}")))?,
        },
    };
    let public_key = clean_public_key(&body.public_key)?;
    let display_name = clean_name(
        body.display_name.as_deref().unwrap_or(&caller.user.name),
        "display_name",
    )?;
    let now = state.now();
    let (mesh_id, member_id) = (new_id("msh"), new_id("mem"));

    let mut tx = state.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO meshes (id, slug, name, owner_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&mesh_id)
    .bind(slug.as_str())
    .bind(&name)
    .bind(&caller.user.id)
    .bind(now)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(err)) = &inserted
        && err.is_unique_violation()
    {
        tx.rollback().await?;
        let free = suggest_slug(state, &slug).await?;
        return Err(AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::SlugTaken,
            format!("The slug `{slug}` is taken; try `{free}`"),
        )
        .with_suggestion(free.as_str()));
    }
    inserted?;
    sqlx::query(
        "INSERT INTO mesh_members (id, mesh_id, user_id, display_name, role, joined_at) \
         VALUES ($1, $2, $3, $4, 'admin', $5)",
    )
    .bind(&member_id)
    .bind(&mesh_id)
    .bind(&caller.user.id)
    .bind(&display_name)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    add_key(&mut *tx, &member_id, &public_key, now).await?;
    mesh_log::append(
        &mut tx,
        &mesh_id,
        now,
        &LogEvent::new(LogKind::MemberJoined)
            .with("member_id", &member_id)
            .with("display_name", &display_name)
            .with("role", MeshRole::Admin.as_str())
            .with("how", "created the mesh"),
    )
    .await?;
    audit::record(
        &mut *tx,
        now,
        "mesh.created",
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh_id, "slug": slug.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(MeshSummary {
        id: mesh_id,
        slug: slug.as_str().to_owned(),
        name,
        role: MeshRole::Admin,
        member_id,
        display_name,
        member_count: 1,
        created_at: rfc3339(now),
        archived_at: None,
    })
}

/// List every mesh the account belongs to.
#[utoipa::path(get, path = "/api/my/meshes", tag = "meshes",
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = MeshList), Unauthorized, crate::auth::request_limit::RateLimited))]
async fn list_meshes(State(state): State<AppState>, caller: Caller) -> AppResult<Json<MeshList>> {
    Ok(Json(MeshList {
        meshes: my_meshes(&state, &caller.user.id).await?,
    }))
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: String,
    user_id: String,
    display_name: String,
    #[sqlx(try_from = "String")]
    role: MeshRole,
    joined_at: i64,
}

/// The members of a mesh with their keys (the caller must be one of them).
pub async fn members(
    state: &AppState,
    mesh_id: &str,
    caller_id: &str,
) -> AppResult<Vec<MeshMember>> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT id, user_id, display_name, role, joined_at FROM mesh_members \
         WHERE mesh_id = $1 AND revoked_at IS NULL ORDER BY joined_at, id",
    )
    .bind(mesh_id)
    .fetch_all(state.pool())
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT k.member_id, k.public_key FROM mesh_member_keys k \
         JOIN mesh_members mm ON mm.id = k.member_id WHERE mm.mesh_id = $1 ORDER BY k.created_at, k.public_key",
    )
    .bind(mesh_id)
    .fetch_all(state.pool())
    .await?;
    let mut keys_by_member: HashMap<String, Vec<String>> = HashMap::new();
    for (member_id, key) in keys {
        keys_by_member.entry(member_id).or_default().push(key);
    }
    Ok(rows
        .into_iter()
        .map(|row| MeshMember {
            public_keys: keys_by_member.remove(&row.id).unwrap_or_default(),
            you: row.user_id == caller_id,
            id: row.id,
            display_name: row.display_name,
            role: row.role,
            joined_at: rfc3339(row.joined_at),
        })
        .collect())
}

/// A mesh with its members.
#[utoipa::path(get, path = "/api/my/meshes/{slug}", tag = "meshes",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = MeshDetail), Unauthorized, NoSuchMesh, crate::auth::request_limit::RateLimited))]
async fn get_mesh(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> AppResult<Json<MeshDetail>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    let members = members(&state, &mesh.id, &caller.user.id).await?;
    Ok(Json(MeshDetail { mesh, members }))
}

/// Register this machine's public key for the caller's membership (what
/// `claudemesh sync` does on a new machine). Idempotent.
#[utoipa::path(post, path = "/api/my/meshes/{slug}/keys", tag = "meshes", request_body = RegisterKeyRequest,
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), JsonBodyRejected,
        (status = 400, body = ErrorBody, description = "`invalid_request`: the membership has 100 machine keys already, or the body is not of the documented shape; `invalid_json`: it is not JSON"),
        Unauthorized, CsrfRejected, NoSuchMesh, crate::auth::request_limit::RateLimited))]
async fn register_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<RegisterKeyRequest>,
) -> AppResult<Json<OkResponse>> {
    let public_key = clean_public_key(&body.public_key)?;
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    add_machine_key(&state, &mesh.member_id, &public_key, state.now()).await?;
    Ok(Json(OkResponse { ok: true }))
}

/// Remove a member of a mesh: an admin removing anyone, or a member leaving
/// (`me` for the caller's own membership). The mesh's only admin cannot go.
#[utoipa::path(delete, path = "/api/my/meshes/{slug}/members/{member}", tag = "meshes",
    params(("slug" = String, Path, description = "Mesh slug"),
           ("member" = String, Path, description = "Member id, or `me`")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), Unauthorized,
        (status = 403, body = ErrorBody, description = "`forbidden`: only an admin removes someone else; `csrf_rejected`: a browser session's request from another origin"),
        (status = 404, body = ErrorBody, description = "`not_found`: the caller has no mesh with this slug, or it has no such member"),
        (status = 409, body = ErrorBody, description = "`last_admin`: the member is the mesh's only admin"), crate::auth::request_limit::RateLimited))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path((slug, member)): Path<(String, String)>,
) -> AppResult<Json<OkResponse>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    let member_id = if member == "me" {
        mesh.member_id.as_str()
    } else {
        member.as_str()
    };
    remove(&state, &caller, &client, &mesh, member_id).await?;
    Ok(Json(OkResponse { ok: true }))
}

/// The role of a live member of the mesh, read inside `tx`.
pub async fn live_role(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mesh_id: &str,
    member_id: &str,
) -> AppResult<Option<MeshRole>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM mesh_members WHERE id = $1 AND mesh_id = $2 AND revoked_at IS NULL",
    )
    .bind(member_id)
    .bind(mesh_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(role,)| MeshRole::try_from(role)).transpose()?)
}

/// Starts a change of a mesh's members: writes to the mesh row first, so
/// that changes in one mesh run one after the other (a row lock on
/// PostgreSQL, the write lock on SQLite) and two admins removing or
/// demoting each other cannot leave it with none; then the caller's role
/// as it is now (they may have been removed or demoted since `mesh` was
/// read).
pub async fn lock_for_member_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mesh: &MeshSummary,
) -> AppResult<MeshRole> {
    sqlx::query("UPDATE meshes SET name = name WHERE id = $1")
        .bind(&mesh.id)
        .execute(&mut **tx)
        .await?;
    live_role(tx, &mesh.id, &mesh.member_id)
        .await?
        .ok_or_else(|| AppError::not_found("You are not a member of this mesh"))
}

/// Ends a membership (shared with the pages), and revokes the live invites
/// that member made. The member's keys stay on record with it; joining again
/// later makes a new membership, and after a removal only with an invite
/// made after it.
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
    member_id: &str,
) -> AppResult<()> {
    let leaving = member_id == mesh.member_id;
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    let caller_role = lock_for_member_change(&mut tx, mesh).await?;
    let role = if leaving {
        caller_role
    } else {
        require_role_admin(caller_role, &mesh.slug)?;
        live_role(&mut tx, &mesh.id, member_id)
            .await?
            .ok_or_else(|| {
                AppError::not_found(format!("`{}` has no member `{member_id}`", mesh.slug))
            })?
    };
    if role == MeshRole::Admin {
        let (admins,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM mesh_members \
             WHERE mesh_id = $1 AND role = 'admin' AND revoked_at IS NULL",
        )
        .bind(&mesh.id)
        .fetch_one(&mut *tx)
        .await?;
        if admins <= 1 {
            let whose = if leaving { "You are" } else { "This member is" };
            return Err(AppError::new(
                StatusCode::CONFLICT,
                ErrorCode::LastAdmin,
                format!(
                    "{whose} the only admin of `{}`; invite another admin first (claudemesh invite --role admin)",
                    mesh.slug
                ),
            ));
        }
    }
    let removed_by = (!leaving).then_some(caller.user.id.as_str());
    let (user_id, display_name): (String, String) = sqlx::query_as(
        "UPDATE mesh_members SET revoked_at = $1, removed_by = $2 WHERE id = $3 \
         RETURNING user_id, display_name",
    )
    .bind(now)
    .bind(removed_by)
    .bind(member_id)
    .fetch_one(&mut *tx)
    .await?;
    // Invites speak for the membership that made them: they end with it.
    sqlx::query(
        "UPDATE mesh_invites SET revoked_at = $1 \
         WHERE mesh_id = $2 AND created_by = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&mesh.id)
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    let event = if leaving {
        LogEvent::new(LogKind::MemberLeft)
    } else {
        LogEvent::new(LogKind::MemberRemoved).with("by_member_id", &mesh.member_id)
    };
    mesh_log::append(
        &mut tx,
        &mesh.id,
        now,
        &event
            .with("member_id", member_id)
            .with("display_name", &display_name)
            .with("role", role.as_str()),
    )
    .await?;
    audit::record(
        &mut *tx,
        now,
        if leaving {
            "mesh.member.left"
        } else {
            "mesh.member.removed"
        },
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "member_id": member_id }),
    )
    .await?;
    tx.commit().await?;
    // Its live sessions close now, on every instance.
    state.broker.member_removed(&mesh.id, member_id).await;
    Ok(())
}
