//! [`Ctx`]: everything a page handler needs to know about the request (the
//! language, the signed-in user, the query, what a form check needs), and
//! the ways a handler answers (render a template, redirect; the message and
//! error pages are `message`'s). What a handler returns: [`PageResult`].

use crate::app::state::AppState;
use crate::auth::caller::{self, BrowserCaller, Caller, Via};
use crate::http::cookies::{PRE_SESSION_COOKIE, SESSION_COOKIE, cookie};
use crate::http::error::AppError;
use crate::text::format::{html_escape, percent_encode};
use crate::text::i18n::{self, Lang};
use askama::Template;
use axum::extract::{FromRequestParts, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;

/// What a page handler returns: the page, or an early answer (a redirect to
/// sign in, an error page) through `?`.
pub type PageResult = Result<Response, PageError>;

/// An early answer of a page handler: a finished response (boxed, it is big).
pub struct PageError(Box<Response>);

impl From<Response> for PageError {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The API's caller for a signed-in browser, to call the functions shared
/// with the JSON API ([`crate::meshes::mesh`], [`crate::meshes::invites`]).
pub fn api_caller(user: &BrowserCaller) -> Caller {
    Caller {
        user: user.user.clone(),
        via: Via::Cookie(user.session.clone()),
    }
}

/// Everything a page handler needs to know about the request.
pub struct Ctx {
    pub lang: Lang,
    /// The signed-in browser, if any.
    pub user: Option<BrowserCaller>,
    state: AppState,
    /// Set the language cookie (the language came from `?lang=`).
    pub(super) remember_lang: bool,
    pub(super) path: String,
    query: Vec<(String, String)>,
    /// The `Origin` and `Referer` headers, for the CSRF rule (as text; a
    /// value that is not text is as good as none).
    pub(super) origin: Option<String>,
    pub(super) referer: Option<String>,
    /// The double-submit token of the sign-in forms: from the cookie, or new.
    pub(super) pre_session_token: Option<String>,
    pub(super) new_pre_session_token: bool,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        // A query string that does not parse is treated as empty.
        let query: Vec<(String, String)> = Query::try_from_uri(&parts.uri)
            .map(|Query(pairs)| pairs)
            .unwrap_or_default();
        let query_lang = query
            .iter()
            .find(|(key, _)| key == "lang")
            .map(|(_, value)| value.as_str());
        let negotiated = i18n::negotiate(query_lang, &parts.headers);
        // A store failure (logged where it is converted) reads as signed out.
        let user = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(raw) if !raw.is_empty() => {
                caller::browser_session(state, raw).await.ok().flatten()
            }
            _ => None,
        };
        let pre_session_token = cookie(&parts.headers, PRE_SESSION_COOKIE)
            .filter(|value| (16..=64).contains(&value.len()))
            .map(str::to_owned);
        Ok(Self {
            lang: negotiated.lang,
            user,
            state: state.clone(),
            remember_lang: negotiated.from_query,
            path: parts.uri.path().to_owned(),
            query: query.into_iter().filter(|(key, _)| key != "lang").collect(),
            origin: header_text(&parts.headers, header::ORIGIN),
            referer: header_text(&parts.headers, header::REFERER),
            pre_session_token,
            new_pre_session_token: false,
        })
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// One entry of the language switcher.
pub struct LangLink {
    pub code: &'static str,
    pub name: &'static str,
    pub url: String,
    pub current: bool,
}

impl Ctx {
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn lang_code(&self) -> &'static str {
        self.lang.code()
    }

    /// A text in the page's language.
    pub fn t(&self, key: &str) -> String {
        self.lang.t(key)
    }

    /// A text with arguments in the page's language.
    pub fn t_args(
        &self,
        key: &str,
        args: &[(
            &'static str,
            fluent_templates::fluent_bundle::FluentValue<'static>,
        )],
    ) -> String {
        self.lang.t_args(key, args)
    }

    /// A text with a command in it, as HTML: the text escaped, the command
    /// (`{ $command }` in the message) in `<code>`. For `|safe` in templates.
    pub fn t_with_code(&self, key: &str, command: &str) -> String {
        self.t_with_codes(key, &[("command", command)])
    }

    /// [`Ctx::t_with_code`] with several commands, each named by its argument.
    pub fn t_with_codes(&self, key: &str, commands: &[(&'static str, &str)]) -> String {
        // One private-use character marks where each command goes.
        let mark = |index: usize| char::from_u32(0xE000 + index as u32).unwrap_or('\u{E000}');
        let args: Vec<_> = commands
            .iter()
            .enumerate()
            .map(|(index, (name, _))| (*name, mark(index).to_string().into()))
            .collect();
        let mut html = html_escape(&self.t_args(key, &args));
        for (index, (_, command)) in commands.iter().enumerate() {
            html = html.replace(
                mark(index),
                &format!("<code>{}</code>", html_escape(command)),
            );
        }
        html
    }

    /// `claudemesh create "Name"`, the name in the page's language.
    pub fn create_example(&self) -> String {
        format!("claudemesh create \"{}\"", self.t("mesh-example-name"))
    }

    /// How long before `now` the time `ms` was, in words: "just now", "5
    /// minutes ago", "3 hours ago", "2 days ago" (a later time: "just now").
    pub fn ago(&self, ms: i64, now: i64) -> String {
        let seconds = ((now - ms) / crate::clock::SECOND_MS).max(0);
        let count = |n: i64| [("count", n.into())];
        if seconds < 5 {
            self.t("ago-just-now")
        } else if seconds < 60 {
            self.t_args("ago-seconds", &count(seconds))
        } else if seconds < 3600 {
            self.t_args("ago-minutes", &count(seconds / 60))
        } else if seconds < 24 * 3600 {
            self.t_args("ago-hours", &count(seconds / 3600))
        } else {
            self.t_args("ago-days", &count(seconds / (24 * 3600)))
        }
    }

    /// "At least 8 characters."
    pub fn password_hint(&self) -> String {
        self.t_args(
            "password-hint",
            &[("min", crate::auth::accounts::MIN_PASSWORD_CHARS.into())],
        )
    }

    /// A query parameter (the first, if repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The session's CSRF token, for the forms of a signed-in page.
    pub fn csrf(&self) -> &str {
        self.user
            .as_ref()
            .map_or("", |user| user.session.csrf_token.as_str())
    }

    /// The same page in each language.
    pub fn switcher(&self) -> Vec<LangLink> {
        let mut base = String::from(&self.path);
        base.push('?');
        for (key, value) in &self.query {
            base.push_str(&percent_encode(key));
            base.push('=');
            base.push_str(&percent_encode(value));
            base.push('&');
        }
        Lang::ALL
            .into_iter()
            .map(|lang| LangLink {
                code: lang.code(),
                name: lang.native_name(),
                url: format!("{base}lang={}", lang.code()),
                current: lang == self.lang,
            })
            .collect()
    }

    /// This page's path and query (without `lang`), for `?next=`.
    pub fn current_url(&self) -> String {
        let mut url = self.path.clone();
        for (index, (key, value)) in self.query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.push_str(&percent_encode(key));
            url.push('=');
            url.push_str(&percent_encode(value));
        }
        url
    }

    /// The signed-in user, or a redirect to sign in and come back here.
    pub fn require_user(&self) -> Result<BrowserCaller, PageError> {
        self.require_user_then(&self.current_url())
    }

    /// The signed-in user, or a redirect to sign in and then go to `next`.
    pub fn require_user_then(&self, next: &str) -> Result<BrowserCaller, PageError> {
        self.user.clone().ok_or_else(|| {
            self.redirect(&format!("/login?next={}", percent_encode(next)))
                .into()
        })
    }

    /// Renders a template as the page.
    pub fn render(&self, status: StatusCode, template: &impl Template) -> Response {
        match template.render() {
            Ok(html) => self.finish(
                (
                    status,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    html,
                )
                    .into_response(),
            ),
            Err(err) => AppError::internal(format!("template: {err}")).into_response(),
        }
    }

    /// A 303 to a local path (after a form, or to sign in).
    pub fn redirect(&self, location: &str) -> Response {
        let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
        self.finish((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
    }
}
