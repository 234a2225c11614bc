//! The account's home (`/dashboard`: its meshes, its CLI access) and its CLI tokens page
//! (`/dashboard/settings/cli-tokens`): personal access tokens and CLI
//! sessions, generating a token, revoking either.
//!
//! A new token is shown once, in the answer to the POST that made it: it is
//! never stored, redirected with, or put in a URL, and the page is
//! `no-store`. Revoking goes through a confirmation page (no script needed),
//! then [`token_store::revoke_owned`], like the JSON API; the next request with
//! that token fails.

use super::confirm::ConfirmPage;
use super::ctx::{Ctx, PageResult};
use super::meshes::role_label;
use super::message::Message;
use crate::app::state::AppState;
use crate::auth::credential_mail;
use crate::auth::token_store::{self, PAT_EXPIRY_DAYS, TokenRecord};
use crate::text::format::{format_rfc3339, format_time};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use claudemesh_api::TokenKind;
use serde::Deserialize;

const TOKENS_PATH: &str = credential_mail::TOKENS_PAGE;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard))
        .route(TOKENS_PATH, get(tokens_page).post(create_token))
        .route(
            "/dashboard/settings/cli-tokens/revoke",
            get(revoke_page).post(revoke),
        )
        .route(MAIL_SETTING_PATH, post(save_mail_setting))
}

/// Where the tokens page's "email me about new credentials" form posts.
const MAIL_SETTING_PATH: &str = "/dashboard/settings/cli-tokens/mail";

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    page: &'a Ctx,
    name: String,
    email: String,
    meshes: Vec<MeshRow>,
    tokens_summary: String,
    notice: Option<String>,
}

/// One of the account's meshes as a row of the table.
struct MeshRow {
    name: String,
    slug: String,
    url: String,
    role: String,
    members: u64,
    created: String,
}

/// The account's home.
async fn dashboard(ctx: Ctx) -> PageResult {
    let user = ctx.require_user()?;
    let state = ctx.state();
    let meshes = crate::meshes::mesh::my_meshes(state, &user.user.id)
        .await
        .map_err(|err| ctx.fail(err))?
        .into_iter()
        .map(|mesh| MeshRow {
            url: super::meshes::mesh_path(&mesh.slug),
            role: role_label(&ctx, mesh.role),
            members: mesh.member_count,
            created: format_rfc3339(&mesh.created_at),
            name: mesh.name,
            slug: mesh.slug,
        })
        .collect();
    let pats = token_store::list_of_kind(state, &user.user.id, TokenKind::Pat)
        .await
        .map_err(|err| ctx.fail(err))?;
    let sessions = token_store::list_of_kind(state, &user.user.id, TokenKind::Session)
        .await
        .map_err(|err| ctx.fail(err))?;
    let tokens_summary = ctx.t_args(
        "dashboard-tokens-summary",
        &[
            ("tokens", pats.len().into()),
            ("sessions", sessions.len().into()),
        ],
    );
    Ok(ctx.render(
        StatusCode::OK,
        &DashboardPage {
            page: &ctx,
            name: user.user.name,
            email: user.user.email,
            meshes,
            tokens_summary,
            notice: match ctx.param("notice") {
                Some("left") => Some(ctx.t("dashboard-left-notice")),
                Some("deleted") => Some(ctx.t("dashboard-deleted-notice")),
                _ => None,
            },
        },
    ))
}

/// A PAT as a row of the table.
struct PatRow {
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    expires: String,
    revoke_url: String,
}

/// A CLI session as a row of the table.
struct SessionRow {
    device: String,
    created: String,
    last_seen: String,
    expires: String,
    revoke_url: String,
}

struct ExpiryOption {
    value: String,
    label: String,
    selected: bool,
}

/// A token just made, shown once.
struct NewToken {
    token: String,
    name: String,
}

#[derive(Template)]
#[template(path = "cli_tokens.html")]
struct TokensPage<'a> {
    page: &'a Ctx,
    pats: Vec<PatRow>,
    sessions: Vec<SessionRow>,
    created: Option<NewToken>,
    notice: Option<String>,
    errors: Vec<String>,
    form_name: String,
    expiry_options: Vec<ExpiryOption>,
    /// Whether the account is mailed about each new session and token.
    credential_mail: bool,
    mail_setting_action: &'static str,
}

