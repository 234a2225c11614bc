//! A registered account and what it does from its signed-in browser.

use claudemesh_api::wire::{CreatedPat, UserSummary};
use reqwest::cookie::Jar;
use serde_json::{Value, json};
use std::sync::Arc;

/// A registered account with a signed-in browser. Clones share the browser
/// (and its cookies).
#[derive(Clone)]
pub struct TestUser {
    pub user: UserSummary,
    pub email: String,
    pub password: String,
    /// Cookie-carrying client with this site's Origin; follows redirects.
    pub browser: reqwest::Client,
    /// The browser's cookies (the session among them), for another client
    /// that should be signed in as this account, such as one that does not
    /// follow redirects.
    pub cookies: Arc<Jar>,
    pub(crate) base_url: String,
}

/// `(status, body)` of a request (`Value::Null` for a body that is no JSON).
pub(crate) async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl TestUser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Approves a device code from the signed-in browser.
    pub async fn approve(&self, user_code: &str) -> reqwest::Response {
        self.browser
            .post(self.url(&format!("/api/auth/cli/device-code/{user_code}/approve")))
            .send()
            .await
            .expect("approve request")
    }

    pub async fn deny(&self, user_code: &str) -> reqwest::Response {
        self.browser
            .post(self.url(&format!("/api/auth/cli/device-code/{user_code}/deny")))
            .send()
            .await
            .expect("deny request")
    }

    /// Creates a PAT from the browser session. `expires_in_days`: `None` for
    /// the default, `Some(Value::Null)` for never.
    pub async fn create_pat(&self, name: &str, expires_in_days: Option<Value>) -> CreatedPat {
        let mut body = json!({ "name": name });
        if let Some(days) = expires_in_days {
            body["expires_in_days"] = days;
        }
        let response = self
            .browser
            .post(self.url("/api/my/cli/tokens"))
            .json(&body)
            .send()
            .await
            .expect("create PAT request");
        assert_eq!(response.status(), 201, "create PAT");
        response.json().await.expect("created PAT body")
    }

    /// Removes `member` (a member id, or `me` to leave) from the mesh
    /// `slug`, as the mesh page does: `(status, body)`.
    pub async fn remove_member(&self, slug: &str, member: &str) -> (u16, Value) {
        let path = format!("/api/my/meshes/{slug}/members/{member}");
        send(self.browser.delete(self.url(&path))).await
    }
}
