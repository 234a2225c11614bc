//! `/dashboard/meshes/{slug}`: one mesh of the account — its name, slug and
//! the caller's role, who is online now (the broker's connected sessions,
//! read from the table every instance shares), its members (marked online
//! while they have a session), and for admins its invites: a form to
//! create one (showing the new link and whether the email went) and revoking
//! through a confirmation step, like the tokens page. Admins remove members,
//! and anyone leaves, through the same kind of confirmation step.
//!
//! Everything goes through the functions the JSON API uses
//! ([`crate::meshes::mesh`], [`invites`]), so the rules are the same: a mesh the caller is not in
//! answers exactly like one that does not exist (the same 404 page), and
//! only admins see or change invites or remove others (any such POST from a
//! member is refused with 403).

use super::confirm::ConfirmPage;
use super::ctx::{Ctx, PageError, PageResult, api_caller};
use super::message::Message;
use crate::app::state::AppState;
use crate::auth::caller::BrowserCaller;
use crate::http::request::ClientInfo;
use crate::meshes::invites::{
    self, DEFAULT_EXPIRY_DAYS, InviteRow, MAX_EXPIRY_DAYS, MAX_USES_LIMIT,
};
use crate::meshes::log as mesh_log;
use crate::meshes::{grants, mesh};
use crate::text::format::{format_rfc3339, format_time, parse_rfc3339, percent_encode};
use askama::Template;
use axum::extract::Path;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use claudemesh_api::ErrorCode;
use claudemesh_api::broker::{Peer, PeerStatus};
use claudemesh_api::wire::{
    Capability, ChangeGrantRequest, CreateInviteRequest, InviteStatus, LogEntry, MailStatus,
    MeshMember, MeshRole, MeshSummary,
};
use serde::Deserialize;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/meshes", get(to_dashboard))
        .route("/dashboard/meshes/{slug}", get(mesh_page))
        .route(
            "/dashboard/meshes/{slug}/invites",
            get(to_mesh).post(create_invite),
        )
        .route(
            "/dashboard/meshes/{slug}/invites/revoke",
            get(revoke_page).post(revoke),
        )
        .route(
            "/dashboard/meshes/{slug}/members/remove",
            get(remove_member_page).post(remove_member),
        )
        .route(
            "/dashboard/meshes/{slug}/grants",
            get(to_mesh).post(save_grants),
        )
}

/// The page of the mesh with this slug.
pub fn mesh_path(slug: &str) -> String {
    format!("/dashboard/meshes/{}", percent_encode(slug))
}

/// "Admin" or "Member" in the page's language.
pub fn role_label(ctx: &Ctx, role: MeshRole) -> String {
    match role {
        MeshRole::Admin => ctx.t("role-admin"),
        MeshRole::Member => ctx.t("role-member"),
    }
}

/// "Make admin" or "Make member" for a member who has the other role: the
/// confirmation page's link ([`super::mesh_admin`]) and its label.
fn role_change_link(ctx: &Ctx, slug: &str, member_id: &str, role: MeshRole) -> (String, String) {
    let (to, label) = match role {
        MeshRole::Admin => (MeshRole::Member, ctx.t("member-make-member")),
        MeshRole::Member => (MeshRole::Admin, ctx.t("member-make-admin")),
    };
    let url = format!(
        "{}/members/role?id={}&role={}",
        mesh_path(slug),
        percent_encode(member_id),
        to.as_str()
    );
    (url, label)
}

/// An invite's state as words and the class of its tag.
fn status_label(ctx: &Ctx, status: InviteStatus) -> (String, &'static str) {
    match status {
        InviteStatus::Valid => (ctx.t("invite-status-valid"), "ok"),
        InviteStatus::Expired => (ctx.t("invite-status-expired"), "warn"),
        InviteStatus::Revoked => (ctx.t("invite-status-revoked"), "error"),
        InviteStatus::UsedUp => (ctx.t("invite-status-used-up"), "warn"),
    }
}

/// A session's status as words and the class of its badge.
fn session_status_label(ctx: &Ctx, status: PeerStatus) -> (String, &'static str) {
    match status {
        PeerStatus::Idle => (ctx.t("online-status-idle"), "ok"),
        PeerStatus::Working => (ctx.t("online-status-working"), "warn"),
        PeerStatus::Dnd => (ctx.t("online-status-dnd"), "error"),
    }
}

