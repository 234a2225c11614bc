//! A page with one message (a result, the state of a code, an error): its
//! content, built by the handlers, rendered by [`Ctx::message`]; and the
//! error pages made of one ([`Ctx::fail`], [`Ctx::bad_form`]).

use super::ctx::Ctx;
use crate::http::error::AppError;
use crate::text::format::html_escape;
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

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
    pub page: &'a Ctx,
    pub message: &'a Message,
}

impl Ctx {
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
