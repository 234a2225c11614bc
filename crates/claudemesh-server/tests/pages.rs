//! The browser pages over real HTTP: sign-in and register, `/cli-auth`, the
//! dashboard and its tokens page, CSRF and redirect safety, security headers,
//! languages. Servers come from the testkit (real router, random port, fresh
//! database, frozen clock); the "browser" is a cookie-keeping HTTP client that
//! does not follow redirects, so each test sees every `Location`.

use claudemesh_testkit::{DEFAULT_PASSWORD, Engine, TestServer};
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::time::Duration;

const EVIL: &str = "https://evil.example";

/// A browser: keeps cookies, never follows redirects, optionally claims an
/// `Origin` on every request.
struct Browser {
    client: reqwest::Client,
    base: String,
}

/// One answer, read whole.
struct Page {
    status: u16,
    headers: HeaderMap,
    /// The HTML as sent.
    raw: String,
    /// The HTML with character references decoded, for reading text.
    body: String,
}

/// Decodes the character references askama writes.
fn decode(html: &str) -> String {
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
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The CSRF token of the page's first form that has one.
    fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("the page has a CSRF field") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }

    /// Whether the page's text (references decoded) contains `text`.
    fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// Whether the HTML as sent contains `html`.
    fn raw_contains(&self, html: &str) -> bool {
        self.raw.contains(html)
    }
}

