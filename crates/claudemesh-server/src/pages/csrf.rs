//! The pages' side of the CSRF rule: a form that changes something is
//! accepted when it comes from our own origin or carries the expected token
//! in its `csrf` field, exactly [`crate::auth::csrf::allows`] (the API's rule);
//! refused, the person gets a page that says so and offers to retry.

use super::ctx::{Ctx, PageError};
use super::message::Message;
use crate::auth::caller::BrowserCaller;
use crate::auth::csrf;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;

impl Ctx {
    /// What every form a signed-in person posts checks first: the user (else
    /// sign in and come back to `next`), a readable form (else the bad-form
    /// page), and its origin or the CSRF token `csrf` finds in it.
    pub fn signed_in_form<F>(
        &self,
        next: &str,
        form: Result<Form<F>, FormRejection>,
        csrf: impl FnOnce(&F) -> &str,
    ) -> Result<(BrowserCaller, F), PageError> {
        let user = self.require_user_then(next)?;
        let Ok(Form(form)) = form else {
            return Err(self.bad_form().into());
        };
        self.check_form(&user, csrf(&form))?;
        Ok((user, form))
    }

    /// Accepts a signed-in form when it comes from our origin or carries the
    /// session's token.
    pub fn check_form(&self, user: &BrowserCaller, token: &str) -> Result<(), PageError> {
        self.check_origin_or_token(token, Some(&user.session.csrf_token))
    }

    /// The same rule for the sign-in and register forms, against the
    /// double-submit cookie instead of a session (no cookie: only the origin
    /// can pass).
    pub fn check_pre_session_form(&self, token: &str) -> Result<(), PageError> {
        self.check_origin_or_token(token, self.pre_session_token.as_deref())
    }

    fn check_origin_or_token(&self, token: &str, expected: Option<&str>) -> Result<(), PageError> {
        let claims = csrf::Claims {
            origin: self.origin.as_deref(),
            referer: self.referer.as_deref(),
            token: Some(token),
        };
        if csrf::allows(claims, &self.state().settings.public_origin, expected) {
            return Ok(());
        }
        Err(self
            .message(
                StatusCode::FORBIDDEN,
                Message::new("error", "!", self.t("csrf-title"))
                    .paragraph(self.t("csrf-body"))
                    .action(&self.path, self.t("csrf-retry"), true),
            )
            .into())
    }
}