/// `/dashboard/meshes`: the list is the dashboard.
async fn to_dashboard(ctx: Ctx) -> Response {
    ctx.redirect("/dashboard")
}

/// A GET of the form's address: the mesh page.
async fn to_mesh(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> Response {
    match slug {
        Ok(Path(slug)) => ctx.redirect(&mesh_path(&slug)),
        Err(_) => no_such_mesh(&ctx),
    }
}

/// The one page for a mesh that does not exist and one the caller is not in.
pub(super) fn no_such_mesh(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::NOT_FOUND,
        Message::new("warn", "?", ctx.t("mesh-not-found-title"))
            .paragraph(ctx.t("mesh-not-found-body"))
            .action("/dashboard", ctx.t("mesh-back-dashboard"), true),
    )
}

/// A message page about `mesh`, with the way back to its page.
pub(super) fn about_mesh(
    ctx: &Ctx,
    mesh: &MeshSummary,
    status: StatusCode,
    message: Message,
) -> Response {
    ctx.message(
        status,
        message.action(&mesh_path(&mesh.slug), ctx.t("mesh-back"), true),
    )
}

/// What a member who is not an admin gets for a request only admins may make.
pub(super) fn not_admin(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let body = ctx.t_args("mesh-not-admin-body", &[("mesh", mesh.name.clone().into())]);
    about_mesh(
        ctx,
        mesh,
        StatusCode::FORBIDDEN,
        Message::new("error", "✋", ctx.t("mesh-not-admin-title")).paragraph(body),
    )
}

/// The slug from the path (one that does not decode is no mesh of ours).
pub(super) fn slug_of(
    ctx: &Ctx,
    slug: Result<Path<String>, PathRejection>,
) -> Result<String, PageError> {
    slug.map(|Path(slug)| slug)
        .map_err(|_| no_such_mesh(ctx).into())
}

/// What every form POST on a mesh page checks first: the slug, then
/// [`Ctx::signed_in_form`] (coming back to the mesh after signing in).
pub(super) fn posted_form<F>(
    ctx: &Ctx,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<F>, FormRejection>,
    csrf: impl FnOnce(&F) -> &str,
) -> Result<(String, BrowserCaller, F), PageError> {
    let slug = slug_of(ctx, slug)?;
    let (user, form) = ctx.signed_in_form(&mesh_path(&slug), form, csrf)?;
    Ok((slug, user, form))
}

/// The caller's membership of the mesh, or the 404 page.
pub(super) async fn load_mesh(
    ctx: &Ctx,
    user: &BrowserCaller,
    slug: &str,
) -> Result<MeshSummary, PageError> {
    match mesh::my_mesh(ctx.state(), &user.user.id, slug).await {
        Ok(mesh) => Ok(mesh),
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(no_such_mesh(ctx).into()),
        Err(err) => Err(ctx.fail(err).into()),
    }
}

/// The caller's membership when it is an admin one, or the 404/403 page.
pub(super) async fn load_admin_mesh(
    ctx: &Ctx,
    user: &BrowserCaller,
    slug: &str,
) -> Result<MeshSummary, PageError> {
    let mesh = load_mesh(ctx, user, slug).await?;
    if mesh::require_admin(&mesh).is_err() {
        return Err(not_admin(ctx, &mesh).into());
    }
    Ok(mesh)
}

/// A member as a row of the table.
struct MemberRow {
    name: String,
    role: String,
    joined: String,
    machines: usize,
    you: bool,
    /// Set while the member has a session connected: "2 sessions connected".
    online: Option<String>,
    /// "Leave" on your own row, "Remove" on others' for admins: its link
    /// (a confirmation page) and label.
    remove: Option<(String, String)>,
    /// For admins, "Make admin" / "Make member": its link (a confirmation
    /// page, [`super::mesh_admin`]) and label.
    role_change: Option<(String, String)>,
}

/// A connected session, as an entry of "Online now".
struct SessionView {
    name: String,
    /// "of Alice": the member it belongs to, when the session goes by
    /// another name than the member's.
    member: Option<String>,
    /// The role the session gave itself, if any (not the mesh role).
    role: Option<String>,
    groups: Vec<String>,
    status: String,
    status_class: &'static str,
    summary: Option<String>,
    /// RFC 3339, for `<time datetime>`.
    connected_at: String,
    /// `2026-11-23 19:05 UTC`.
    since: String,
    /// "5 minutes ago".
    ago: String,
}

