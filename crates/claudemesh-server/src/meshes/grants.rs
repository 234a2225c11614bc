//! Per-peer grants: each member decides what each other member may do to
//! them (`dm`, `group`, `presence`), and admins set the mesh's default for
//! new members. The broker enforces them from memory
//! ([`crate::meshes::grant_store::MeshGrants`]); a change reaches every
//! instance through the broker's bus, and messages from that peer still
//! waiting for the member that the new grant would refuse are dropped in
//! the same transaction.

use crate::app::state::AppState;
use crate::auth::caller::Caller;
use crate::broker::Broker;
use crate::db::audit;
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{JsonBodyRejected, Unauthorized};
use crate::http::request::{ApiJson, ClientInfo};
use crate::meshes::governance::AdminsOnly;
use crate::meshes::grant_store::{self, Caps};
use crate::meshes::log::{self as mesh_log, LogEvent};
use crate::meshes::mesh::{NoSuchMesh, members, my_mesh, require_admin};
use axum::Json;
use axum::extract::{Path, State};
use claudemesh_api::ErrorBody;
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::wire::{
    Capability, ChangeGrantRequest, DefaultGrantsRequest, GrantList, MeshSummary, OkResponse,
    PeerGrant,
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_grants))
        .routes(routes!(change_grant))
        .routes(routes!(set_default_grants))
}

/// What the caller allows each peer and what each peer allows the caller
/// (shared with the pages).
pub async fn grant_list(
    state: &AppState,
    mesh: &MeshSummary,
    caller_id: &str,
) -> AppResult<GrantList> {
    let grants = grant_store::load(state.pool(), &mesh.id).await?;
    let me = &mesh.member_id;
    let others: Vec<_> = members(state, &mesh.id, caller_id)
        .await?
        .into_iter()
        .filter(|m| !m.you)
        .collect();
    let peer = |m: &claudemesh_api::wire::MeshMember, caps: Caps| PeerGrant {
        member_id: m.id.clone(),
        display_name: m.display_name.clone(),
        caps: caps.list(),
    };
    let (my_default,): (Option<String>,) =
        sqlx::query_as("SELECT default_caps FROM mesh_members WHERE id = $1")
            .bind(me)
            .fetch_one(state.pool())
            .await?;
    let my_default = match my_default {
        Some(text) => Caps::parse(&text)?,
        None => Caps::ALL,
    };
    Ok(GrantList {
        mesh: mesh.slug.clone(),
        you_allow: others
            .iter()
            .map(|m| peer(m, grants.allowed(me, &m.id)))
            .collect(),
        allows_you: others
            .iter()
            .map(|m| peer(m, grants.allowed(&m.id, me)))
            .collect(),
        your_default: my_default.list(),
        mesh_default: grant_store::mesh_default(state.pool(), &mesh.id)
            .await?
            .list(),
    })
}

/// What the caller allows each peer, and what each peer allows the caller.
#[utoipa::path(get, path = "/api/my/meshes/{slug}/grants", tag = "grants",
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = GrantList), Unauthorized, NoSuchMesh, crate::auth::request_limit::RateLimited))]
async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> AppResult<Json<GrantList>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    Ok(Json(grant_list(&state, &mesh, &caller.user.id).await?))
}

/// Give and take away what one peer may do to the caller: `grant` is
/// added, then `revoke` taken away (block: revoke all; unblock: grant all).
/// Applies to live sessions on every instance within a second, and to
/// messages from that peer not yet delivered.
#[utoipa::path(patch, path = "/api/my/meshes/{slug}/grants/{member}", tag = "grants", request_body = ChangeGrantRequest,
    params(("slug" = String, Path, description = "Mesh slug"),
           ("member" = String, Path, description = "The peer's member id")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = PeerGrant), JsonBodyRejected,
        (status = 400, body = ErrorBody, description = "`invalid_request`: a capability that does not exist, or the caller's own member id; `invalid_json`: the body is not JSON"),
        Unauthorized, crate::http::openapi::CsrfRejected,
        (status = 404, body = ErrorBody, description = "`not_found`: the caller has no mesh with this slug, or it has no such member"),
        crate::auth::request_limit::RateLimited))]
