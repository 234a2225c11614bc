//! The cookies the pages set: the language picked with `?lang=`, and the
//! double-submit CSRF token of the sign-in and register forms (which have no
//! session yet). Each is HttpOnly, SameSite=Lax, and Secure over https. The
//! session cookie itself is the API's ([`crate::auth::caller::SESSION_COOKIE`]).

use super::Ctx;
use crate::db::ids::random_base32;
use crate::text::i18n::LANG_COOKIE;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The double-submit CSRF cookie of the sign-in and register forms.
pub const PRE_SESSION_COOKIE: &str = "cm_csrf";

impl Ctx {
    /// The double-submit token for a sign-in or register form (set as a
    /// cookie with the page if the browser has none yet).
    pub fn pre_session_token(&mut self) -> String {
        if let Some(token) = &self.pre_session_token {
            return token.clone();
        }
        let token = random_base32::<20>();
        self.pre_session_token = Some(token.clone());
        self.new_pre_session_token = true;
        token
    }

    /// A cookie of ours: HttpOnly, SameSite=Lax, Secure over https.
    pub fn cookie(&self, name: &str, value: &str, max_age_seconds: i64) -> String {
        let secure = if self.state().settings.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}")
    }

    /// Adds the cookies this request asked for (language, form token).
    pub fn finish(&self, mut response: Response) -> Response {
        let mut cookies = Vec::new();
        if self.remember_lang {
            cookies.push(self.cookie(LANG_COOKIE, self.lang.code(), 365 * 24 * 3600));
        }
        if self.new_pre_session_token
            && let Some(token) = &self.pre_session_token
        {
            cookies.push(self.cookie(PRE_SESSION_COOKIE, token, 24 * 3600));
        }
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}