/// The connected sessions of the mesh's members, each member's together
/// (members by name, then their sessions oldest first), and how many each
/// member has. A session of someone no longer a member (removed a moment
/// ago, its connection not yet closed) is left out.
fn online_sessions(
    ctx: &Ctx,
    members: &[MeshMember],
    mut peers: Vec<Peer>,
    now: i64,
) -> (Vec<SessionView>, HashMap<String, usize>) {
    let names: HashMap<&str, &str> = members
        .iter()
        .map(|member| (member.id.as_str(), member.display_name.as_str()))
        .collect();
    peers.retain(|peer| names.contains_key(peer.member_id.as_str()));
    let connected_ms = |peer: &Peer| parse_rfc3339(&peer.connected_at).unwrap_or(now);
    peers.sort_by_cached_key(|peer| {
        let member = names[peer.member_id.as_str()];
        (
            member.to_lowercase(),
            peer.member_id.clone(),
            connected_ms(peer),
            peer.session_key.clone(),
        )
    });
    let mut counts: HashMap<String, usize> = HashMap::new();
    let sessions = peers
        .into_iter()
        .map(|peer| {
            *counts.entry(peer.member_id.clone()).or_default() += 1;
            let member = names[peer.member_id.as_str()];
            let (status, status_class) = session_status_label(ctx, peer.status);
            let connected = connected_ms(&peer);
            SessionView {
                member: (peer.display_name != member).then(|| {
                    ctx.t_args("online-of-member", &[("member", member.to_owned().into())])
                }),
                name: peer.display_name,
                role: (!peer.role.is_empty()).then_some(peer.role),
                groups: peer.groups,
                status,
                status_class,
                summary: (!peer.summary.trim().is_empty()).then_some(peer.summary),
                connected_at: peer.connected_at,
                since: format_time(connected),
                ago: ctx.ago(connected, now),
            }
        })
        .collect();
    (sessions, counts)
}

/// An invite as a row of the table.
struct InviteView {
    /// For the copy button.
    field_id: String,
    url: String,
    code: String,
    role: String,
    email: Option<String>,
    uses: String,
    expires: String,
    status: String,
    status_class: &'static str,
    /// Still usable: its link is shown with a copy button, and it can be revoked.
    live: bool,
    revoke_url: String,
}

/// An invite just made.
struct NewInvite {
    url: String,
    /// "Emailed to …".
    emailed: Option<String>,
    /// "Could not email …: reason — share the link yourself".
    email_failed: Option<String>,
}

/// What the create-invite form holds (kept as typed after an error).
struct InviteForm {
    email: String,
    role: String,
    days: String,
    max_uses: String,
}

impl Default for InviteForm {
    fn default() -> Self {
        Self {
            email: String::new(),
            role: "member".into(),
            days: DEFAULT_EXPIRY_DAYS.to_string(),
            max_uses: "1".into(),
        }
    }
}

/// What the caller allows one other member, as a row of checkboxes.
struct GrantRow {
    member_id: String,
    name: String,
    dm: bool,
    group: bool,
    presence: bool,
    approve: bool,
}

/// One mesh log entry on the mesh page.
struct LogView {
    kind: String,
    at: String,
    event: String,
    who: String,
}

/// Entries of the mesh log the mesh page shows.
const LOG_ON_PAGE: u32 = 10;

fn log_view(ctx: &Ctx, entry: LogEntry) -> LogView {
    let key = format!("log-kind-{}", entry.kind.replace('.', "-"));
    let who = ["display_name", "sender", "by"]
        .iter()
        .find_map(|key| entry.detail.get(*key))
        .cloned()
        .unwrap_or_default();
    LogView {
        event: ctx.t(&key),
        at: format_time(entry.at_ms),
        kind: entry.kind,
        who,
    }
}

struct RoleOption {
    value: &'static str,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "mesh.html")]
struct MeshPage<'a> {
    page: &'a Ctx,
    name: String,
    slug: String,
    /// This page's path.
    path: String,
    your_role: String,
    is_admin: bool,
    members_summary: String,
    members: Vec<MemberRow>,
    sessions: Vec<SessionView>,
    /// The mesh log's latest entries, newest first.
    log: Vec<LogView>,
    invites: Vec<InviteView>,
    created: Option<NewInvite>,
    notice: Option<String>,
    errors: Vec<String>,
    form: InviteForm,
    /// What the caller allows each other member.
    grants: Vec<GrantRow>,
    role_options: Vec<RoleOption>,
    /// Set while the mesh is archived: "Archived on …".
    archived: Option<String>,
    max_days: u32,
    max_uses_limit: u32,
}

