//! `/cli-auth`: where a signed-in person approves or denies a `claudemesh
//! login` started in a terminal.
//!
//! The GET only shows: the code, the device, when and from where the request
//! came (beside the approver's own address), and a countdown. Approving and
//! denying are POSTed forms with the session's CSRF token, through the same
//! [`device_codes::decide`] as the JSON API, so the guessing limit and the
//! state machine are the same. Each state of a code has its own page:
//! unknown, expired, already used, and too many wrong tries.

use super::ctx::{Ctx, PageResult};
use super::message::Message;
use crate::app::state::AppState;
use crate::auth::device_codes::{self, Decision, DeviceCodeState, PendingRequest};
use crate::clock::SECOND_MS;
use crate::http::error::AppError;
use crate::http::request::ClientInfo;
use crate::text::format::{format_clock, format_countdown, percent_encode};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use claudemesh_api::wire::DeviceCodeStatus;
use claudemesh_api::{ErrorCode, UserCode};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cli-auth", get(cli_auth_page).post(decide))
        .route("/cli-auth/approved", get(approved))
        .route("/cli-auth/denied", get(denied))
}

#[derive(Template)]
#[template(path = "cli_auth.html")]
struct ConfirmPage<'a> {
    page: &'a Ctx,
    code: String,
    device_name: String,
    device_os: String,
    device_arch: String,
    requested_at: String,
    requested_ago: String,
    request_ip: String,
    your_ip: String,
    same_ip: bool,
    remaining_secs: i64,
    countdown: String,
}

/// `ABCD-EFGH` for a stored or typed code (as given if it does not parse).
fn display_code(code: &str) -> String {
    UserCode::parse(code).map_or_else(|_| code.to_owned(), |code| code.to_string())
}

/// Shows the request behind `?code=`, or a field to type one. Never changes
/// the code's state.
async fn cli_auth_page(ctx: Ctx, client: ClientInfo) -> PageResult {
    let user = ctx.require_user()?;
    let Some(code) = ctx.param("code").map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(enter_code(&ctx));
    };
    let request = device_codes::lookup(ctx.state(), &user.user.id, code, &client)
        .await
        .map_err(|err| code_error(&ctx, err))?;
    let now = ctx.state().now();
    match request.effective_status(now) {
        DeviceCodeState::Pending => Ok(confirm(&ctx, &request, &client, now)),
        DeviceCodeState::Expired => Err(expired(&ctx).into()),
        status => Err(used(&ctx, Some(status)).into()),
    }
}

fn confirm(ctx: &Ctx, request: &PendingRequest, client: &ClientInfo, now: i64) -> Response {
    let requested_ago = ctx.ago(request.created_at, now);
    let request_ip = request
        .ip_address
        .clone()
        .unwrap_or_else(|| ctx.t("cli-auth-ip-unknown"));
    let remaining_secs = ((request.expires_at - now) / SECOND_MS).max(0);
    ctx.render(
        StatusCode::OK,
        &ConfirmPage {
            page: ctx,
            code: display_code(&request.user_code),
            device_name: request.device_name.clone(),
            device_os: request.device_os.clone(),
            device_arch: request.device_arch.clone(),
            requested_at: format_clock(request.created_at),
            requested_ago,
            same_ip: request.ip_address.as_deref() == Some(client.ip.as_str()),
            request_ip,
            your_ip: client.ip.clone(),
            remaining_secs,
            countdown: format_countdown(remaining_secs),
        },
    )
}

/// No code in the link: a field to type the one the terminal shows.
fn enter_code(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::OK,
        Message::new("info", "⌨", ctx.t("cli-auth-enter-title"))
            .paragraph(ctx.t("cli-auth-enter-body"))
            .with_code_field(),
    )
}

fn unknown(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::NOT_FOUND,
        Message::new("warn", "?", ctx.t("cli-auth-unknown-title"))
            .paragraph(ctx.t("cli-auth-unknown-body"))
            .with_code_field(),
    )
}

fn expired(ctx: &Ctx) -> Response {
    ctx.message(
        StatusCode::GONE,
        Message::new("warn", "⏱", ctx.t("cli-auth-expired-title"))
            .paragraph(ctx.t("cli-auth-expired-body"))
            .paragraph(ctx.t("cli-auth-run-again")),
    )
}

/// A code already approved or denied (`status` when known).
fn used(ctx: &Ctx, status: Option<DeviceCodeState>) -> Response {
    let detail = match status {
        Some(DeviceCodeState::Approved | DeviceCodeState::Claimed) => {
            ctx.t("cli-auth-used-approved")
        }
        Some(DeviceCodeState::Denied) => ctx.t("cli-auth-used-denied"),
        _ => ctx.t("cli-auth-used-body"),
    };
    ctx.message(
        StatusCode::CONFLICT,
        Message::new("warn", "!", ctx.t("cli-auth-used-title"))
            .paragraph(detail)
            .paragraph(ctx.t("cli-auth-run-again")),
    )
}

fn too_many(ctx: &Ctx, err: &AppError) -> Response {
    let minutes = err.wait_minutes();
    let mut response = ctx.message(
        StatusCode::TOO_MANY_REQUESTS,
        Message::new("error", "✋", ctx.t("cli-auth-limit-title"))
            .paragraph(ctx.t_args("cli-auth-limit-body", &[("minutes", minutes.into())])),
    );
    err.set_retry_after(&mut response);
    response
}

/// The page for what the state machine refused.
fn code_error(ctx: &Ctx, err: AppError) -> Response {
    match err.code {
        ErrorCode::UserCodeNotFound | ErrorCode::InvalidUserCode => unknown(ctx),
        ErrorCode::TooManyAttempts => too_many(ctx, &err),
        ErrorCode::CodeExpired => expired(ctx),
        ErrorCode::CodeAlreadyUsed => used(ctx, None),
        _ => ctx.fail(err),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DecisionForm {
    code: String,
    decision: String,
    csrf: String,
}

/// Approves or denies, then shows the result on its own page (so a reload
/// does not post again).
async fn decide(
    ctx: Ctx,
    client: ClientInfo,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> PageResult {
    let Ok(Form(form)) = form else {
        return Err(ctx.bad_form().into());
    };
    let user = ctx.require_user_then(&format!("/cli-auth?code={}", percent_encode(&form.code)))?;
    ctx.check_form(&user, &form.csrf)?;
    let decision = match form.decision.as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => return Err(ctx.bad_form().into()),
    };
    let status = device_codes::decide(
        ctx.state(),
        &user.user,
        &form.code,
        decision,
        &client,
        ctx.lang,
    )
    .await
    .map_err(|err| code_error(&ctx, err))?;
    Ok(ctx.redirect(match status {
        DeviceCodeStatus::Denied => "/cli-auth/denied",
        _ => "/cli-auth/approved",
    }))
}

async fn approved(ctx: Ctx) -> Response {
    ctx.message(
        StatusCode::OK,
        // The title starts with its own ✓.
        Message::new("ok", "", ctx.t("cli-auth-approved-title"))
            .paragraph(ctx.t("cli-auth-approved-body"))
            .action(
                "/dashboard/settings/cli-tokens",
                ctx.t("cli-auth-see-sessions"),
                false,
            ),
    )
}

async fn denied(ctx: Ctx) -> Response {
    ctx.message(
        StatusCode::OK,
        Message::new("error", "✗", ctx.t("cli-auth-denied-title"))
            .paragraph(ctx.t("cli-auth-denied-body")),
    )
}
