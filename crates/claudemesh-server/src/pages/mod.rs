//! The browser side: server-rendered HTML pages (askama templates in
//! `templates/`, texts in `locales/`), a stylesheet and two small scripts.
//!
//! - [`account`] — `/login`, `/register`, `/logout`, `/dashboard/settings/password`
//! - [`cli_auth`] — `/cli-auth`, where a signed-in person approves a CLI login
//! - [`dashboard`] — `/dashboard` (the account's meshes) and
//!   `/dashboard/settings/cli-tokens`
//! - [`meshes`] — `/dashboard/meshes/{slug}`: members, and for admins invites
//! - [`invite`] — `/i/{code}`: an invitation, accepted in the browser
//! - [`assets`] — `/static/…`
//!
//! Any other path outside `/api` and `/oauth` gets the HTML [`fallback`] 404.
//!
//! Every handler starts from a [`Ctx`]: the language, the signed-in user (if
//! any, read from the session cookie without the API's header-based CSRF
//! check) and what is needed to check a form. GET never changes state. Every
//! form that does carries a CSRF token, and is accepted when it comes from our
//! own origin or its token matches: the rule of [`auth::check_csrf`], with the
//! token taken from the form body. Sign-in and register have no session yet,
//! so their token is a double-submit cookie ([`PRE_SESSION_COOKIE`]).
//!
//! Every response carries a strict Content-Security-Policy (no inline script
//! or style), `nosniff`, `Referrer-Policy: same-origin`, and pages are
//! `no-store` (one of them shows a new token).

pub mod account;
pub mod assets;
pub mod cli_auth;
pub mod dashboard;
pub mod i18n;
pub mod invite;
pub mod meshes;

use crate::auth::{self, BrowserCaller, BrowserSession, Caller, Via};
use crate::error::AppError;
use crate::ids::random_base32;
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use i18n::{LANG_COOKIE, Lang};
use std::convert::Infallible;

/// The double-submit CSRF cookie of the sign-in and register forms.
pub const PRE_SESSION_COOKIE: &str = "cm_csrf";

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

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

/// Every page route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(account::routes())
        .merge(cli_auth::routes())
        .merge(dashboard::routes())
        .merge(meshes::routes())
        .merge(invite::routes())
        .merge(assets::routes())
        .layer(middleware::from_fn(security_headers))
}