/// Renders the mesh page around whatever the request produced.
async fn render_mesh(
    ctx: &Ctx,
    user: &BrowserCaller,
    mesh: &MeshSummary,
    status: StatusCode,
    created: Option<NewInvite>,
    errors: Vec<String>,
    form: InviteForm,
) -> PageResult {
    let state = ctx.state();
    let is_admin = mesh.role == MeshRole::Admin;
    let members = mesh::members(state, &mesh.id, &user.user.id)
        .await
        .map_err(|err| ctx.fail(err))?;
    let admins = members.iter().filter(|m| m.role == MeshRole::Admin).count();
    let peers = state
        .broker
        .peers(&mesh.id)
        .await
        .map_err(|err| ctx.fail(err.into()))?;
    let (sessions, online) = online_sessions(ctx, &members, peers, state.now());
    let members: Vec<MemberRow> = members
        .into_iter()
        .map(|member| {
            // The only admin has no Leave: the mesh would have nobody to run it.
            let label = match (member.you, is_admin) {
                (true, _) if member.role == MeshRole::Admin && admins == 1 => None,
                (true, _) => Some(ctx.t("member-leave")),
                (false, true) => Some(ctx.t("member-remove")),
                (false, false) => None,
            };
            let url = format!(
                "{}/members/remove?id={}",
                mesh_path(&mesh.slug),
                percent_encode(&member.id)
            );
            // Admins change anyone's role but the only admin's own.
            let role_change = (is_admin && !(member.role == MeshRole::Admin && admins == 1))
                .then(|| role_change_link(ctx, &mesh.slug, &member.id, member.role));
            let online = online
                .get(&member.id)
                .map(|&count| ctx.t_args("member-online-sessions", &[("count", count.into())]));
            MemberRow {
                online,
                role: role_label(ctx, member.role),
                joined: format_rfc3339(&member.joined_at),
                machines: member.public_keys.len(),
                you: member.you,
                name: member.display_name,
                remove: label.map(|label| (url, label)),
                role_change,
            }
        })
        .collect();
    let log = mesh_log::read(
        state.pool(),
        &mesh.id,
        &mesh_log::Query {
            limit: LOG_ON_PAGE,
            ..mesh_log::Query::default()
        },
    )
    .await
    .map_err(|err| ctx.fail(err.into()))?
    .into_iter()
    .rev()
    .map(|entry| log_view(ctx, entry))
    .collect();
    let invites = if is_admin {
        let now = state.now();
        invites::list(state, &mesh.id)
            .await
            .map_err(|err| ctx.fail(err))?
            .iter()
            .enumerate()
            .map(|(index, row)| invite_view(ctx, mesh, row, index, now))
            .collect()
    } else {
        Vec::new()
    };
    let notice = match ctx.param("notice") {
        Some("revoked") => Some(ctx.t("invite-revoked-notice")),
        Some("member-removed") => Some(ctx.t("member-removed-notice")),
        Some("grants-saved") => Some(ctx.t("grants-saved-notice")),
        Some("role-changed") => Some(ctx.t("role-changed-notice")),
        Some("renamed") => Some(ctx.t("mesh-renamed-notice")),
        Some("archived") => Some(ctx.t("mesh-archived-notice")),
        Some("unarchived") => Some(ctx.t("mesh-unarchived-notice")),
        _ => None,
    };
    let grants = grants::grant_list(state, mesh, &user.user.id)
        .await
        .map_err(|err| ctx.fail(err))?
        .you_allow
        .into_iter()
        .map(|peer| GrantRow {
            dm: peer.caps.contains(&Capability::Dm),
            group: peer.caps.contains(&Capability::Group),
            presence: peer.caps.contains(&Capability::Presence),
            approve: peer.caps.contains(&Capability::Approve),
            member_id: peer.member_id,
            name: peer.display_name,
        })
        .collect();
    let role_options = [MeshRole::Member, MeshRole::Admin]
        .into_iter()
        .map(|role| {
            let value = role.as_str();
            RoleOption {
                value,
                label: role_label(ctx, role),
                selected: form.role == value,
            }
        })
        .collect();
    Ok(ctx.render(
        status,
        &MeshPage {
            page: ctx,
            name: mesh.name.clone(),
            slug: mesh.slug.clone(),
            path: mesh_path(&mesh.slug),
            your_role: role_label(ctx, mesh.role),
            is_admin,
            members_summary: ctx.t_args("mesh-members-count", &[("count", members.len().into())]),
            members,
            sessions,
            log,
            invites,
            created,
            notice,
            errors,
            form,
            role_options,
            archived: mesh
                .archived_at
                .as_deref()
                .map(|at| ctx.t_args("mesh-archived-since", &[("at", format_rfc3339(at).into())])),
            max_days: MAX_EXPIRY_DAYS,
            max_uses_limit: MAX_USES_LIMIT,
            grants,
        },
    ))
}

