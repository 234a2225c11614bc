//! The mail an account gets for each new credential: a CLI session (when the
//! CLI claims the token an approval made) or a personal access token. It says
//! what, from which IP and when, and links to revoking it on the CLI tokens
//! page. One setting per account (`users.credential_mail`, on by default,
//! switched on that page) turns these mails off.
//!
//! The mail is sent in the background: a slow or broken mail server never
//! delays or fails the login or the token it is about. A failure is logged
//! (with the token id, never the address) and the credential stands.

use crate::app::state::AppState;
use crate::http::error::AppResult;
use crate::text::format::format_time;
use crate::text::i18n::Lang;
use crate::text::mail::Mail;
use claudemesh_api::TokenKind;
use fluent_templates::fluent_bundle::FluentValue;

/// A credential just made, as its mail describes it.
pub struct NewCredential {
    pub user_id: String,
    pub token_id: String,
    pub kind: TokenKind,
    /// The device (`name · os · arch`) of a session, the name of a PAT.
    pub label: String,
    /// Where the request came from: the terminal that asked to sign in, or
    /// the client that created the token.
    pub ip: Option<String>,
    pub at: i64,
    pub lang: Lang,
}

/// Whether the account gets these mails.
pub async fn enabled(state: &AppState, user_id: &str) -> AppResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT credential_mail FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(state.pool())
        .await?;
    Ok(row.is_some_and(|(on,)| on != 0))
}

/// Turns the mails on or off for the account.
pub async fn set_enabled(state: &AppState, user_id: &str, on: bool) -> AppResult<()> {
    sqlx::query("UPDATE users SET credential_mail = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(user_id)
        .execute(state.pool())
        .await?;
    Ok(())
}

/// Mails the account about `credential`, unless it turned these mails off.
/// Whether to send is decided now (so turning the setting off takes effect
/// for the next credential); the sending itself runs in the background.
pub async fn notify(state: &AppState, credential: NewCredential) {
    let recipient: Result<Option<(String, i64)>, _> =
        sqlx::query_as("SELECT email, credential_mail FROM users WHERE id = $1")
            .bind(&credential.user_id)
            .fetch_optional(state.pool())
            .await;
    let email = match recipient {
        Ok(Some((email, on))) if on != 0 => email,
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(token_id = %credential.token_id, error = %err, "the new-credential mail was not sent");
            return;
        }
    };
    let mail = compose(&state.settings.public_url, &email, &credential);
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(reason) = state.mailer.send(&mail).await {
            tracing::warn!(token_id = %credential.token_id, %reason, "the new-credential mail was not sent");
        }
    });
}

/// The CLI tokens page, where the setting is.
pub const TOKENS_PAGE: &str = "/dashboard/settings/cli-tokens";

/// The page that revokes a credential, after a confirmation (the tokens
/// page's own links, and the mail's).
pub fn revoke_path(kind: TokenKind, token_id: &str) -> String {
    format!(
        "{TOKENS_PAGE}/revoke?kind={}&id={}",
        kind.as_str(),
        crate::text::format::percent_encode(token_id)
    )
}

fn compose(public_url: &str, to: &str, credential: &NewCredential) -> Mail {
    let lang = credential.lang;
    let args = [
        ("label", FluentValue::from(credential.label.clone())),
        (
            "ip",
            FluentValue::from(
                credential
                    .ip
                    .clone()
                    .unwrap_or_else(|| lang.t("mail-credential-ip-unknown")),
            ),
        ),
        ("time", FluentValue::from(format_time(credential.at))),
        (
            "revoke",
            FluentValue::from(format!(
                "{public_url}{}",
                revoke_path(credential.kind, &credential.token_id)
            )),
        ),
        (
            "settings",
            FluentValue::from(format!("{public_url}{TOKENS_PAGE}")),
        ),
    ];
    let (subject, body) = match credential.kind {
        TokenKind::Session => ("mail-session-subject", "mail-session-body"),
        TokenKind::Pat => ("mail-pat-subject", "mail-pat-body"),
    };
    Mail {
        to: to.to_owned(),
        subject: lang.t_args(subject, &args),
        body: lang.t_args(body, &args),
    }
}