/// Whether a path belongs to the JSON side (its errors are JSON bodies).
pub fn is_api_path(path: &str) -> bool {
    ["/api", "/oauth"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// The router's fallback: the API's JSON 404 under `/api` and `/oauth`
/// (clients read the error body), an HTML page everywhere else (people).
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    if is_api_path(request.uri().path()) {
        return crate::http::not_found().await.into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let Ok(ctx) = Ctx::from_request_parts(&mut parts, &state).await;
    let mut response = not_found_page(&ctx);
    add_security_headers(&mut response);
    response
}

/// For a known path asked with a method it does not take (a `PUT /login`):
/// the API's JSON 405 under `/api` and `/oauth`, an HTML page elsewhere.
pub async fn method_not_allowed(State(state): State<AppState>, request: Request) -> Response {
    if is_api_path(request.uri().path()) {
        return crate::http::method_not_allowed().await.into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let Ok(ctx) = Ctx::from_request_parts(&mut parts, &state).await;
    let home = if ctx.user.is_some() {
        "/dashboard"
    } else {
        "/"
    };
    let mut response = ctx.message(
        StatusCode::METHOD_NOT_ALLOWED,
        Message::new("warn", "?", ctx.t("method-not-allowed-title"))
            .paragraph(ctx.t("method-not-allowed-body"))
            .action(home, ctx.t("not-found-home"), true),
    );
    add_security_headers(&mut response);
    response
}

/// The page for a path that leads nowhere.
pub fn not_found_page(ctx: &Ctx) -> Response {
    let home = if ctx.user.is_some() {
        "/dashboard"
    } else {
        "/"
    };
    ctx.message(
        StatusCode::NOT_FOUND,
        Message::new("warn", "?", ctx.t("not-found-title"))
            .paragraph(ctx.t("not-found-body"))
            .action(home, ctx.t("not-found-home"), true),
    )
}

/// The API's caller for a signed-in browser, to call the functions shared
/// with the JSON API ([`crate::meshes`], [`crate::invites`]).
pub fn api_caller(user: &BrowserCaller) -> Caller {
    Caller {
        user: user.user.clone(),
        via: Via::Cookie(user.session.clone()),
    }
}

/// Adds the security headers to every page, redirect and asset.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(&mut response);
    response
}

fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
}

/// Everything a page handler needs to know about the request.
pub struct Ctx {
    pub lang: Lang,
    /// The signed-in browser, if any.
    pub user: Option<BrowserCaller>,
    state: AppState,
    remember_lang: bool,
    path: String,
    query: Vec<(String, String)>,
    origin: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    pre_session_token: Option<String>,
    new_pre_session_token: bool,
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
        let user = match auth::cookie(&parts.headers, auth::SESSION_COOKIE) {
            Some(raw) if !raw.is_empty() => auth::browser_session(state, raw).await.ok().flatten(),
            _ => None,
        };
        let pre_session_token = auth::cookie(&parts.headers, PRE_SESSION_COOKIE)
            .filter(|value| (16..=64).contains(&value.len()))
            .map(str::to_owned);
        Ok(Self {
            lang: negotiated.lang,
            user,
            state: state.clone(),
            remember_lang: negotiated.from_query,
            path: parts.uri.path().to_owned(),
            query: query.into_iter().filter(|(key, _)| key != "lang").collect(),
            origin: parts.headers.get(header::ORIGIN).cloned(),
            referer: parts.headers.get(header::REFERER).cloned(),
            pre_session_token,
            new_pre_session_token: false,
        })
    }
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
            &[("min", crate::accounts::MIN_PASSWORD_CHARS.into())],
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

    /// Accepts a signed-in form when it comes from our origin or carries the
    /// session's token: exactly [`auth::check_csrf`], the token from the body.
    pub fn check_form(&self, user: &BrowserCaller, token: &str) -> Result<(), PageError> {
        self.check_origin_or_token(&user.session, token)
    }

    /// The same rule for the sign-in and register forms, against the
    /// double-submit cookie instead of a session.
    pub fn check_pre_session_form(&self, token: &str) -> Result<(), PageError> {
        let expected = self
            .pre_session_token
            .clone()
            // No cookie: nothing can match, only the origin can pass.
            .unwrap_or_else(random_base32::<20>);
        let session = BrowserSession {
            id_hash: String::new(),
            csrf_token: expected,
        };
        self.check_origin_or_token(&session, token)
    }

    fn check_origin_or_token(
        &self,
        session: &BrowserSession,
        token: &str,
    ) -> Result<(), PageError> {
        let mut headers = HeaderMap::new();
        if let Some(origin) = &self.origin {
            headers.insert(header::ORIGIN, origin.clone());
        }
        if let Some(referer) = &self.referer {
            headers.insert(header::REFERER, referer.clone());
        }
        if !token.is_empty()
            && let Ok(value) = HeaderValue::from_str(token)
        {
            headers.insert(auth::CSRF_HEADER, value);
        }
        auth::check_csrf(&headers, &self.state, session).map_err(|_| {
            self.message(
                StatusCode::FORBIDDEN,
                Message::new("error", "!", self.t("csrf-title"))
                    .paragraph(self.t("csrf-body"))
                    .action(&self.path, self.t("csrf-retry"), true),
            )
            .into()
        })
    }

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
        let secure = if self.state.settings.secure_cookies {
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

    /// A page with one message: a result, a state of a code, an error.
    pub fn message(&self, status: StatusCode, message: Message) -> Response {
        self.render(
            status,
            &MessagePage {
                page: self,
                message: &message,
            },
        )
    }

    /// The page for an unexpected error (its details are already logged).
    pub fn fail(&self, err: AppError) -> Response {
        let status = err.status;
        let body = if status.is_server_error() {
            self.t("error-body-server")
        } else {
            self.t("error-body-request")
        };
        let mut response = self.message(
            status,
            Message::new("error", "!", self.t("error-title"))
                .paragraph(body)
                .action("/dashboard", self.t("nav-dashboard"), false),
        );
        err.set_retry_after(&mut response);
        response
    }

    /// The page for a form body that could not be read.
    pub fn bad_form(&self) -> Response {
        self.fail(AppError::bad_request("unreadable form"))
    }
}

/// The content of a message page.
pub struct Message {
    /// `ok`, `warn`, `error` or `info`: the card's colour.
    pub tone: &'static str,
    pub icon: &'static str,
    pub title: String,
    /// HTML: text escaped by [`Message::paragraph`], or markup built from
    /// escaped parts ([`Ctx::t_with_code`]) by [`Message::paragraph_html`].
    pub paragraphs: Vec<String>,
    pub actions: Vec<Action>,
    /// Show the field to type a code from the terminal.
    pub code_field: bool,
}

pub struct Action {
    pub href: String,
    pub label: String,
    pub primary: bool,
}

impl Message {
    pub fn new(tone: &'static str, icon: &'static str, title: String) -> Self {
        Self {
            tone,
            icon,
            title,
            paragraphs: Vec::new(),
            actions: Vec::new(),
            code_field: false,
        }
    }

    pub fn paragraph(mut self, text: String) -> Self {
        self.paragraphs.push(html_escape(&text));
        self
    }

    /// A paragraph that is already HTML (from [`Ctx::t_with_code`]).
    pub fn paragraph_html(mut self, html: String) -> Self {
        self.paragraphs.push(html);
        self
    }

    pub fn action(mut self, href: &str, label: String, primary: bool) -> Self {
        self.actions.push(Action {
            href: href.to_owned(),
            label,
            primary,
        });
        self
    }

    pub fn with_code_field(mut self) -> Self {
        self.code_field = true;
        self
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    page: &'a Ctx,
    message: &'a Message,
}

/// Where to go after signing in: `next` if it is a path on this site,
/// otherwise the dashboard. A path must start with exactly one `/` (not `//`
/// or `/\`, which browsers read as another host), and only printable ASCII
/// without backslashes is kept (browsers drop tabs and newlines, and read
/// `\` as `/`).
pub fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/dashboard";
    let Some(next) = next else {
        return HOME.to_owned();
    };
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next.to_owned()
    } else {
        HOME.to_owned()
    }
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `2026-11-23 19:05 UTC`: a time in a form every language reads.
pub fn format_time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Epoch milliseconds of an RFC 3339 time from the API's wire types.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
}