fn invite_view(
    ctx: &Ctx,
    mesh: &MeshSummary,
    row: &InviteRow,
    index: usize,
    now: i64,
) -> InviteView {
    let status = row.status(now);
    let (label, class) = status_label(ctx, status);
    InviteView {
        field_id: format!("invite-url-{index}"),
        url: invites::invite_url(ctx.state(), &row.code),
        code: row.code.clone(),
        role: role_label(ctx, row.role),
        email: row.email.clone(),
        uses: format!("{} / {}", row.uses, row.max_uses),
        expires: format_time(row.expires_at),
        status: label,
        status_class: class,
        live: status == InviteStatus::Valid,
        revoke_url: format!(
            "{}/invites/revoke?id={}",
            mesh_path(&mesh.slug),
            percent_encode(&row.id)
        ),
    }
}

/// The mesh, its members and (for admins) its invites.
async fn mesh_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_mesh(&ctx, &user, &slug).await?;
    render_mesh(
        &ctx,
        &user,
        &mesh,
        StatusCode::OK,
        None,
        Vec::new(),
        InviteForm::default(),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateInviteForm {
    email: String,
    role: String,
    expires_in_days: String,
    max_uses: String,
    csrf: String,
}

/// Creates an invite (admins only) and shows its link and the email's fate.
async fn create_invite(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<CreateInviteForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;

    let mut errors = Vec::new();
    let email = form.email.trim();
    if !email.is_empty() && crate::auth::accounts::clean_email(email).is_err() {
        errors.push(ctx.t("invite-error-email"));
    }
    let role = match form.role.as_str() {
        "member" => Some(MeshRole::Member),
        "admin" => Some(MeshRole::Admin),
        _ => None,
    };
    if role.is_none() {
        errors.push(ctx.t("invite-error-role"));
    }
    let days = form
        .expires_in_days
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|days| (1..=MAX_EXPIRY_DAYS).contains(days));
    if days.is_none() {
        errors.push(ctx.t_args("invite-error-days", &[("max", MAX_EXPIRY_DAYS.into())]));
    }
    let max_uses = form
        .max_uses
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|uses| (1..=MAX_USES_LIMIT).contains(uses));
    if max_uses.is_none() {
        errors.push(ctx.t_args("invite-error-uses", &[("max", MAX_USES_LIMIT.into())]));
    }
    let typed = InviteForm {
        email: email.to_owned(),
        role: form.role.clone(),
        days: form.expires_in_days.trim().to_owned(),
        max_uses: form.max_uses.trim().to_owned(),
    };
    if !errors.is_empty() {
        return render_mesh(
            &ctx,
            &user,
            &mesh,
            StatusCode::BAD_REQUEST,
            None,
            errors,
            typed,
        )
        .await;
    }
    let request = CreateInviteRequest {
        email: (!email.is_empty()).then(|| email.to_owned()),
        role,
        expires_in_days: days,
        max_uses,
        lang: None,
    };
    let caller = api_caller(&user);
    let created = match invites::create(ctx.state(), &caller, &client, &slug, &request, ctx.lang)
        .await
    {
        Ok(created) => created,
        Err(err) if err.status == StatusCode::NOT_FOUND => return Err(no_such_mesh(&ctx).into()),
        Err(err) if err.status == StatusCode::FORBIDDEN => {
            return Err(not_admin(&ctx, &mesh).into());
        }
        Err(err) if err.status == StatusCode::BAD_REQUEST => {
            return render_mesh(
                &ctx,
                &user,
                &mesh,
                StatusCode::BAD_REQUEST,
                None,
                vec![ctx.t("invite-error-other")],
                typed,
            )
            .await;
        }
        Err(err) => return Err(ctx.fail(err).into()),
    };
    let (emailed, email_failed) = match (&created.invite.email, created.mail) {
        (None, _) => (None, None),
        (Some(to), Some(MailStatus::Sent)) => (
            Some(ctx.t_args("invite-emailed", &[("email", to.clone().into())])),
            None,
        ),
        (Some(to), Some(MailStatus::Outbox)) => (
            None,
            Some(ctx.t_args("invite-email-outbox", &[("email", to.clone().into())])),
        ),
        (Some(to), _) => (
            None,
            Some(
                ctx.t_args(
                    "invite-email-failed",
                    &[
                        ("email", to.clone().into()),
                        (
                            "reason",
                            created
                                .email_error
                                .clone()
                                .unwrap_or_else(|| ctx.t("invite-email-failed-unknown"))
                                .into(),
                        ),
                    ],
                ),
            ),
        ),
    };
    let new = NewInvite {
        url: created.invite.url,
        emailed,
        email_failed,
    };
    render_mesh(
        &ctx,
        &user,
        &mesh,
        StatusCode::CREATED,
        Some(new),
        Vec::new(),
        InviteForm::default(),
    )
    .await
}