fn revoke_url(record: &TokenRecord) -> String {
    credential_mail::revoke_path(record.kind(), &record.id)
}

fn device_label(record: &TokenRecord) -> String {
    match (&record.device_os, &record.device_arch) {
        (Some(os), Some(arch)) => format!(
            "{} · {os} · {arch}",
            record.device_name.as_deref().unwrap_or(&record.name)
        ),
        _ => record.name.clone(),
    }
}

/// The expiry choices, `selected` being `30`, `90`, `365` or `never`.
fn expiry_options(ctx: &Ctx, selected: &str) -> Vec<ExpiryOption> {
    let mut options: Vec<ExpiryOption> = PAT_EXPIRY_DAYS
        .iter()
        .map(|days| ExpiryOption {
            value: days.to_string(),
            label: if *days == 365 {
                ctx.t("tokens-expiry-year")
            } else {
                ctx.t_args("tokens-expiry-days", &[("count", (*days).into())])
            },
            selected: selected == days.to_string(),
        })
        .collect();
    options.push(ExpiryOption {
        value: "never".into(),
        label: ctx.t("tokens-expiry-never"),
        selected: selected == "never",
    });
    options
}

/// Renders the tokens page around whatever the request produced.
async fn render_tokens(
    ctx: &Ctx,
    user_id: &str,
    status: StatusCode,
    created: Option<NewToken>,
    errors: Vec<String>,
    form_name: String,
    form_expiry: &str,
) -> PageResult {
    let state = ctx.state();
    let never = ctx.t("never");
    let pats = token_store::list_of_kind(state, user_id, TokenKind::Pat)
        .await
        .map_err(|err| ctx.fail(err))?
        .iter()
        .map(|record| PatRow {
            name: record.name.clone(),
            prefix: record.display_prefix.clone(),
            created: format_time(record.created_at),
            last_used: record
                .last_used_at
                .map_or_else(|| never.clone(), format_time),
            expires: record.expires_at.map_or_else(|| never.clone(), format_time),
            revoke_url: revoke_url(record),
        })
        .collect();
    let sessions = token_store::list_of_kind(state, user_id, TokenKind::Session)
        .await
        .map_err(|err| ctx.fail(err))?
        .iter()
        .map(|record| SessionRow {
            device: device_label(record),
            created: format_time(record.created_at),
            last_seen: record
                .last_used_at
                .map_or_else(|| never.clone(), format_time),
            expires: record.expires_at.map_or_else(|| never.clone(), format_time),
            revoke_url: revoke_url(record),
        })
        .collect();
    let notice = match ctx.param("notice") {
        Some("revoked") => Some(ctx.t("tokens-revoked-notice")),
        Some("mail-on") => Some(ctx.t("tokens-mail-on-notice")),
        Some("mail-off") => Some(ctx.t("tokens-mail-off-notice")),
        _ => None,
    };
    let credential_mail = credential_mail::enabled(state, user_id)
        .await
        .map_err(|err| ctx.fail(err))?;
    Ok(ctx.render(
        status,
        &TokensPage {
            page: ctx,
            pats,
            sessions,
            created,
            notice,
            errors,
            form_name,
            expiry_options: expiry_options(ctx, form_expiry),
            credential_mail,
            mail_setting_action: MAIL_SETTING_PATH,
        },
    ))
}