impl Browser {
    fn new(server: &TestServer, origin: Option<&str>) -> Self {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            client,
            base: server.base_url.clone(),
        }
    }

    /// A browser on this site, signed in to a new account.
    async fn signed_in(server: &TestServer, name: &str) -> (Self, String) {
        let origin = server.base_url.clone();
        Self::signed_in_from(server, name, Some(&origin)).await
    }

    /// A signed-in browser whose requests claim `origin` (the account is
    /// made through the JSON API, which needs no origin).
    async fn signed_in_from(
        server: &TestServer,
        name: &str,
        origin: Option<&str>,
    ) -> (Self, String) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let email = format!(
            "{}.{}@example.com",
            name.to_lowercase().replace(' ', "."),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let browser = Self::new(server, origin);
        let response = browser
            .client
            .post(browser.url("/api/auth/register"))
            .json(&json!({ "email": email, "password": DEFAULT_PASSWORD, "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        (browser, email)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn read(response: reqwest::Response) -> Page {
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

    async fn get(&self, path: &str) -> Page {
        Self::read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    async fn get_with(&self, path: &str, name: header::HeaderName, value: &str) -> Page {
        let response = self
            .client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .unwrap();
        Self::read(response).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
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

    /// `GET path` with a bearer token, as the CLI does: `(status, body)`.
    async fn api_with_token(&self, token: &str, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Starts a CLI login as the CLI does: `(device_code, user_code)`.
async fn start_login(server: &TestServer) -> (String, String) {
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

async fn poll(server: &TestServer, device_code: &str) -> Value {
    server.clock.advance(Duration::from_millis(1_500));
    server
        .anonymous()
        .get(server.url(&format!("/api/auth/cli/device-code/{device_code}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Extracts the token shown on the page after generating one.
fn shown_token(page: &Page) -> String {
    let start = page
        .body
        .find("cm_pat_")
        .expect("the new token is on the page");
    let len = page.body[start..].find('"').unwrap();
    page.body[start..start + len].to_owned()
}

// ------------------------------------------------------------------ headers

#[tokio::test]
async fn every_page_sends_the_security_headers() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let anonymous = Browser::new(&server, None);
    let slug = alice.create_mesh("Team").await;
    let code = alice.api_invite(&slug, json!({})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let pages = [
        anonymous.get("/login").await,
        anonymous.get("/register").await,
        anonymous.get("/dashboard").await,
        anonymous.get("/static/app.css").await,
        alice.get("/dashboard").await,
        alice.get("/cli-auth").await,
        alice.get("/dashboard/settings/cli-tokens").await,
        alice.post("/logout", &[("csrf", "wrong")]).await,
        alice.get(&format!("/dashboard/meshes/{slug}")).await,
        anonymous.get(&format!("/i/{code}")).await,
        anonymous.get("/i/nope").await,
        anonymous.get("/dashboard/nope").await,
    ];
    for page in &pages {
        let csp = page.header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{csp:?} lacks {directive:?}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(page.header("x-content-type-options"), "nosniff");
        assert_eq!(page.header("referrer-policy"), "same-origin");
    }
    assert_eq!(pages[4].header("cache-control"), "no-store");
    assert!(pages[3].header("content-type").starts_with("text/css"));
}

#[tokio::test]
async fn pages_have_no_inline_script_or_style() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (_, user_code) = start_login(&server).await;
    let token_page = alice.get("/dashboard/settings/cli-tokens").await;
    let created = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[
                ("name", "ci"),
                ("expiry", "30"),
                ("csrf", &token_page.csrf()),
            ],
        )
        .await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice
        .invite_on_page(
            &slug,
            &[
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
            ],
        )
        .await;
    let code = code_of(&invite.new_invite_url());
    for page in [
        alice.get(&format!("/cli-auth?code={user_code}")).await,
        created,
        alice.get("/dashboard").await,
        Browser::new(&server, None).get("/login").await,
        invite,
        alice.get(&format!("/dashboard/meshes/{slug}")).await,
        Browser::new(&server, None).get(&format!("/i/{code}")).await,
        alice.get(&format!("/i/{code}")).await,
    ] {
        assert!(!page.raw_contains("<script>"), "inline script");
        assert!(!page.raw_contains("style="), "inline style");
        assert!(!page.raw_contains("onclick"), "inline handler");
    }
}

// ------------------------------------------------------- sign in, register

#[tokio::test]
async fn registering_in_the_browser_signs_in_and_opens_the_dashboard() {
    let server = TestServer::start(Engine::Sqlite).await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let form = browser.get("/register").await;
    assert_eq!(form.status, 200);
    assert!(
        form.set_cookies()
            .iter()
            .any(|c| c.starts_with("cm_csrf=") && c.contains("HttpOnly"))
    );
    let done = browser
        .post(
            "/register",
            &[
                ("name", "Ana García"),
                ("email", "ana@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("next", ""),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/dashboard");
    let session = done
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("cm_sid="))
        .unwrap()
        .to_owned();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain http: not Secure");
    let dashboard = browser.get("/dashboard").await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.contains("Ana García"));
    assert!(dashboard.contains("/dashboard/settings/cli-tokens"));
    assert!(
        dashboard.contains(r#"action="/logout""#),
        "a sign-out button"
    );

    // The same email again is refused with a way to sign in.
    let again = Browser::new(&server, Some(&server.base_url));
    let form = again.get("/register").await;
    let taken = again
        .post(
            "/register",
            &[
                ("name", "Other"),
                ("email", "ANA@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(taken.status, 409);
    assert!(taken.contains("already exists"));
}

#[tokio::test]
async fn register_explains_each_bad_field() {
    let server = TestServer::start(Engine::Sqlite).await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let form = browser.get("/register").await;
    let page = browser
        .post(
            "/register",
            &[
                ("name", " "),
                ("email", "not-an-email"),
                ("password", "short"),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.contains("Enter a name"));
    assert!(page.contains("not a valid email"));
    assert!(page.contains("at least 8 characters"));
    assert!(
        page.contains(r#"value="not-an-email""#),
        "the form keeps what was typed"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_read_the_same() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (_, email) = Browser::signed_in(&server, "Alice").await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let form = browser.get("/login").await;
    let wrong_password = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", "not the password"),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    let unknown_email = browser
        .post(
            "/login",
            &[
                ("email", "nobody@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_email.status, 401);
    assert!(wrong_password.contains("Wrong email or password."));
    assert!(unknown_email.contains("Wrong email or password."));
    assert!(
        !wrong_password.contains(DEFAULT_PASSWORD) && !wrong_password.contains("not the password")
    );

    let ok = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", DEFAULT_PASSWORD),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location(), "/dashboard");
    assert_eq!(browser.get("/dashboard").await.status, 200);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let dashboard = alice.get("/dashboard").await;
    let out = alice.post("/logout", &[("csrf", &dashboard.csrf())]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/login?notice=signed-out");
    assert!(
        out.set_cookies()
            .iter()
            .any(|c| c.starts_with("cm_sid=;") && c.contains("Max-Age=0"))
    );
    let after = alice.get("/dashboard").await;
    assert_eq!(after.status, 303);
    assert!(after.location().starts_with("/login?next="));
    assert!(
        alice
            .get("/login?notice=signed-out")
            .await
            .contains("You are signed out.")
    );
}

#[tokio::test]
async fn sign_in_goes_back_only_to_a_page_of_this_site() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (_, email) = Browser::signed_in(&server, "Alice").await;
    for evil in [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "\\/evil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
    ] {
        let browser = Browser::new(&server, Some(&server.base_url));
        let form = browser
            .get(&format!("/login?next={}", urlencode(evil)))
            .await;
        assert!(
            form.contains(r#"name="next" value="/dashboard""#),
            "{evil:?} is dropped from the form"
        );
        let done = browser
            .post(
                "/login",
                &[
                    ("email", &email),
                    ("password", DEFAULT_PASSWORD),
                    ("next", evil),
                    ("csrf", &form.csrf()),
                ],
            )
            .await;
        assert_eq!(done.status, 303);
        assert_eq!(done.location(), "/dashboard", "next={evil:?}");
        // Already signed in: the login page redirects at once, still locally.
        let signed_in = browser
            .get(&format!("/login?next={}", urlencode(evil)))
            .await;
        assert_eq!(signed_in.location(), "/dashboard", "next={evil:?}");
    }
    let browser = Browser::new(&server, Some(&server.base_url));
    let form = browser
        .get("/login?next=%2Fcli-auth%3Fcode%3DBCDF-GHJK")
        .await;
    let done = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", DEFAULT_PASSWORD),
                ("next", "/cli-auth?code=BCDF-GHJK"),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(done.location(), "/cli-auth?code=BCDF-GHJK");
}

fn urlencode(text: &str) -> String {
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

// -------------------------------------------------------------------- CSRF

#[tokio::test]
async fn a_form_from_another_site_is_refused_without_the_token() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (evil, _) = Browser::signed_in_from(&server, "Alice", Some(EVIL)).await;

    let refused = evil
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", "stolen"), ("expiry", "30")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.contains("Request refused"));
    let wrong = evil
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", "stolen"), ("expiry", "30"), ("csrf", "guess")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert!(
        !evil
            .get("/dashboard/settings/cli-tokens")
            .await
            .contains("stolen"),
        "nothing was created"
    );

    // The page's own token passes even with a foreign Origin (the API's rule).
    let form = evil.get("/dashboard/settings/cli-tokens").await;
    let created = evil
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", "mine"), ("expiry", "30"), ("csrf", &form.csrf())],
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(created.contains("cm_pat_"));

    // Approving and signing out are guarded the same way.
    let (device_code, user_code) = start_login(&server).await;
    let approve = evil
        .post(
            "/cli-auth",
            &[("code", &user_code), ("decision", "approve")],
        )
        .await;
    assert_eq!(approve.status, 403);
    assert_eq!(poll(&server, &device_code).await["status"], "pending");
    assert_eq!(evil.post("/logout", &[]).await.status, 403);
    assert_eq!(evil.get("/dashboard").await.status, 200, "still signed in");
}

#[tokio::test]
async fn a_form_with_no_origin_and_no_token_is_refused() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (browser, _) = Browser::signed_in_from(&server, "Alice", None).await;
    let refused = browser
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", "x"), ("expiry", "30")],
        )
        .await;
    assert_eq!(refused.status, 403);
    // Our own Referer is enough, like the API.
    let page = browser
        .client
        .post(browser.url("/dashboard/settings/cli-tokens"))
        .header(
            header::REFERER,
            format!("{}/dashboard/settings/cli-tokens", server.base_url),
        )
        .form(&[("name", "x"), ("expiry", "30")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 201);
}

#[tokio::test]
async fn sign_in_from_another_site_needs_the_form_cookie() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (_, email) = Browser::signed_in(&server, "Alice").await;
    let evil = Browser::new(&server, Some(EVIL));
    let credentials = [("email", email.as_str()), ("password", DEFAULT_PASSWORD)];
    let refused = evil.post("/login", &credentials).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("cm_sid="))
    );
    let refused = evil
        .post(
            "/register",
            &[
                ("name", "X"),
                ("email", "x@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("csrf", "made-up-token-123456"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    // With the double-submit cookie from our own form, it works.
    let form = evil.get("/login").await;
    let ok = evil
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", DEFAULT_PASSWORD),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
}

// ---------------------------------------------------------------- cli-auth

#[tokio::test]
async fn cli_auth_sends_a_signed_out_browser_to_sign_in_and_back() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (_, email) = Browser::signed_in(&server, "Alice").await;
    let (_, user_code) = start_login(&server).await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let page = browser.get(&format!("/cli-auth?code={user_code}")).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location(),
        format!("/login?next=%2Fcli-auth%3Fcode%3D{user_code}")
    );
    let login = browser.get(page.location()).await;
    assert!(login.contains("approve the login from your terminal"));
    assert!(login.contains(&format!(
        r#"name="next" value="/cli-auth?code={user_code}""#
    )));
    let done = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", DEFAULT_PASSWORD),
                ("next", &format!("/cli-auth?code={user_code}")),
                ("csrf", &login.csrf()),
            ],
        )
        .await;
    assert_eq!(done.location(), format!("/cli-auth?code={user_code}"));
    let card = browser.get(done.location()).await;
    assert_eq!(card.status, 200);
    assert!(card.contains(&user_code));
}

#[tokio::test]
async fn the_approval_card_shows_the_request_and_get_never_approves() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    server.clock.advance(Duration::from_secs(13));
    // The code as a person might type it: any case, no dash.
    let card = alice
        .get(&format!(
            "/cli-auth?code={}",
            user_code.to_lowercase().replace('-', "")
        ))
        .await;
    assert_eq!(card.status, 200, "{}", card.body);
    assert!(card.contains("Link this CLI session?"));
    assert!(card.contains(&user_code), "the code, formatted");
    assert!(
        card.contains("Ana's <MacBook></span> · darwin · arm64"),
        "{}",
        card.body
    );
    assert!(
        !card.raw_contains("<MacBook>"),
        "the device name is escaped"
    );
    assert!(card.contains("13 seconds ago"), "{}", card.body);
    assert!(card.contains("127.0.0.1"));
    assert!(card.contains("same as the request"));
    assert!(card.contains("Approve only if you just ran <code>claudemesh login</code> yourself"));
    assert!(
        card.contains(r#"data-remaining="587""#) && card.contains(">9:47<"),
        "the countdown"
    );
    assert!(card.contains(r#"<script src="/static/countdown.js" defer></script>"#));
    assert!(card.contains(r#"value="approve""#) && card.contains(r#"value="deny""#));
    assert!(card.contains(&format!(r#"name="csrf" value="{}""#, card.csrf())));
    assert!(
        !card.contains(&device_code),
        "the device code is the CLI's secret"
    );
    for _ in 0..3 {
        let again = alice.get(&format!("/cli-auth?code={user_code}")).await;
        assert_eq!(again.status, 200);
        assert_eq!(poll(&server, &device_code).await["status"], "pending");
    }
    // HEAD and an approve-looking query change nothing either.
    alice
        .client
        .head(alice.url(&format!("/cli-auth?code={user_code}&decision=approve")))
        .send()
        .await
        .unwrap();
    alice
        .get(&format!("/cli-auth?code={user_code}&decision=approve"))
        .await;
    assert_eq!(poll(&server, &device_code).await["status"], "pending");
}

#[tokio::test]
async fn approving_on_the_page_logs_the_cli_in() {
    cli_auth_approve_and_deny(Engine::Sqlite).await;
}

#[tokio::test]
async fn approving_on_the_page_logs_the_cli_in_on_postgres() {
    cli_auth_approve_and_deny(Engine::Postgres).await;
}

async fn cli_auth_approve_and_deny(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    let card = alice.get(&format!("/cli-auth?code={user_code}")).await;
    let done = alice
        .post(
            "/cli-auth",
            &[
                ("code", &user_code),
                ("decision", "approve"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/cli-auth/approved");
    let result = alice.get(done.location()).await;
    assert!(result.contains("✓ CLI authenticated. Return to your terminal."));
    let polled = poll(&server, &device_code).await;
    assert_eq!(polled["status"], "approved");
    let token = polled["token"].as_str().unwrap().to_owned();
    let (status, _) = alice.api_with_token(&token, "/api/my/whoami").await;
    assert_eq!(status, 200);
    // The new session is listed with its device.
    let tokens = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(tokens.contains("Ana's <MacBook> · darwin · arm64"));

    let (device_code, user_code) = start_login(&server).await;
    let card = alice.get(&format!("/cli-auth?code={user_code}")).await;
    let done = alice
        .post(
            "/cli-auth",
            &[
                ("code", &user_code),
                ("decision", "deny"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    assert_eq!(done.location(), "/cli-auth/denied");
    assert!(
        alice
            .get(done.location())
            .await
            .contains("Login request denied")
    );
    assert_eq!(poll(&server, &device_code).await["status"], "denied");
}

#[tokio::test]
async fn each_state_of_a_code_has_its_own_page() {
    code_state_pages(Engine::Sqlite).await;
}

#[tokio::test]
async fn each_state_of_a_code_has_its_own_page_on_postgres() {
    code_state_pages(Engine::Postgres).await;
}

async fn code_state_pages(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;

    let no_code = alice.get("/cli-auth").await;
    assert_eq!(no_code.status, 200);
    assert!(no_code.contains("Enter the code from your terminal"));
    assert!(no_code.contains(r#"name="code""#));

    let unknown = alice.get("/cli-auth?code=BCDF-GHJK").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.contains("Unknown code"));
    assert!(
        unknown.contains(r#"name="code""#),
        "a field to type it again"
    );
    let garbage = alice.get("/cli-auth?code=%3Cscript%3E").await;
    assert_eq!(garbage.status, 404);
    assert!(!garbage.raw_contains("<script>"));

    let (_, expiring) = start_login(&server).await;
    let (_, used) = start_login(&server).await;
    let card = alice.get(&format!("/cli-auth?code={used}")).await;
    alice
        .post(
            "/cli-auth",
            &[
                ("code", &used),
                ("decision", "approve"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    let already = alice.get(&format!("/cli-auth?code={used}")).await;
    assert_eq!(already.status, 409);
    assert!(already.contains("This code was already used"));
    assert!(already.contains("already been approved"));
    let twice = alice
        .post(
            "/cli-auth",
            &[
                ("code", &used),
                ("decision", "deny"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    assert_eq!(twice.status, 409);

    let card = alice.get(&format!("/cli-auth?code={expiring}")).await;
    server.clock.advance(Duration::from_secs(11 * 60));
    let expired = alice.get(&format!("/cli-auth?code={expiring}")).await;
    assert_eq!(expired.status, 410);
    assert!(expired.contains("This code has expired"));
    assert!(expired.contains("Run claudemesh login again"));
    // A card left open past expiry cannot approve.
    let late = alice
        .post(
            "/cli-auth",
            &[
                ("code", &expiring),
                ("decision", "approve"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    assert_eq!(late.status, 410);
    assert!(late.contains("This code has expired"));

    // Guessing: after 10 unknown codes the account is stopped for a while.
    for _ in 0..10 {
        alice.get("/cli-auth?code=ZZZZ-ZZZZ").await;
    }
    let limited = alice.get("/cli-auth?code=ZZZZ-ZZZZ").await;
    assert_eq!(limited.status, 429);
    assert!(limited.contains("Too many wrong codes"));
    assert!(limited.contains("Wait 15 minutes"));
    assert!(!limited.header("retry-after").is_empty());
}

// ------------------------------------------------------------- dashboard

#[tokio::test]
async fn dashboard_needs_a_session() {
    let server = TestServer::start(Engine::Sqlite).await;
    let anonymous = Browser::new(&server, None);
    for path in [
        "/dashboard",
        "/dashboard/settings/cli-tokens",
        "/dashboard/settings/password",
    ] {
        let page = anonymous.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(
            page.location(),
            format!("/login?next={}", urlencode(path).replace("%2D", "-"))
        );
    }
    assert_eq!(anonymous.get("/").await.location(), "/login");
}

#[tokio::test]
async fn a_token_made_on_the_page_is_shown_once_and_revoking_it_stops_it() {
    tokens_page_flow(Engine::Sqlite).await;
}

#[tokio::test]
async fn a_token_made_on_the_page_is_shown_once_and_revoking_it_stops_it_on_postgres() {
    tokens_page_flow(Engine::Postgres).await;
}

async fn tokens_page_flow(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let page = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(page.contains("No personal access tokens yet."));
    for option in [
        r#"value="30""#,
        r#"value="90""#,
        r#"value="365" selected"#,
        r#"value="never""#,
    ] {
        assert!(page.contains(option), "{option}");
    }
    let created = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[
                ("name", "ci-deploy"),
                ("expiry", "never"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(created.contains("This token will not be shown again"));
    assert!(created.contains(r#"data-copy="new-token""#));
    assert_eq!(created.header("cache-control"), "no-store");
    let token = shown_token(&created);
    let (status, me) = alice.api_with_token(&token, "/api/my/whoami").await;
    assert_eq!(status, 200);
    assert_eq!(me["credential"]["token"]["name"], "ci-deploy");
    assert_eq!(
        me["credential"]["token"]["expires_at"],
        Value::Null,
        "never expires"
    );

    let listed = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(listed.contains("ci-deploy"));
    assert!(!listed.contains(&token), "shown once only");
    let revoke_link = {
        let start = listed
            .body
            .find("/dashboard/settings/cli-tokens/revoke?")
            .unwrap();
        let len = listed.body[start..].find('"').unwrap();
        listed.body[start..start + len].to_owned()
    };
    let confirm = alice.get(&revoke_link).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.contains("Revoke this token?"));
    assert!(confirm.contains("ci-deploy"));
    assert_eq!(
        alice.api_with_token(&token, "/api/my/whoami").await.0,
        200,
        "asking revokes nothing"
    );

    let id = me["credential"]["token"]["id"].as_str().unwrap();
    let done = alice
        .post(
            "/dashboard/settings/cli-tokens/revoke",
            &[("id", id), ("kind", "pat"), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location(),
        "/dashboard/settings/cli-tokens?notice=revoked"
    );
    assert!(alice.get(done.location()).await.contains("Revoked."));
    assert_eq!(alice.api_with_token(&token, "/api/my/whoami").await.0, 401);
    let again = alice
        .post(
            "/dashboard/settings/cli-tokens/revoke",
            &[("id", id), ("kind", "pat"), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(again.status, 404);
    assert!(again.contains("Nothing to revoke"));
}

#[tokio::test]
async fn a_cli_session_can_be_revoked_from_the_page() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    let card = alice.get(&format!("/cli-auth?code={user_code}")).await;
    alice
        .post(
            "/cli-auth",
            &[
                ("code", &user_code),
                ("decision", "approve"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    let token = poll(&server, &device_code).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = alice.get("/dashboard/settings/cli-tokens").await;
    let start = listed
        .body
        .find("/dashboard/settings/cli-tokens/revoke?kind=session")
        .unwrap();
    let len = listed.body[start..].find('"').unwrap();
    let confirm = alice.get(&listed.body[start..start + len]).await;
    assert!(confirm.contains("Sign out this CLI session?"));
    let id_marker = r#"name="id" value=""#;
    let id_start = confirm.body.find(id_marker).unwrap() + id_marker.len();
    let id = &confirm.body[id_start..id_start + confirm.body[id_start..].find('"').unwrap()];
    let done = alice
        .post(
            "/dashboard/settings/cli-tokens/revoke",
            &[("id", id), ("kind", "session"), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(alice.api_with_token(&token, "/api/my/whoami").await.0, 401);
}

#[tokio::test]
async fn someone_elses_token_cannot_be_revoked() {
    let server = TestServer::start(Engine::Sqlite).await;
    let bob = server.register("Bob").await;
    let pat = bob.create_pat("bobs", None).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let confirm = alice
        .get(&format!(
            "/dashboard/settings/cli-tokens/revoke?kind=pat&id={}",
            pat.info.id
        ))
        .await;
    assert_eq!(confirm.status, 404);
    let page = alice.get("/dashboard").await;
    let done = alice
        .post(
            "/dashboard/settings/cli-tokens/revoke",
            &[
                ("id", &pat.info.id),
                ("kind", "pat"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(done.status, 404);
    assert_eq!(
        alice.api_with_token(&pat.token, "/api/my/whoami").await.0,
        200
    );
}

#[tokio::test]
async fn generating_a_token_checks_name_and_expiry() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let page = alice.get("/dashboard/settings/cli-tokens").await;
    let bad = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", ""), ("expiry", "7"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.contains("Give the token a name"));
    assert!(bad.contains("Choose 30 days, 90 days, 1 year or never."));
    assert!(!bad.contains("cm_pat_"));
}

#[tokio::test]
async fn changing_the_password_on_the_page_signs_out_cli_sessions() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    let card = alice.get(&format!("/cli-auth?code={user_code}")).await;
    alice
        .post(
            "/cli-auth",
            &[
                ("code", &user_code),
                ("decision", "approve"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    let session = poll(&server, &device_code).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let form = alice.get("/dashboard/settings/password").await;
    let csrf = form.csrf();
    let wrong = alice
        .post(
            "/dashboard/settings/password",
            &[
                ("current_password", "nope nope nope"),
                ("new_password", "a new password"),
                ("repeat_password", "a new password"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.contains("The current password is wrong."));
    let mismatch = alice
        .post(
            "/dashboard/settings/password",
            &[
                ("current_password", DEFAULT_PASSWORD),
                ("new_password", "a new password"),
                ("repeat_password", "another one"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert!(mismatch.contains("not the same"));
    let done = alice
        .post(
            "/dashboard/settings/password",
            &[
                ("current_password", DEFAULT_PASSWORD),
                ("new_password", "a new password"),
                ("repeat_password", "a new password"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(done.status, 200);
    assert!(
        done.contains("One CLI session was signed out"),
        "{}",
        done.body
    );
    assert_eq!(
        alice.api_with_token(&session, "/api/my/whoami").await.0,
        401
    );
    assert_eq!(
        alice.get("/dashboard").await.status,
        200,
        "this browser stays signed in"
    );
}

// --------------------------------------------------------------- languages

#[tokio::test]
async fn spanish_by_query_then_cookie_then_accept_language() {
    let server = TestServer::start(Engine::Sqlite).await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let english = browser.get("/login").await;
    assert!(english.contains(r#"<html lang="en">"#));
    assert!(english.contains(">Sign in</h1>"));
    assert!(english.contains(r#"href="/login?lang=es""#), "the switcher");

    let spanish = browser.get("/login?lang=es").await;
    assert!(spanish.contains(r#"<html lang="es">"#));
    assert!(spanish.contains(">Iniciar sesión</h1>"));
    let cookie = spanish
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lang=es"))
        .expect("lang cookie");
    assert!(cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    // The cookie keeps it, even against Accept-Language.
    let remembered = browser
        .get_with("/login", header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .await;
    assert!(remembered.contains(">Iniciar sesión</h1>"));
    assert!(
        browser
            .get("/login?lang=en")
            .await
            .contains(">Sign in</h1>")
    );
    assert!(
        browser.get("/login").await.contains(">Sign in</h1>"),
        "?lang=en replaced the cookie"
    );

    let fresh = Browser::new(&server, Some(&server.base_url));
    let by_header = fresh
        .get_with(
            "/register",
            header::ACCEPT_LANGUAGE,
            "es-ES,es;q=0.9,en;q=0.8",
        )
        .await;
    assert!(by_header.contains(">Crea tu cuenta</h1>"));
    let unsupported = fresh
        .get_with("/register", header::ACCEPT_LANGUAGE, "fr-FR,de;q=0.9")
        .await;
    assert!(unsupported.contains(">Create your account</h1>"));
}

#[tokio::test]
async fn the_whole_approval_reads_in_spanish() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    let card = alice
        .get(&format!("/cli-auth?code={user_code}&lang=es"))
        .await;
    assert!(card.contains("¿Vincular esta sesión de la CLI?"));
    assert!(card.contains("Aprueba solo si acabas de ejecutar <code>claudemesh login</code>"));
    assert!(card.contains(">Aprobar<") && card.contains(">Rechazar<"));
    assert!(
        card.contains(&format!(r#"href="/cli-auth?code={user_code}&lang=en""#)),
        "the switcher keeps the code"
    );
    let done = alice
        .post(
            "/cli-auth",
            &[
                ("code", &user_code),
                ("decision", "approve"),
                ("csrf", &card.csrf()),
            ],
        )
        .await;
    let result = alice.get(done.location()).await;
    assert!(result.contains("✓ CLI autenticada. Vuelve a tu terminal."));
    assert_eq!(poll(&server, &device_code).await["status"], "approved");
    assert!(
        alice
            .get("/cli-auth?code=BCDF-GHJK")
            .await
            .contains("Código desconocido")
    );
    let tokens = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(tokens.contains("Generar un token nuevo") && tokens.contains("1 año"));
    let error = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", ""), ("expiry", "30"), ("csrf", &tokens.csrf())],
        )
        .await;
    assert!(error.contains("Pon al token un nombre de 1 a 100 caracteres."));
    let evil = alice
        .client
        .post(alice.url("/dashboard/settings/cli-tokens"))
        .header(header::ORIGIN, EVIL)
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert!(evil.text().await.unwrap().contains("Solicitud rechazada"));
}

// --------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_input_gets_a_page_not_a_crash() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let not_a_form = alice
        .client
        .post(alice.url("/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_form.status(), 400);
    assert!(
        not_a_form.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let long_code = "B".repeat(5000);
    for path in [
        "/cli-auth?code=%FF%FE".to_owned(),
        format!("/cli-auth?code={long_code}"),
        "/cli-auth?code=a&code=b".to_owned(),
        "/dashboard/settings/cli-tokens/revoke?kind=nope&id=x".to_owned(),
        "/dashboard/settings/cli-tokens/revoke".to_owned(),
        "/login?next=%00".to_owned(),
        "/login?lang=%FF".to_owned(),
        "/static/../Cargo.toml".to_owned(),
        "/static/nope.js".to_owned(),
    ] {
        let page = alice.get(&path).await;
        assert!(page.status < 500, "{path}: {}", page.status);
    }
    let dashboard = alice.get("/dashboard").await;
    let decision = alice
        .post(
            "/cli-auth",
            &[
                ("code", "BCDF-GHJK"),
                ("decision", "maybe"),
                ("csrf", &dashboard.csrf()),
            ],
        )
        .await;
    assert_eq!(decision.status, 400);
    let session_cookie_garbage = Browser::new(&server, None);
    let page = session_cookie_garbage
        .get_with("/dashboard", header::COOKIE, "cm_sid=%%%; lang=xx")
        .await;
    assert_eq!(page.status, 303);
}

// ------------------------------------------------------------------ https

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    use claudemesh_server::{Application, Config, clock::ManualClock};
    use std::sync::Arc;
    let data_dir =
        std::env::temp_dir().join(format!("claudemesh-pages-https-{}", std::process::id()));
    let mut config = Config::for_tests(data_dir.clone(), None);
    config.public_url = Some("https://claudemesh.example".into());
    let app = Application::build(config, Arc::new(ManualClock::new()))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = Browser::read(
        client
            .get(format!("{base}/login?lang=es"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cookies = page.set_cookies();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in cookies {
        assert!(
            cookie.contains("; Secure")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
    }
    // Our origin is now the https one: a form from plain http is foreign.
    let refused = client
        .post(format!("{base}/login"))
        .header(header::ORIGIN, base.as_str())
        .form(&[("email", "a@example.com"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(data_dir);
}

// ------------------------------------------------------------------ meshes

/// A random ed25519-shaped public key (64 hex characters).
fn random_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    data_encoding::HEXLOWER.encode(&bytes)
}

impl Browser {
    /// A JSON request to the API with this browser's session, carrying the
    /// session's CSRF token (so it works whatever Origin the browser claims).
    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let csrf = self.get("/dashboard").await.csrf();
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("x-csrf-token", csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a mesh over the JSON API, as the CLI does: its slug.
    async fn create_mesh(&self, name: &str) -> String {
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
    async fn api_invite(&self, slug: &str, body: Value) -> Value {
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
    async fn api_invites(&self, slug: &str) -> Vec<Value> {
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
    async fn api_mesh(&self, slug: &str) -> (u16, Value) {
        self.api(
            reqwest::Method::GET,
            &format!("/api/my/meshes/{slug}"),
            None,
        )
        .await
    }

    /// Creates an invite with the page's form.
    async fn invite_on_page(&self, slug: &str, form: &[(&str, &str)]) -> Page {
        let page = self.get(&format!("/dashboard/meshes/{slug}")).await;
        let csrf = page.csrf();
        let mut fields = form.to_vec();
        fields.push(("csrf", &csrf));
        self.post(&format!("/dashboard/meshes/{slug}/invites"), &fields)
            .await
    }

    /// Accepts an invite with the page's form.
    async fn accept_on_page(&self, code: &str) -> Page {
        let page = self.get(&format!("/i/{code}")).await;
        assert!(page.contains("Accept and join"), "{}", page.body);
        self.post(&format!("/i/{code}"), &[("csrf", &page.csrf())])
            .await
    }
}

impl Page {
    /// The link shown after creating an invite on the mesh page.
    fn new_invite_url(&self) -> String {
        let marker = r#"id="new-invite-url" class="token-value" readonly value=""#;
        let start = self.body.find(marker).expect("a new invite link") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }

    /// The `<h1>` text.
    fn title(&self) -> String {
        let start = self.body.find("<h1").expect("a title");
        let start = start + self.body[start..].find('>').unwrap() + 1;
        let len = self.body[start..].find("</h1>").unwrap();
        self.body[start..start + len].trim().to_owned()
    }
}

fn code_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_dashboard_lists_only_your_meshes() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (carol, _) = Browser::signed_in(&server, "Carol").await;
    let empty = alice.get("/dashboard").await;
    assert!(empty.raw_contains(r#"data-testid="no-meshes""#));
    assert!(empty.contains(r#"<code>claudemesh create "Name"</code>"#));

    assert_eq!(alice.create_mesh("Platform team").await, "platform-team");
    assert_eq!(alice.create_mesh("Ops <on call>").await, "ops-on-call");
    bob.create_mesh("Bob's secret mesh").await;
    // Bob joins Platform team: it shows 2 members to both, Bob as Member.
    let invite = alice.api_invite("platform-team", json!({})).await;
    let joined = bob.accept_on_page(invite["code"].as_str().unwrap()).await;
    assert_eq!(joined.status, 303);

    let dashboard = alice.get("/dashboard").await;
    assert_eq!(dashboard.status, 200);
    assert!(!dashboard.raw_contains(r#"data-testid="no-meshes""#));
    assert!(dashboard.raw_contains(r#"href="/dashboard/meshes/platform-team""#));
    assert!(dashboard.raw_contains(r#"href="/dashboard/meshes/ops-on-call""#));
    assert!(
        dashboard.contains("Ops <on call>") && !dashboard.raw_contains("<on call>"),
        "names are escaped"
    );
    assert!(!dashboard.contains("Bob's secret mesh"));
    let row = |page: &Page, slug: &str| {
        let at = page.body.find(&format!("<code>{slug}</code>")).unwrap();
        let end = at + page.body[at..].find("</tr>").unwrap();
        page.body[at..end].to_owned()
    };
    let platform = row(&dashboard, "platform-team");
    assert!(platform.contains(">Admin<"), "{platform}");
    assert!(platform.contains(">2<"), "{platform}");
    assert!(platform.contains(" UTC<"), "the created time: {platform}");
    assert!(row(&dashboard, "ops-on-call").contains(">1<"));

    let bobs = bob.get("/dashboard").await;
    assert!(bobs.contains("Bob's secret mesh") && bobs.contains("Platform team"));
    assert!(row(&bobs, "platform-team").contains(">Member<"));
    assert!(!bobs.contains("Ops <on call>"));
    assert!(
        carol
            .get("/dashboard")
            .await
            .raw_contains(r#"data-testid="no-meshes""#)
    );
}

#[tokio::test]
async fn mesh_pages_check_membership_and_role() {
    mesh_page_roles(Engine::Sqlite).await;
}

#[tokio::test]
async fn mesh_pages_check_membership_and_role_on_postgres() {
    mesh_page_roles(Engine::Postgres).await;
}

async fn mesh_page_roles(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (eve, _) = Browser::signed_in(&server, "Eve").await;
    let slug = alice.create_mesh("Platform team").await;
    let path = format!("/dashboard/meshes/{slug}");

    // Signed out: sign in and come back.
    let anonymous = Browser::new(&server, Some(&server.base_url));
    let away = anonymous.get(&path).await;
    assert_eq!(away.status, 303);
    assert_eq!(
        away.location(),
        "/login?next=%2Fdashboard%2Fmeshes%2Fplatform-team"
    );

    // A non-member gets exactly the page of a mesh that does not exist.
    let not_mine = eve.get(&path).await;
    let unknown = eve.get("/dashboard/meshes/no-such-mesh").await;
    assert_eq!(not_mine.status, 404);
    assert_eq!(unknown.status, 404);
    assert_eq!(not_mine.title(), "Mesh not found");
    let main = |page: &Page| page.body[page.body.find("<main>").unwrap()..].to_owned();
    assert_eq!(main(&not_mine), main(&unknown), "the same page");
    assert!(!not_mine.contains("Platform team"));
    let eve_csrf = eve.get("/dashboard").await.csrf();
    let eve_post = eve
        .post(
            &format!("{path}/invites"),
            &[
                ("role", "admin"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
                ("csrf", &eve_csrf),
            ],
        )
        .await;
    assert_eq!(eve_post.status, 404);
    assert_eq!(
        eve.get(&format!("{path}/invites/revoke?id=x")).await.status,
        404
    );

    // The admin's page: the mesh, one member (you), the invite form.
    let page = alice.get(&path).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.title(), "Platform team");
    assert!(page.raw_contains(r#"<code data-testid="mesh-slug">platform-team</code>"#));
    assert!(page.raw_contains(r#"data-testid="your-role">Admin<"#));
    assert!(page.raw_contains(r#"data-testid="you""#));
    assert!(page.raw_contains(&format!(r#"action="{path}/invites""#)));
    assert!(page.contains("No invites yet."));
    assert!(page.contains("<code>claudemesh sync</code>"));

    // The admin makes an invite on the page and sees its link.
    let created = alice
        .invite_on_page(
            &slug,
            &[
                ("email", ""),
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let url = created.new_invite_url();
    assert!(url.starts_with(&format!("{}/i/", server.base_url)), "{url}");
    assert!(
        !created.raw_contains(r#"data-testid="email-status""#),
        "no email"
    );
    assert!(created.raw_contains(&format!(r#"value="{url}""#)));
    assert!(created.raw_contains(r#"data-testid="invite-status">Valid<"#));
    assert!(created.raw_contains(r#"<script src="/static/copy.js" defer></script>"#));
    let code = code_of(&url);
    let listed = alice.api_invites(&slug).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["code"], code.as_str());
    assert_eq!(listed[0]["role"], "member");
    assert_eq!(listed[0]["max_uses"], 1);

    // Bob joins with it: a member sees the mesh and members, no invites.
    assert_eq!(bob.accept_on_page(&code).await.status, 303);
    let members_view = bob.get(&path).await;
    assert_eq!(members_view.status, 200);
    assert!(members_view.raw_contains(r#"data-testid="your-role">Member<"#));
    assert!(members_view.contains("Alice") && members_view.contains("Bob"));
    assert!(members_view.contains("2 members"));
    assert!(!members_view.raw_contains(r#"id="invites""#));
    assert!(!members_view.raw_contains("/invites\""), "no invite form");
    assert!(!members_view.contains(&code), "no invite links");
    assert!(!members_view.raw_contains("copy.js"));
    // "you" marks Bob's own row; Alice has one machine key, Bob none yet.
    let bob_row = {
        let at = members_view.body.find(r#"<tr class="you">"#).unwrap();
        let end = at + members_view.body[at..].find("</tr>").unwrap();
        members_view.body[at..end].to_owned()
    };
    assert!(
        bob_row.contains("Bob") && bob_row.contains(">Member<"),
        "{bob_row}"
    );
    assert!(
        bob_row.contains(r#"data-label="Machine keys">0<"#),
        "{bob_row}"
    );
    let alice_page = alice.get(&path).await;
    assert!(alice_page.raw_contains(r#"data-label="Machine keys">1<"#));
    assert!(alice_page.raw_contains(r#"data-testid="invite-status">Used up<"#));

    // Any invite request from a member is refused, and changes nothing.
    let bob_csrf = members_view.csrf();
    let refused = bob
        .post(
            &format!("{path}/invites"),
            &[
                ("role", "admin"),
                ("expires_in_days", "7"),
                ("max_uses", "5"),
                ("csrf", &bob_csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.title(), "Only admins can manage invites");
    let live = alice.api_invite(&slug, json!({ "max_uses": 3 })).await;
    let live_id = live["id"].as_str().unwrap();
    let confirm = bob
        .get(&format!("{path}/invites/revoke?id={live_id}"))
        .await;
    assert_eq!(confirm.status, 403);
    let revoke = bob
        .post(
            &format!("{path}/invites/revoke"),
            &[("id", live_id), ("csrf", &bob_csrf)],
        )
        .await;
    assert_eq!(revoke.status, 403);
    let after = alice.api_invites(&slug).await;
    assert_eq!(after.len(), 2, "the member created nothing");
    assert!(
        after.iter().all(|invite| invite["revoked"] == false),
        "the member revoked nothing"
    );
}

#[tokio::test]
async fn an_invite_is_revoked_after_a_confirmation_step() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice
        .api_invite(
            &slug,
            json!({ "email": "bob@example.com", "role": "admin" }),
        )
        .await;
    let (id, code) = (
        invite["id"].as_str().unwrap(),
        invite["code"].as_str().unwrap(),
    );
    let page = alice.get(&format!("/dashboard/meshes/{slug}")).await;
    let revoke_url = format!("/dashboard/meshes/{slug}/invites/revoke?id={id}");
    assert!(page.contains(&format!(r#"href="{revoke_url}""#)));
    assert!(page.contains("bob@example.com") && page.contains("0 / 1"));

    let confirm = alice.get(&revoke_url).await;
    assert_eq!(confirm.status, 200);
    assert_eq!(confirm.title(), "Revoke this invite?");
    assert!(confirm.contains(&format!("/i/{code}")) && confirm.contains("Admin"));
    assert!(
        confirm.contains(&format!(r#"href="/dashboard/meshes/{slug}""#)),
        "cancel"
    );
    assert_eq!(
        Browser::new(&server, None)
            .get(&format!("/i/{code}"))
            .await
            .status,
        200,
        "asking is not revoking"
    );

    let done = alice
        .post(
            &format!("/dashboard/meshes/{slug}/invites/revoke"),
            &[("id", id), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location(),
        format!("/dashboard/meshes/{slug}?notice=revoked")
    );
    let after = alice.get(done.location()).await;
    assert!(after.contains("Invite revoked. Its link no longer works."));
    assert!(after.raw_contains(r#"data-testid="invite-status">Revoked<"#));
    assert!(
        !after.contains(&format!(r#"href="{revoke_url}""#)),
        "no revoke twice"
    );
    assert_eq!(
        Browser::new(&server, None)
            .get(&format!("/i/{code}"))
            .await
            .status,
        410
    );
    let again = alice
        .post(
            &format!("/dashboard/meshes/{slug}/invites/revoke"),
            &[("id", id), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.title(), "Nothing to revoke");
    assert_eq!(alice.get(&revoke_url).await.status, 404);
    assert_eq!(
        alice
            .get(&format!("/dashboard/meshes/{slug}/invites/revoke?id=nope"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_invite_form_checks_its_fields() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let page = alice
        .invite_on_page(
            &slug,
            &[
                ("email", "not-an-email"),
                ("role", "owner"),
                ("expires_in_days", "366"),
                ("max_uses", "0"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.contains("That is not a valid email address."));
    assert!(page.contains("Choose the role Member or Admin."));
    assert!(page.contains("Choose an expiry of 1 to 365 days."));
    assert!(page.contains("Choose a number of uses from 1 to 1000."));
    assert!(page.contains(r#"value="not-an-email""#), "kept as typed");
    assert!(page.contains(r#"name="expires_in_days" type="number" inputmode="numeric" min="1" max="365" required value="366""#));
    for (days, uses) in [("0", "1"), ("seven", "1"), ("7", "1001"), ("", "")] {
        let page = alice
            .invite_on_page(
                &slug,
                &[
                    ("role", "member"),
                    ("expires_in_days", days),
                    ("max_uses", uses),
                ],
            )
            .await;
        assert_eq!(page.status, 400, "{days:?} {uses:?}");
    }
    assert!(alice.api_invites(&slug).await.is_empty());

    // The defaults the form starts with are what the API defaults to.
    let fresh = alice.get(&format!("/dashboard/meshes/{slug}")).await;
    assert!(fresh.contains(r#"max="365" required value="7""#));
    assert!(fresh.contains(r#"max="1000" required value="1""#));
    assert!(fresh.contains(r#"<option value="member" selected>Member</option>"#));
    let admin = alice
        .invite_on_page(
            &slug,
            &[
                ("email", " "),
                ("role", "admin"),
                ("expires_in_days", "30"),
                ("max_uses", "5"),
            ],
        )
        .await;
    assert_eq!(admin.status, 201);
    let listed = alice.api_invites(&slug).await;
    assert_eq!(listed[0]["role"], "admin");
    assert_eq!(listed[0]["max_uses"], 5);
    assert_eq!(listed[0]["email"], Value::Null);
}

#[tokio::test]
async fn the_mesh_page_says_whether_the_invite_was_emailed() {
    use claudemesh_testkit::{Options, SmtpSink};
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(
        Engine::Sqlite,
        Options {
            smtp_url: Some(sink.url()),
            ..Options::default()
        },
    )
    .await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let form = [
        ("email", "bob@example.com"),
        ("role", "member"),
        ("expires_in_days", "7"),
        ("max_uses", "1"),
    ];
    let sent = alice.invite_on_page(&slug, &form).await;
    assert_eq!(sent.status, 201);
    assert!(
        sent.contains("Emailed to bob@example.com."),
        "{}",
        sent.body
    );
    let mail = sink.wait_for(1).await;
    assert!(mail[0].body().contains(&sent.new_invite_url()));
    assert_eq!(mail[0].subject(), "Alice invited you to Team on claudemesh");

    // In Spanish, the mail is in Spanish too.
    let page = alice
        .get(&format!("/dashboard/meshes/{slug}?lang=es"))
        .await;
    let spanish = alice
        .post(
            &format!("/dashboard/meshes/{slug}/invites"),
            &[
                ("email", "ana@example.com"),
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert!(spanish.contains("Enviado por correo a ana@example.com."));
    assert!(sink.wait_for(2).await[1].subject().contains("te invitó"));

    let refusing = SmtpSink::start_refusing().await;
    let server = TestServer::start_with(
        Engine::Sqlite,
        Options {
            smtp_url: Some(refusing.url()),
            ..Options::default()
        },
    )
    .await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let failed = alice.invite_on_page(&slug, &form).await;
    assert_eq!(failed.status, 201, "the invite exists anyway");
    assert!(
        failed.contains("Could not email bob@example.com: "),
        "{}",
        failed.body
    );
    assert!(failed.contains("— share the link yourself."));
    let url = failed.new_invite_url();
    assert_eq!(
        Browser::new(&server, None)
            .get(&format!("/i/{}", code_of(&url)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn mesh_and_invite_forms_need_the_token() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (evil, _) = Browser::signed_in_from(&server, "Alice", Some(EVIL)).await;
    let (bob, _) = Browser::signed_in_from(&server, "Bob", Some(EVIL)).await;
    let slug = evil.create_mesh("Team").await;
    let path = format!("/dashboard/meshes/{slug}");
    let fields = [
        ("role", "admin"),
        ("expires_in_days", "365"),
        ("max_uses", "1000"),
    ];
    let no_token = evil.post(&format!("{path}/invites"), &fields).await;
    assert_eq!(no_token.status, 403);
    assert!(no_token.contains("Request refused"));
    let mut wrong = fields.to_vec();
    wrong.push(("csrf", "guess"));
    assert_eq!(
        evil.post(&format!("{path}/invites"), &wrong).await.status,
        403
    );
    assert!(
        evil.api_invites(&slug).await.is_empty(),
        "nothing was created"
    );
    // The page's own token passes (the API's rule).
    assert_eq!(evil.invite_on_page(&slug, &fields).await.status, 201);

    let invite = evil.api_invite(&slug, json!({})).await;
    let (id, code) = (
        invite["id"].as_str().unwrap(),
        invite["code"].as_str().unwrap(),
    );
    let revoke = evil
        .post(&format!("{path}/invites/revoke"), &[("id", id)])
        .await;
    assert_eq!(revoke.status, 403);
    let accept = bob.post(&format!("/i/{code}"), &[]).await;
    assert_eq!(accept.status, 403);
    let accept = bob.post(&format!("/i/{code}"), &[("csrf", "guess")]).await;
    assert_eq!(accept.status, 403);
    assert_eq!(bob.api_mesh(&slug).await.0, 404, "Bob did not join");
    assert!(
        evil.api_invites(&slug)
            .await
            .iter()
            .all(|invite| invite["revoked"] == false && invite["uses"] == 0)
    );
}

#[tokio::test]
async fn each_state_of_an_invite_has_its_own_page() {
    invite_state_pages(Engine::Sqlite).await;
}

#[tokio::test]
async fn each_state_of_an_invite_has_its_own_page_on_postgres() {
    invite_state_pages(Engine::Postgres).await;
}

async fn invite_state_pages(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice García").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (carol, _) = Browser::signed_in(&server, "Carol").await;
    let slug = alice.create_mesh("Platform <team>").await;
    let anonymous = Browser::new(&server, Some(&server.base_url));

    // Valid, signed out: what it is, and a way to sign in and come back.
    let invite = alice.api_invite(&slug, json!({ "role": "admin" })).await;
    let code = invite["code"].as_str().unwrap().to_owned();
    let valid = anonymous.get(&format!("/i/{code}")).await;
    assert_eq!(valid.status, 200);
    assert_eq!(valid.header("cache-control"), "no-store");
    assert_eq!(
        valid.title(),
        "Alice García invited you to join Platform <team>"
    );
    assert!(!valid.raw_contains("<team>"), "escaped");
    assert!(valid.raw_contains(r#"data-testid="invite-role">Admin<"#));
    assert!(valid.raw_contains(r#"data-testid="invite-inviter">Alice García<"#));
    assert!(valid.contains(" UTC"), "the expiry");
    let next = format!("%2Fi%2F{code}");
    assert!(valid.contains(&format!(r#"href="/login?next={next}""#)));
    assert!(valid.contains(&format!(r#"href="/register?next={next}""#)));
    assert!(valid.contains("Sign in to accept"));
    assert!(!valid.raw_contains(r#"name="csrf""#), "no form signed out");
    // Posting signed out goes to sign in, too.
    let post = anonymous.post(&format!("/i/{code}"), &[]).await;
    assert_eq!(post.status, 303);
    assert_eq!(post.location(), format!("/login?next={next}"));

    // Valid, signed in: an Accept form.
    let signed_in = bob.get(&format!("/i/{code}")).await;
    assert_eq!(signed_in.status, 200);
    assert!(signed_in.raw_contains(&format!(r#"<form method="post" action="/i/{code}""#)));
    assert!(signed_in.contains("Accept and join") && signed_in.contains("You will join as"));

    // Already a member (the admin who made it): nothing to accept.
    let member = alice.get(&format!("/i/{code}")).await;
    assert_eq!(member.status, 200);
    assert_eq!(member.title(), "You are already in Platform <team>");
    assert!(member.contains("<code>claudemesh sync</code>"));
    assert!(member.contains(&format!(r#"href="/dashboard/meshes/{slug}""#)));

    // Unknown.
    for unknown in [
        "/i/nosuchcode",
        "/i/%FF%FE",
        &format!("/i/{}", "a".repeat(3000)),
    ] {
        let page = anonymous.get(unknown).await;
        assert_eq!(page.status, 404, "{unknown}");
        assert_eq!(page.title(), "Invitation not found");
    }
    assert_eq!(
        bob.post("/i/nosuchcode", &[("csrf", &signed_in.csrf())])
            .await
            .status,
        404
    );

    // Used up: Bob takes the only use, Carol is too late.
    assert_eq!(bob.accept_on_page(&code).await.status, 303);
    let used_up = carol.get(&format!("/i/{code}")).await;
    assert_eq!(used_up.status, 409);
    assert_eq!(used_up.title(), "This invitation has been used up");
    assert!(used_up.contains("ask Alice García for a new invitation"));
    assert_eq!(anonymous.get(&format!("/i/{code}")).await.status, 409);
    let late = carol
        .post(&format!("/i/{code}"), &[("csrf", &used_up.csrf())])
        .await;
    assert_eq!(late.status, 409);
    assert_eq!(carol.api_mesh(&slug).await.0, 404);

    // Revoked.
    let revoked = alice.api_invite(&slug, json!({})).await;
    let revoked_code = revoked["code"].as_str().unwrap();
    let carol_page = carol.get(&format!("/i/{revoked_code}")).await;
    let (status, _) = alice
        .api(
            reqwest::Method::DELETE,
            &format!(
                "/api/my/meshes/{slug}/invites/{}",
                revoked["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let page = anonymous.get(&format!("/i/{revoked_code}")).await;
    assert_eq!(page.status, 410);
    assert_eq!(page.title(), "This invitation was revoked");
    // Accepting a page opened before the revocation shows the same page.
    let late = carol
        .post(
            &format!("/i/{revoked_code}"),
            &[("csrf", &carol_page.csrf())],
        )
        .await;
    assert_eq!(late.status, 410);
    assert_eq!(late.title(), "This invitation was revoked");

    // Expired.
    let expiring = alice
        .api_invite(&slug, json!({ "expires_in_days": 1 }))
        .await;
    let expiring_code = expiring["code"].as_str().unwrap();
    server.clock.advance(Duration::from_secs(86_400 + 1));
    let page = carol.get(&format!("/i/{expiring_code}")).await;
    assert_eq!(page.status, 410);
    assert_eq!(page.title(), "This invitation has expired");
    assert!(page.contains("expired on"));
    let late = carol
        .post(&format!("/i/{expiring_code}"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(late.status, 410);
    assert_eq!(carol.api_mesh(&slug).await.0, 404, "Carol never joined");
    // A member still gets the friendly page, whatever the invite's state.
    assert_eq!(bob.get(&format!("/i/{expiring_code}")).await.status, 200);
}

#[tokio::test]
async fn signing_in_from_an_invite_comes_back_to_accept_it() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (_, bob_email) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice.api_invite(&slug, json!({ "max_uses": 5 })).await;
    let code = invite["code"].as_str().unwrap();
    let url = invite["url"].as_str().unwrap();

    let browser = Browser::new(&server, Some(&server.base_url));
    let invitation = browser.get(&format!("/i/{code}")).await;
    let login_href = format!("/login?next=%2Fi%2F{code}");
    assert!(invitation.contains(&login_href));
    let login = browser.get(&login_href).await;
    assert_eq!(login.status, 200);
    assert!(login.contains("Sign in to accept your invitation."));
    assert!(login.contains(&format!(r#"name="next" value="/i/{code}""#)));
    assert!(
        login.contains(&format!(r#"href="/register?next=%2Fi%2F{code}""#)),
        "the register link keeps next"
    );
    let signed_in = browser
        .post(
            "/login",
            &[
                ("email", &bob_email),
                ("password", DEFAULT_PASSWORD),
                ("next", &format!("/i/{code}")),
                ("csrf", &login.csrf()),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.location(), format!("/i/{code}"));
    let accepted = browser.accept_on_page(code).await;
    assert_eq!(accepted.status, 303);
    assert_eq!(accepted.location(), format!("/i/{code}/joined"));
    let joined = browser.get(accepted.location()).await;
    assert_eq!(joined.status, 200);
    assert_eq!(joined.title(), "You joined Team");
    assert!(joined.contains("<code>claudemesh sync</code>"));
    assert!(joined.contains(&format!("<code>claudemesh join {url}</code>")));
    assert!(joined.contains(&format!(r#"href="/dashboard/meshes/{slug}""#)));

    // Registering from the invite comes back the same way.
    let newcomer = Browser::new(&server, Some(&server.base_url));
    let register = newcomer.get(&format!("/register?next=%2Fi%2F{code}")).await;
    assert!(register.contains("Create your account to accept your invitation."));
    assert!(register.contains(&format!(r#"name="next" value="/i/{code}""#)));
    let registered = newcomer
        .post(
            "/register",
            &[
                ("name", "Dana"),
                ("email", "dana@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("next", &format!("/i/{code}")),
                ("csrf", &register.csrf()),
            ],
        )
        .await;
    assert_eq!(registered.status, 303);
    assert_eq!(registered.location(), format!("/i/{code}"));
    assert_eq!(newcomer.accept_on_page(code).await.status, 303);
    let (_, detail) = alice.api_mesh(&slug).await;
    let mut names: Vec<_> = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Alice", "Bob", "Dana"]);

    // Someone else's joined page sends them to the invite itself.
    let (stranger, _) = Browser::signed_in(&server, "Stranger").await;
    let other = stranger.get(&format!("/i/{code}/joined")).await;
    assert_eq!(other.status, 303);
    assert_eq!(other.location(), format!("/i/{code}"));
    let signed_out = Browser::new(&server, None)
        .get(&format!("/i/{code}/joined"))
        .await;
    assert_eq!(signed_out.status, 303);
    assert!(signed_out.location().starts_with("/login?next="));
}

#[tokio::test]
async fn accepting_adds_the_member_once() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice.api_invite(&slug, json!({ "max_uses": 3 })).await;
    let code = invite["code"].as_str().unwrap();
    assert_eq!(bob.api_mesh(&slug).await.0, 404);

    let page = bob.get(&format!("/i/{code}")).await;
    let first = bob
        .post(&format!("/i/{code}"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(first.status, 303);
    assert_eq!(first.location(), format!("/i/{code}/joined"));
    let (status, detail) = bob.api_mesh(&slug).await;
    assert_eq!(status, 200);
    assert_eq!(detail["role"], "member");
    let me = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["you"] == true)
        .unwrap()
        .clone();
    assert_eq!(me["display_name"], "Bob");
    assert_eq!(me["public_keys"], json!([]), "the browser registers no key");

    // The same form again (a double click, a reload): nothing changes.
    let second = bob
        .post(&format!("/i/{code}"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(second.status, 303);
    assert_eq!(second.location(), format!("/i/{code}"));
    let again = bob.get(second.location()).await;
    assert_eq!(again.title(), "You are already in Team");
    let invites = alice.api_invites(&slug).await;
    assert_eq!(invites[0]["uses"], 1, "the second accept used nothing");
    assert_eq!(
        alice.api_mesh(&slug).await.1["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let events: Vec<_> = server
        .audit_events()
        .await
        .into_iter()
        .filter(|(event, _, _)| event == "mesh.invite.accepted")
        .collect();
    assert_eq!(events.len(), 1);
    // The mesh is on Bob's dashboard now.
    assert!(
        bob.get("/dashboard")
            .await
            .contains(&format!(r#"href="/dashboard/meshes/{slug}""#))
    );
}

#[tokio::test]
async fn the_mesh_and_invite_pages_read_in_spanish() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Equipo").await;
    let dashboard = alice.get("/dashboard?lang=es").await;
    assert!(dashboard.contains(r#"<html lang="es">"#));
    assert!(dashboard.contains(">Tu rol<") && dashboard.contains(">Administrador<"));
    assert!(
        bob.get("/dashboard?lang=es")
            .await
            .contains(r#"<code>claudemesh create "Nombre"</code>"#)
    );

    let created = alice
        .invite_on_page(
            &slug,
            &[
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
            ],
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(created.contains("Tu nuevo enlace de invitación"));
    assert!(created.contains(">Válida<") && created.contains(">Miembros<"));
    assert!(created.contains("Crear invitación") && created.contains("Caduca en (días)"));
    assert!(created.contains(r#"<option value="admin">Administrador</option>"#));
    let code = code_of(&created.new_invite_url());

    let anonymous = Browser::new(&server, Some(&server.base_url));
    let invitation = anonymous
        .get_with(
            &format!("/i/{code}"),
            header::ACCEPT_LANGUAGE,
            "es-ES,es;q=0.9",
        )
        .await;
    assert!(invitation.contains(r#"<html lang="es">"#));
    assert_eq!(invitation.title(), "Alice te invitó a unirte a Equipo");
    assert!(
        invitation.contains("Inicia sesión para aceptar") && invitation.contains("Invitación de")
    );

    let accept = bob.get(&format!("/i/{code}")).await;
    assert!(accept.contains("Aceptar y unirme"));
    let done = bob
        .post(&format!("/i/{code}"), &[("csrf", &accept.csrf())])
        .await;
    let joined = bob.get(done.location()).await;
    assert_eq!(joined.title(), "Te uniste a Equipo");
    assert!(joined.contains("ejecuta <code>claudemesh sync</code>"));
    let mesh = bob.get(&format!("/dashboard/meshes/{slug}")).await;
    assert!(mesh.contains(">tú<") && mesh.contains("Claves de máquina"));
    assert!(mesh.contains("2 miembros"));
    assert_eq!(
        bob.get(&format!("/i/{code}")).await.title(),
        "Ya estás en Equipo"
    );
    let used_up = anonymous.get(&format!("/i/{code}?lang=es")).await;
    assert_eq!(used_up.title(), "Esta invitación está agotada");
    assert_eq!(
        anonymous.get("/i/nope").await.title(),
        "Invitación no encontrada"
    );
    let refused = bob
        .post(
            &format!("/dashboard/meshes/{slug}/invites"),
            &[
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
                ("csrf", &mesh.csrf()),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.title(),
        "Solo los administradores gestionan las invitaciones"
    );
    assert_eq!(
        bob.get("/dashboard/meshes/nope").await.title(),
        "Mesh no encontrado"
    );
}

// ---------------------------------------------------------------- not found

#[tokio::test]
async fn unknown_pages_are_html_and_unknown_api_paths_json() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let anonymous = Browser::new(&server, None);
    for path in [
        "/dashboard/nope",
        "/nope",
        "/dashboard/meshes/a/b/c",
        "/i/",
        "/i/x/y/z",
    ] {
        for browser in [&alice, &anonymous] {
            let page = browser.get(path).await;
            assert_eq!(page.status, 404, "{path}");
            assert!(
                page.header("content-type").starts_with("text/html"),
                "{path}"
            );
            assert_eq!(page.title(), "Page not found", "{path}");
            assert!(
                page.header("content-security-policy")
                    .contains("default-src 'self'")
            );
            assert_eq!(page.header("cache-control"), "no-store");
        }
    }
    let spanish = anonymous.get("/dashboard/nope?lang=es").await;
    assert_eq!(spanish.title(), "Página no encontrada");
    assert!(alice.get("/nope").await.contains(r#"href="/dashboard""#));

    for path in ["/api/nope", "/api/my/nope", "/oauth/nope", "/api"] {
        let response = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
    // /dashboard/meshes alone is the dashboard.
    let list = alice.get("/dashboard/meshes").await;
    assert_eq!(list.status, 303);
    assert_eq!(list.location(), "/dashboard");
}

#[tokio::test]
async fn bad_input_on_the_mesh_pages_gets_a_page_not_a_crash() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let long = "x".repeat(5000);
    for path in [
        "/dashboard/meshes/%FF%FE".to_owned(),
        format!("/dashboard/meshes/{long}"),
        format!("/dashboard/meshes/{slug}/invites/revoke"),
        format!("/dashboard/meshes/{slug}/invites/revoke?id=%FF"),
        format!("/dashboard/meshes/{slug}/invites/revoke?id=a&id=b"),
        format!("/dashboard/meshes/{slug}/invites"),
        "/i/%00".to_owned(),
        "/i/..%2F..%2Fetc".to_owned(),
        format!("/i/{long}/joined"),
    ] {
        let page = alice.get(&path).await;
        assert!(page.status < 500, "{path}: {}", page.status);
    }
    let csrf = alice.get("/dashboard").await.csrf();
    let not_a_form = alice
        .client
        .post(alice.url(&format!("/dashboard/meshes/{slug}/invites")))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-csrf-token", &csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_form.status(), 400);
    assert!(
        not_a_form.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    for form in [
        vec![("csrf", csrf.as_str())],
        vec![
            ("csrf", csrf.as_str()),
            ("role", "member"),
            ("expires_in_days", "-1"),
            ("max_uses", "99999999999999999999"),
        ],
        vec![
            ("csrf", csrf.as_str()),
            ("role", "member"),
            ("expires_in_days", "7"),
            ("max_uses", "1"),
            ("email", "a@b.c\r\nBcc: x@y.z"),
        ],
    ] {
        let page = alice
            .post(&format!("/dashboard/meshes/{slug}/invites"), &form)
            .await;
        assert_eq!(page.status, 400, "{form:?}");
    }
    for id in ["", "nope", &long] {
        let page = alice
            .post(
                &format!("/dashboard/meshes/{slug}/invites/revoke"),
                &[("id", id), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 404, "{id:?}");
    }
}