/// An invite that cannot be revoked (gone, or already revoked).
fn invite_gone(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let message = Message::new("warn", "?", ctx.t("invite-gone-title"));
    about_mesh(
        ctx,
        mesh,
        StatusCode::NOT_FOUND,
        message.paragraph(ctx.t("invite-gone-body")),
    )
}

/// Asks before revoking an invite (a GET never revokes).
async fn revoke_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let id = ctx.param("id").unwrap_or_default();
    let row = invites::list(ctx.state(), &mesh.id)
        .await
        .map_err(|err| ctx.fail(err))?
        .into_iter()
        .find(|row| row.id == id && row.revoked_at.is_none())
        .ok_or_else(|| invite_gone(&ctx, &mesh))?;
    let role = role_label(&ctx, row.role);
    let label = match &row.email {
        Some(email) => format!(
            "{} · {role} · {email}",
            invites::invite_url(ctx.state(), &row.code)
        ),
        None => format!("{} · {role}", invites::invite_url(ctx.state(), &row.code)),
    };
    Ok(ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: &ctx,
            action: format!("{}/invites/revoke", mesh_path(&mesh.slug)),
            back: mesh_path(&mesh.slug),
            hidden: vec![("id", row.id)],
            title: ctx.t("invite-revoke-title"),
            label,
            body: ctx.t_args("invite-revoke-body", &[("mesh", mesh.name.clone().into())]),
            confirm: ctx.t("invite-revoke-confirm"),
        },
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RevokeForm {
    id: String,
    csrf: String,
}

/// Revokes an invite of the mesh (admins only): its link stops working.
async fn revoke(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_admin_mesh(&ctx, &user, &slug).await?;
    let caller = api_caller(&user);
    match invites::revoke(ctx.state(), &caller, &client, &mesh.slug, &form.id).await {
        Ok(()) => Ok(ctx.redirect(&format!("{}?notice=revoked", mesh_path(&mesh.slug)))),
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(invite_gone(&ctx, &mesh).into()),
        Err(err) if err.status == StatusCode::FORBIDDEN => Err(not_admin(&ctx, &mesh).into()),
        Err(err) => Err(ctx.fail(err).into()),
    }
}

/// A member who cannot be removed: gone already, or never in this mesh.
pub(super) fn member_gone(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let message = Message::new("warn", "?", ctx.t("member-gone-title"));
    about_mesh(
        ctx,
        mesh,
        StatusCode::NOT_FOUND,
        message.paragraph(ctx.t("member-gone-body")),
    )
}

/// The mesh's only admin asked to go.
pub(super) fn last_admin(ctx: &Ctx, mesh: &MeshSummary) -> Response {
    let body = ctx.t_args(
        "member-last-admin-body",
        &[("mesh", mesh.name.clone().into())],
    );
    let message = Message::new("warn", "!", ctx.t("member-last-admin-title"));
    about_mesh(ctx, mesh, StatusCode::CONFLICT, message.paragraph(body))
}