async fn tokens_page(ctx: Ctx) -> PageResult {
    let user = ctx.require_user()?;
    render_tokens(
        &ctx,
        &user.user.id,
        StatusCode::OK,
        None,
        Vec::new(),
        String::new(),
        "365",
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateForm {
    name: String,
    expiry: String,
    csrf: String,
}

/// Generates a PAT and shows it, once, in this answer.
async fn create_token(
    ctx: Ctx,
    client: crate::http::request::ClientInfo,
    form: Result<Form<CreateForm>, FormRejection>,
) -> PageResult {
    let (user, form) = ctx.signed_in_form(TOKENS_PATH, form, |form| &form.csrf)?;
    let expiry = match form.expiry.as_str() {
        "never" => Some(None),
        days => days.parse::<u32>().ok().map(Some),
    };
    let mut errors = Vec::new();
    if token_store::clean_name(&form.name, "name").is_err() {
        errors.push(ctx.t("tokens-error-name"));
    }
    if !expiry.is_some_and(|days| days.is_none_or(|days| PAT_EXPIRY_DAYS.contains(&days))) {
        errors.push(ctx.t("tokens-error-expiry"));
    }
    if !errors.is_empty() {
        return render_tokens(
            &ctx,
            &user.user.id,
            StatusCode::BAD_REQUEST,
            None,
            errors,
            form.name,
            &form.expiry,
        )
        .await;
    }
    let (token, record) = token_store::create_pat_for(
        ctx.state(),
        &user.user.id,
        &client.ip,
        ctx.lang,
        &form.name,
        expiry,
    )
    .await
    .map_err(|err| ctx.fail(err))?;
    let created = NewToken {
        token: token.expose().to_owned(),
        name: record.name,
    };
    render_tokens(
        &ctx,
        &user.user.id,
        StatusCode::CREATED,
        Some(created),
        Vec::new(),
        String::new(),
        "365",
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MailSettingForm {
    /// Present (`on`) when the box is ticked; a form leaves it out otherwise.
    credential_mail: Option<String>,
    csrf: String,
}

/// Turns the new-credential mails on or off.
async fn save_mail_setting(
    ctx: Ctx,
    form: Result<Form<MailSettingForm>, FormRejection>,
) -> PageResult {
    let (user, form) = ctx.signed_in_form(TOKENS_PATH, form, |form| &form.csrf)?;
    let on = form.credential_mail.is_some();
    credential_mail::set_enabled(ctx.state(), &user.user.id, on)
        .await
        .map_err(|err| ctx.fail(err))?;
    Ok(ctx.redirect(if on {
        "/dashboard/settings/cli-tokens?notice=mail-on"
    } else {
        "/dashboard/settings/cli-tokens?notice=mail-off"
    }))
}

fn parse_kind(text: &str) -> Option<TokenKind> {
    match text {
        "pat" => Some(TokenKind::Pat),
        "session" => Some(TokenKind::Session),
        _ => None,
    }
}

fn gone(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::NOT_FOUND,
        Message::new("warn", "?", ctx.t("revoke-gone-title"))
            .paragraph(ctx.t("revoke-gone-body"))
            .action(TOKENS_PATH, ctx.t("revoke-back"), true),
    )
}

/// Asks before revoking (a GET never revokes).
async fn revoke_page(ctx: Ctx) -> PageResult {
    let user = ctx.require_user()?;
    let (Some(kind), Some(id)) = (ctx.param("kind").and_then(parse_kind), ctx.param("id")) else {
        return Err(gone(&ctx).into());
    };
    let record = token_store::list_of_kind(ctx.state(), &user.user.id, kind)
        .await
        .map_err(|err| ctx.fail(err))?
        .into_iter()
        .find(|record| record.id == id)
        .ok_or_else(|| gone(&ctx))?;
    let (title, label, body) = match kind {
        TokenKind::Pat => (
            ctx.t("revoke-pat-title"),
            format!("{} ({}…)", record.name, record.display_prefix),
            ctx.t("revoke-pat-body"),
        ),
        TokenKind::Session => (
            ctx.t("revoke-session-title"),
            device_label(&record),
            ctx.t("revoke-session-body"),
        ),
    };
    Ok(ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: &ctx,
            action: "/dashboard/settings/cli-tokens/revoke".into(),
            back: TOKENS_PATH.into(),
            hidden: vec![("id", record.id), ("kind", kind.as_str().to_owned())],
            title,
            label,
            body,
            confirm: ctx.t("revoke-confirm"),
        },
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeForm {
    id: String,
    kind: String,
    csrf: String,
}

/// Revokes a PAT or a CLI session of this account.
async fn revoke(
    ctx: Ctx,
    client: crate::http::request::ClientInfo,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> PageResult {
    let (user, form) = ctx.signed_in_form(TOKENS_PATH, form, |form| &form.csrf)?;
    let kind = parse_kind(&form.kind).ok_or_else(|| gone(&ctx))?;
    match token_store::revoke_owned(ctx.state(), &user.user.id, &form.id, kind, &client.ip).await {
        Ok(()) => Ok(ctx.redirect("/dashboard/settings/cli-tokens?notice=revoked")),
        Err(err) if err.status == StatusCode::NOT_FOUND => Err(gone(&ctx).into()),
        Err(err) => Err(ctx.fail(err).into()),
    }
}
