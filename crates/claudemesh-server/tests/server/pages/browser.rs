//! The "browser" the page tests drive: a cookie-keeping HTTP client that
//! never follows redirects, the pages it reads, and the steps many tests share
//! (signing up, starting a CLI login, making meshes and invites).

pub use claudemesh_testkit::{DEFAULT_PASSWORD, Engine, TestServer, TestUser};
pub use reqwest::header::{self, HeaderMap, HeaderValue};
pub use serde_json::{Value, json};
pub use std::time::Duration;

use crate::api::support::{self, send};
use reqwest::cookie::Jar;
use std::sync::Arc;

/// An origin that is not ours.
pub const EVIL: &str = "https://evil.example";

/// A browser: keeps cookies, never follows redirects, optionally claims an
/// `Origin` on every request.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

/// One answer, read whole.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    /// The HTML as sent.
    pub raw: String,
    /// The HTML with character references decoded, for reading text.
    pub body: String,
}

/// Decodes the character references askama writes.
pub fn decode(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').filter(|end| *end <= 8);
        let decoded = end.and_then(|end| match &rest[1..end] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            entity => {
                let number = entity.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (decoded, end) {
            (Some(ch), Some(end)) => {
                out.push(ch);
                rest = &rest[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The CSRF token of the page's first form that has one.
    pub fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("the page has a CSRF field") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }

    /// Whether the page's text (references decoded) contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// Whether the HTML as sent contains `html`.
    pub fn raw_contains(&self, html: &str) -> bool {
        self.raw.contains(html)
    }
}

impl Browser {
    pub fn new(server: &TestServer, origin: Option<&str>) -> Self {
        Self::with_cookies(server, origin, Arc::default())
    }

    /// A browser keeping its cookies in `cookies`.
    fn with_cookies(server: &TestServer, origin: Option<&str>, cookies: Arc<Jar>) -> Self {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        let client = reqwest::Client::builder()
            .cookie_provider(cookies)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            client,
            base: server.base_url.clone(),
        }
    }

    /// The browser `user` is signed in on (its cookies), on this site.
    pub fn of(server: &TestServer, user: &TestUser) -> Self {
        Self::with_cookies(server, Some(&server.base_url), user.cookies.clone())
    }

    /// A browser on this site, signed in to a new account.
    pub async fn signed_in(server: &TestServer, name: &str) -> (Self, String) {
        let origin = server.base_url.clone();
        Self::signed_in_from(server, name, Some(&origin)).await
    }

    /// A signed-in browser whose requests claim `origin` (the account is
    /// made through the JSON API, which needs no origin).
    pub async fn signed_in_from(
        server: &TestServer,
        name: &str,
        origin: Option<&str>,
    ) -> (Self, String) {
        let user = server.register(name).await;
        let browser = Self::with_cookies(server, origin, user.cookies.clone());
        (browser, user.email)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn read(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.text().await.unwrap();
        Page {
            status,
            headers,
            body: decode(&raw),
            raw,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn get_with(&self, path: &str, name: header::HeaderName, value: &str) -> Page {
        let response = self
            .client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .unwrap();
        Self::read(response).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::read(
            self.client
                .post(self.url(path))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Opens the approval card for `user_code` and answers it, as a person
    /// clicking Approve or Deny does (with the card's CSRF token).
    pub async fn decide_on_card(&self, user_code: &str, decision: &str) -> Page {
        let card = self.get(&format!("/cli-auth?code={user_code}")).await;
        self.decide(&card, user_code, decision).await
    }

    /// Answers `user_code` with the form of `card`, a page opened earlier
    /// (its CSRF token).
    pub async fn decide(&self, card: &Page, user_code: &str, decision: &str) -> Page {
        self.post(
            "/cli-auth",
            &[
                ("code", user_code),
                ("decision", decision),
                ("csrf", &card.csrf()),
            ],
        )
        .await
    }

    /// A CLI login approved on this browser's card: the session token the
    /// CLI's poll gets.
    pub async fn approved_cli_session(&self, server: &TestServer) -> String {
        let (device_code, user_code) = start_login(server).await;
        self.decide_on_card(&user_code, "approve").await;
        poll(server, &device_code).await["token"]
            .as_str()
            .expect("the poll after the approval has the token")
            .to_owned()
    }

    /// Registers on the page's form (no `next`): the answer.
    pub async fn register_on_page(&self, name: &str, email: &str) -> Page {
        let form = self.get("/register").await;
        self.post(
            "/register",
            &[
                ("name", name),
                ("email", email),
                ("password", DEFAULT_PASSWORD),
                ("csrf", &form.csrf()),
            ],
        )
        .await
    }

    /// `GET path` with a bearer token, as the CLI does: `(status, body)`.
    pub async fn api_with_token(&self, token: &str, path: &str) -> (u16, Value) {
        send(
            reqwest::Client::new()
                .get(self.url(path))
                .bearer_auth(token),
        )
        .await
    }
}

/// Starts a CLI login as the CLI does: `(device_code, user_code)`.
pub async fn start_login(server: &TestServer) -> (String, String) {
    let body: Value = server
        .anonymous()
        .post(server.url("/api/auth/cli/device-code"))
        .json(&json!({ "device_name": "Ana's <MacBook>", "device_os": "darwin", "device_arch": "arm64" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["device_code"].as_str().unwrap().to_owned(),
        body["user_code"].as_str().unwrap().to_owned(),
    )
}

/// Polls once, the poll interval after the last: the answer's body.
pub async fn poll(server: &TestServer, device_code: &str) -> Value {
    support::wait_poll_interval(server);
    support::poll(server, device_code).await.1
}

/// Extracts the token shown on the page after generating one.
pub fn shown_token(page: &Page) -> String {
    let start = page
        .body
        .find("cm_pat_")
        .expect("the new token is on the page");
    let len = page.body[start..].find('"').unwrap();
    page.body[start..start + len].to_owned()
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A random ed25519-shaped public key (64 hex characters).
pub fn random_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    data_encoding::HEXLOWER.encode(&bytes)
}

impl Browser {
    /// A JSON request to the API with this browser's session, carrying the
    /// session's CSRF token (so it works whatever Origin the browser claims).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let csrf = self.get("/dashboard").await.csrf();
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("x-csrf-token", csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// Creates a mesh over the JSON API, as the CLI does: its slug.
    pub async fn create_mesh(&self, name: &str) -> String {
        let (status, mesh) = self
            .api(
                reqwest::Method::POST,
                "/api/my/meshes",
                Some(json!({ "name": name, "public_key": random_key() })),
            )
            .await;
        assert_eq!(status, 201, "{mesh}");
        mesh["slug"].as_str().unwrap().to_owned()
    }

    /// Creates an invite over the JSON API: `{ code, url, … }`.
    pub async fn api_invite(&self, slug: &str, body: Value) -> Value {
        let (status, invite) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/my/meshes/{slug}/invites"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{invite}");
        invite
    }

    /// The mesh's invites over the JSON API.
    pub async fn api_invites(&self, slug: &str) -> Vec<Value> {
        let (status, list) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/my/meshes/{slug}/invites"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        list["invites"].as_array().unwrap().clone()
    }

    /// The mesh over the JSON API: `(status, detail)`.
    pub async fn api_mesh(&self, slug: &str) -> (u16, Value) {
        self.api(
            reqwest::Method::GET,
            &format!("/api/my/meshes/{slug}"),
            None,
        )
        .await
    }

    /// Creates an invite with the page's form.
    pub async fn invite_on_page(&self, slug: &str, form: &[(&str, &str)]) -> Page {
        let page = self.get(&format!("/dashboard/meshes/{slug}")).await;
        let csrf = page.csrf();
        let mut fields = form.to_vec();
        fields.push(("csrf", &csrf));
        self.post(&format!("/dashboard/meshes/{slug}/invites"), &fields)
            .await
    }

    /// Accepts an invite with the page's form.
    pub async fn accept_on_page(&self, code: &str) -> Page {
        let page = self.get(&format!("/i/{code}")).await;
        assert!(page.contains("Accept and join"), "{}", page.body);
        self.post(&format!("/i/{code}"), &[("csrf", &page.csrf())])
            .await
    }
}

impl Page {
    /// The link shown after creating an invite on the mesh page.
    pub fn new_invite_url(&self) -> String {
        let marker = r#"id="new-invite-url" class="token-value" readonly value=""#;
        let start = self.body.find(marker).expect("a new invite link") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }

    /// The `<h1>` text.
    pub fn title(&self) -> String {
        let start = self.body.find("<h1").expect("a title");
        let start = start + self.body[start..].find('>').unwrap() + 1;
        let len = self.body[start..].find("</h1>").unwrap();
        self.body[start..start + len].trim().to_owned()
    }
}

pub fn code_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}