/// Asks before removing a member, or leaving (a GET never removes).
async fn remove_member_page(ctx: Ctx, slug: Result<Path<String>, PathRejection>) -> PageResult {
    let user = ctx.require_user()?;
    let slug = slug_of(&ctx, slug)?;
    let mesh = load_mesh(&ctx, &user, &slug).await?;
    let id = ctx.param("id").unwrap_or_default();
    let leaving = id == mesh.member_id;
    if !leaving && mesh::require_admin(&mesh).is_err() {
        return Err(not_admin(&ctx, &mesh).into());
    }
    let member = mesh::members(ctx.state(), &mesh.id, &user.user.id)
        .await
        .map_err(|err| ctx.fail(err))?
        .into_iter()
        .find(|member| member.id == id)
        .ok_or_else(|| member_gone(&ctx, &mesh))?;
    let mesh_name = || mesh.name.clone().into();
    let (title, body, confirm) = if leaving {
        (
            ctx.t_args("member-leave-title", &[("mesh", mesh_name())]),
            ctx.t_args("member-leave-body", &[("mesh", mesh_name())]),
            ctx.t("member-leave-confirm"),
        )
    } else {
        (
            ctx.t_args(
                "member-remove-title",
                &[
                    ("name", member.display_name.clone().into()),
                    ("mesh", mesh_name()),
                ],
            ),
            ctx.t_args("member-remove-body", &[("mesh", mesh_name())]),
            ctx.t("member-remove-confirm"),
        )
    };
    Ok(ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: &ctx,
            action: format!("{}/members/remove", mesh_path(&mesh.slug)),
            back: mesh_path(&mesh.slug),
            hidden: vec![("id", member.id)],
            title,
            label: format!(
                "{} · {}",
                member.display_name,
                role_label(&ctx, member.role)
            ),
            body,
            confirm,
        },
    ))
}

/// The grants form: one member, a checkbox per capability (absent: off).
#[derive(Deserialize)]
struct GrantsForm {
    member: String,
    csrf: String,
    #[serde(default)]
    dm: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    presence: Option<String>,
    #[serde(default)]
    approve: Option<String>,
}

/// Saves what the caller allows one other member (any member, for
/// themselves): then back to the mesh.
async fn save_grants(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<GrantsForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_mesh(&ctx, &user, &slug).await?;
    let caller = api_caller(&user);
    let (mut grant, mut revoke) = (Vec::new(), Vec::new());
    for (cap, on) in [
        (Capability::Dm, &form.dm),
        (Capability::Group, &form.group),
        (Capability::Presence, &form.presence),
        (Capability::Approve, &form.approve),
    ] {
        if on.is_some() {
            grant.push(cap);
        } else {
            revoke.push(cap);
        }
    }
    let change = ChangeGrantRequest { grant, revoke };
    match grants::change(ctx.state(), &caller, &client, &mesh, &form.member, &change).await {
        Ok(_) => Ok(ctx.redirect(&format!(
            "{}?notice=grants-saved#grants",
            mesh_path(&mesh.slug)
        ))),
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(member_gone(&ctx, &mesh).into()),
        Err(err) => Err(ctx.fail(err).into()),
    }
}

/// Removes a member (admins), or the caller (anyone): then back to the mesh,
/// or to the dashboard for someone who just left it.
async fn remove_member(
    ctx: Ctx,
    client: ClientInfo,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> PageResult {
    let (slug, user, form) = posted_form(&ctx, slug, form, |form| &form.csrf)?;
    let mesh = load_mesh(&ctx, &user, &slug).await?;
    let caller = api_caller(&user);
    match mesh::remove(ctx.state(), &caller, &client, &mesh, &form.id).await {
        Ok(()) if form.id == mesh.member_id => Ok(ctx.redirect("/dashboard?notice=left")),
        Ok(()) => Ok(ctx.redirect(&format!("{}?notice=member-removed", mesh_path(&mesh.slug)))),
        Err(err) if err.code == ErrorCode::LastAdmin => Err(last_admin(&ctx, &mesh).into()),
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(member_gone(&ctx, &mesh).into()),
        Err(err) if err.status == StatusCode::FORBIDDEN => Err(not_admin(&ctx, &mesh).into()),
        Err(err) => Err(ctx.fail(err).into()),
    }
}