/// [`format_time`] of an RFC 3339 time from the API's wire types (as given
/// if it does not parse).
pub fn format_rfc3339(text: &str) -> String {
    parse_rfc3339(text).map_or_else(|| text.to_owned(), format_time)
}

/// `19:05:33 UTC`.
pub fn format_clock(ms: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// `m:ss` of a number of seconds.
pub fn format_countdown(seconds: i64) -> String {
    let seconds = seconds.max(0);
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        for good in ["/dashboard", "/cli-auth?code=BCDF-GHJK", "/"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "javascript:alert(1)",
            "evil.com",
            "/\t/evil.com",
            "/ /evil.com",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }

    #[test]
    fn api_paths_are_told_apart_from_pages() {
        for api in ["/api", "/api/nope", "/oauth/token", "/oauth"] {
            assert!(is_api_path(api), "{api}");
        }
        for page in ["/dashboard/nope", "/apis", "/oauthx", "/", "/i/x"] {
            assert!(!is_api_path(page), "{page}");
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(
            percent_encode("/cli-auth?code=AB CD&x=é"),
            "%2Fcli-auth%3Fcode%3DAB%20CD%26x%3D%C3%A9"
        );
    }

    #[test]
    fn times_read_the_same_in_every_language() {
        assert_eq!(format_time(1_795_000_000_999), "2026-11-18 11:06 UTC");
        assert_eq!(format_clock(1_795_000_000_999), "11:06:40 UTC");
        assert_eq!(
            format_rfc3339("2026-11-18T11:06:40.999Z"),
            "2026-11-18 11:06 UTC"
        );
        assert_eq!(format_rfc3339("not a time"), "not a time");
        assert_eq!(format_countdown(587), "9:47");
        assert_eq!(format_countdown(-5), "0:00");
    }
}
