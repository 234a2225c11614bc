//! The cookies the pages set: the language picked with `?lang=`, and the
//! double-submit CSRF token of the sign-in and register forms (which have no
//! session yet). Each is HttpOnly, SameSite=Lax, and Secure over https
//! ([`crate::http::cookies`], where the session cookie is too).

use super::ctx::Ctx;
use crate::db::ids::random_base32;
use crate::http::cookies::{LANG_COOKIE, PRE_SESSION_COOKIE, set_cookie};
use axum::http::{HeaderValue, header};
use axum::response::Response;

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
        set_cookie(
            name,
            value,
            max_age_seconds,
            self.state().settings.secure_cookies,
        )
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