async fn change_grant(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path((slug, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChangeGrantRequest>,
) -> AppResult<Json<PeerGrant>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    Ok(Json(
        change(&state, &caller, &client, &mesh, &member, &body).await?,
    ))
}

/// Changes what one peer may do to the caller (shared with the pages).
pub async fn change(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    mesh: &MeshSummary,
    peer_id: &str,
    body: &ChangeGrantRequest,
) -> AppResult<PeerGrant> {
    if peer_id == mesh.member_id {
        return Err(AppError::bad_request(
            "Grants are what other members may do to you; name another member",
        ));
    }
    let peer = members(state, &mesh.id, &caller.user.id)
        .await?
        .into_iter()
        .find(|m| m.id == peer_id)
        .ok_or_else(|| AppError::not_found(format!("`{}` has no member `{peer_id}`", mesh.slug)))?;
    let me = &mesh.member_id;
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    // Write first: changes of one member's grants run one after the other.
    sqlx::query("UPDATE mesh_members SET display_name = display_name WHERE id = $1")
        .bind(me)
        .execute(&mut *tx)
        .await?;
    let current = grant_store::between(&mut tx, me, peer_id).await?;
    let caps = current.with(&body.grant).without(&body.revoke);
    grant_store::set(&mut tx, &mesh.id, me, peer_id, caps, now).await?;
    Broker::drop_waiting(
        &mut tx,
        me,
        peer_id,
        !caps.has(claudemesh_api::wire::Capability::Dm),
        !caps.has(claudemesh_api::wire::Capability::Group),
    )
    .await?;
    if caps != current {
        // "none" rather than an empty value, which the log leaves out.
        let text = |caps: Caps| match caps.text() {
            text if text.is_empty() => "none".to_owned(),
            text => text,
        };
        mesh_log::append(
            &mut tx,
            &mesh.id,
            now,
            &LogEvent::new(LogKind::GrantsChanged)
                .with("member_id", me)
                .with("display_name", &mesh.display_name)
                .with("peer_member_id", peer_id)
                .with("peer", &peer.display_name)
                .with("from", text(current))
                .with("to", text(caps)),
        )
        .await?;
    }
    audit::record(
        &mut *tx,
        now,
        audit::GRANT_CHANGED,
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "member_id": me, "peer_member_id": peer_id,
                "from": current.text(), "to": caps.text() }),
    )
    .await?;
    tx.commit().await?;
    state
        .broker
        .grant_changed(&mesh.id, me, peer_id, caps.bits())
        .await;
    Ok(PeerGrant {
        member_id: peer.id,
        display_name: peer.display_name,
        caps: caps.list(),
    })
}

/// Set what new members allow the others until they say otherwise
/// (admins only; members already in keep theirs).
#[utoipa::path(put, path = "/api/my/meshes/{slug}/default-grants", tag = "grants", request_body = DefaultGrantsRequest,
    params(("slug" = String, Path, description = "Mesh slug")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), JsonBodyRejected, Unauthorized, AdminsOnly, NoSuchMesh,
        crate::auth::request_limit::RateLimited))]
async fn set_default_grants(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<DefaultGrantsRequest>,
) -> AppResult<Json<OkResponse>> {
    let mesh = my_mesh(&state, &caller.user.id, &slug).await?;
    require_admin(&mesh)?;
    if body.caps.contains(&Capability::Approve) {
        // Answering someone's permission prompts is a right they give one
        // member at a time, never one a newcomer hands everybody.
        return Err(AppError::bad_request(
            "`approve` is granted to one member at a time (claudemesh grant MEMBER approve), never as a default",
        ));
    }
    let caps = Caps::of(&body.caps);
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    grant_store::set_mesh_default(&mut tx, &mesh.id, caps).await?;
    audit::record(
        &mut *tx,
        now,
        audit::DEFAULT_GRANTS_CHANGED,
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "mesh_id": mesh.id, "to": caps.text() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(OkResponse { ok: true }))
}
