//! The confirmation step before something that cannot be undone (revoking a
//! token or a session, removing a member, revoking an invite): a GET never
//! changes anything; the page's form posts `hidden` and the CSRF token to
//! `action`. Shared by the tokens page and the mesh page.

use super::ctx::Ctx;
use askama::Template;

#[derive(Template)]
#[template(path = "confirm.html")]
pub(super) struct ConfirmPage<'a> {
    pub page: &'a Ctx,
    pub action: String,
    pub back: String,
    pub hidden: Vec<(&'static str, String)>,
    pub title: String,
    pub label: String,
    pub body: String,
    pub confirm: String,
}
