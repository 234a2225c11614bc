//! Account pages: sign in (`/login`), register (`/register`), sign out
//! (`/logout`) and change password (`/dashboard/settings/password`).
//!
//! They call the same functions as the JSON API ([`accounts`]), so the rules
//! (email shape, password length, one answer for a wrong password and an
//! unknown email) are the same on both.

use super::ctx::{Ctx, PageResult};
use crate::app::state::AppState;
use crate::auth::accounts;
use crate::auth::caller::{clear_session_cookie, end_browser_session, start_browser_session};
use crate::auth::token_store;
use crate::http::error::AppError;
use crate::http::request::ClientInfo;
use crate::text::format::safe_next;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use claudemesh_api::ErrorCode;
use claudemesh_api::wire::{ChangePasswordRequest, RegisterRequest};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/register", get(register_page).post(register))
        .route("/logout", get(logout_page).post(logout))
        .route(
            "/dashboard/settings/password",
            get(password_page).post(change_password),
        )
}

/// `/`: the dashboard, or sign in.
async fn home(ctx: Ctx) -> Response {
    ctx.redirect(if ctx.user.is_some() {
        "/dashboard"
    } else {
        "/login"
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    page: &'a Ctx,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
    /// Signing in to approve a CLI login: say so.
    for_cli: bool,
    /// Signing in to accept an invitation (`next` is `/i/…`): say so.
    for_invite: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    email: String,
    password: String,
    next: String,
    csrf: String,
}

/// The sign-in form (or straight on to `next` when already signed in).
async fn login_page(mut ctx: Ctx) -> Response {
    let next = safe_next(ctx.param("next"));
    if ctx.user.is_some() {
        return ctx.redirect(&next);
    }
    let notice = (ctx.param("notice") == Some("signed-out")).then(|| ctx.t("login-signed-out"));
    let csrf = ctx.pre_session_token();
    ctx.render(
        StatusCode::OK,
        &LoginPage {
            page: &ctx,
            csrf,
            for_cli: next.starts_with("/cli-auth"),
            for_invite: next.starts_with("/i/"),
            next,
            email: String::new(),
            error: None,
            notice,
        },
    )
}

/// Checks the email and password, starts a session, goes to `next`.
async fn login(
    mut ctx: Ctx,
    client: ClientInfo,
    form: Result<Form<LoginForm>, FormRejection>,
) -> PageResult {
    let Ok(Form(form)) = form else {
        return Err(ctx.bad_form().into());
    };
    ctx.check_pre_session_form(&form.csrf)?;
    let next = safe_next(Some(&form.next));
    let state = ctx.state().clone();
    match accounts::check_credentials(&state, &client, &form.email, &form.password).await {
        Ok(user) => {
            if let Some(previous) = &ctx.user {
                end_browser_session(&state, &previous.session)
                    .await
                    .map_err(|err| ctx.fail(err))?;
            }
            let cookie = start_browser_session(&state, &user.id)
                .await
                .map_err(|err| ctx.fail(err))?;
            Ok(with_cookie(ctx.redirect(&next), &cookie))
        }
        Err(err)
            if err.code == ErrorCode::InvalidCredentials
                || err.code == ErrorCode::TooManyAttempts =>
        {
            let (status, error) = if err.code == ErrorCode::TooManyAttempts {
                (StatusCode::TOO_MANY_REQUESTS, too_many_words(&ctx, &err))
            } else {
                // The same words whether the email exists or not.
                (StatusCode::UNAUTHORIZED, ctx.t("login-error-credentials"))
            };
            let csrf = ctx.pre_session_token();
            let mut response = ctx.render(
                status,
                &LoginPage {
                    page: &ctx,
                    csrf,
                    for_cli: next.starts_with("/cli-auth"),
                    for_invite: next.starts_with("/i/"),
                    next,
                    email: form.email.trim().to_owned(),
                    error: Some(error),
                    notice: None,
                },
            );
            err.set_retry_after(&mut response);
            Ok(response)
        }
        Err(err) => Err(ctx.fail(err).into()),
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    page: &'a Ctx,
    csrf: String,
    next: String,
    name: String,
    email: String,
    errors: Vec<String>,
    /// The email has an account: offer to sign in.
    taken: bool,
    /// Registering to accept an invitation (`next` is `/i/…`): say so.
    for_invite: bool,
    min_password: usize,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegisterForm {
    name: String,
    email: String,
    password: String,
    next: String,
    csrf: String,
}

async fn register_page(mut ctx: Ctx) -> Response {
    let next = safe_next(ctx.param("next"));
    if ctx.user.is_some() {
        return ctx.redirect(&next);
    }
    let csrf = ctx.pre_session_token();
    let for_invite = next.starts_with("/i/");
    ctx.render(
        StatusCode::OK,
        &RegisterPage {
            page: &ctx,
            csrf,
            next,
            name: String::new(),
            email: String::new(),
            errors: Vec::new(),
            taken: false,
            for_invite,
            min_password: accounts::MIN_PASSWORD_CHARS,
        },
    )
}

/// Creates the account, signs this browser in, goes to `next`.
async fn register(
    mut ctx: Ctx,
    client: ClientInfo,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> PageResult {
    let Ok(Form(form)) = form else {
        return Err(ctx.bad_form().into());
    };
    ctx.check_pre_session_form(&form.csrf)?;
    let next = safe_next(Some(&form.next));
    // The API's own checks, one by one, so each gets its translated message.
    let mut errors = Vec::new();
    if token_store::clean_name(&form.name, "name").is_err() {
        errors.push(ctx.t("register-error-name"));
    }
    if accounts::clean_email(&form.email).is_err() {
        errors.push(ctx.t("register-error-email"));
    }
    if accounts::check_password_strength(&form.password).is_err() {
        errors.push(ctx.t_args(
            "password-error-weak",
            &[("min", accounts::MIN_PASSWORD_CHARS.into())],
        ));
    }
    let mut taken = false;
    let state = ctx.state().clone();
    if errors.is_empty() {
        let request = RegisterRequest {
            email: form.email.clone(),
            password: form.password.clone(),
            name: form.name.clone(),
        };
        match accounts::create_account(&state, &client, &request).await {
            Ok(user) => {
                let cookie = start_browser_session(&state, &user.id)
                    .await
                    .map_err(|err| ctx.fail(err))?;
                return Ok(with_cookie(ctx.redirect(&next), &cookie));
            }
            Err(err) if err.code == ErrorCode::EmailTaken => {
                taken = true;
                errors.push(ctx.t("register-error-taken"));
            }
            Err(err) => return Err(ctx.fail(err).into()),
        }
    }
    let csrf = ctx.pre_session_token();
    let for_invite = next.starts_with("/i/");
    Ok(ctx.render(
        if taken {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        },
        &RegisterPage {
            page: &ctx,
            csrf,
            next,
            name: form.name.trim().to_owned(),
            email: form.email.trim().to_owned(),
            errors,
            taken,
            for_invite,
            min_password: accounts::MIN_PASSWORD_CHARS,
        },
    ))
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    page: &'a Ctx,
}

/// A page with just the sign-out button (a GET never signs out).
async fn logout_page(ctx: Ctx) -> Response {
    if ctx.user.is_none() {
        return ctx.redirect("/login");
    }
    ctx.render(StatusCode::OK, &LogoutPage { page: &ctx })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// Ends this browser's session.
async fn logout(ctx: Ctx, form: Result<Form<CsrfForm>, FormRejection>) -> PageResult {
    let Ok(Form(form)) = form else {
        return Err(ctx.bad_form().into());
    };
    if let Some(user) = &ctx.user {
        ctx.check_form(user, &form.csrf)?;
        end_browser_session(ctx.state(), &user.session)
            .await
            .map_err(|err| ctx.fail(err))?;
    }
    let cookie = clear_session_cookie(ctx.state());
    Ok(with_cookie(
        ctx.redirect("/login?notice=signed-out"),
        &cookie,
    ))
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    page: &'a Ctx,
    errors: Vec<String>,
    done: Option<String>,
    min_password: usize,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    repeat_password: String,
    csrf: String,
}

async fn password_page(ctx: Ctx) -> PageResult {
    ctx.require_user()?;
    Ok(ctx.render(
        StatusCode::OK,
        &PasswordPage {
            page: &ctx,
            errors: Vec::new(),
            done: None,
            min_password: accounts::MIN_PASSWORD_CHARS,
        },
    ))
}

/// Changes the password; this revokes the account's CLI sessions (not its
/// PATs) and signs out its other browsers.
async fn change_password(
    ctx: Ctx,
    client: ClientInfo,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> PageResult {
    let (user, form) =
        ctx.signed_in_form("/dashboard/settings/password", form, |form| &form.csrf)?;
    let mut errors = Vec::new();
    let mut too_many = None;
    if form.new_password != form.repeat_password {
        errors.push(ctx.t("password-error-mismatch"));
    } else if accounts::check_password_strength(&form.new_password).is_err() {
        errors.push(ctx.t_args(
            "password-error-weak",
            &[("min", accounts::MIN_PASSWORD_CHARS.into())],
        ));
    }
    let mut done = None;
    if errors.is_empty() {
        let request = ChangePasswordRequest {
            current_password: form.current_password,
            new_password: form.new_password,
        };
        match accounts::change_password_for(ctx.state(), &user, &client, &request).await {
            Ok(revoked) => {
                done = Some(ctx.t_args("password-changed", &[("count", revoked.into())]));
            }
            Err(err) if err.code == ErrorCode::InvalidCredentials => {
                errors.push(ctx.t("password-error-current"));
            }
            Err(err) if err.code == ErrorCode::TooManyAttempts => {
                errors.push(too_many_words(&ctx, &err));
                too_many = Some(err);
            }
            Err(err) => return Err(ctx.fail(err).into()),
        }
    }
    let status = if too_many.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut response = ctx.render(
        status,
        &PasswordPage {
            page: &ctx,
            errors,
            done,
            min_password: accounts::MIN_PASSWORD_CHARS,
        },
    );
    if let Some(err) = too_many {
        err.set_retry_after(&mut response);
    }
    Ok(response)
}

/// "Too many failed sign-ins… Wait N minutes", on the forms that check a
/// password.
fn too_many_words(ctx: &Ctx, err: &AppError) -> String {
    ctx.t_args(
        "login-error-too-many",
        &[("minutes", err.wait_minutes().into())],
    )
}
