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
            name.to_lowercase(),
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
    let pages = [
        anonymous.get("/login").await,
        anonymous.get("/register").await,
        anonymous.get("/dashboard").await,
        anonymous.get("/static/app.css").await,
        alice.get("/dashboard").await,
        alice.get("/cli-auth").await,
        alice.get("/dashboard/settings/cli-tokens").await,
        alice.post("/logout", &[("csrf", "wrong")]).await,
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
    for page in [
        alice.get(&format!("/cli-auth?code={user_code}")).await,
        created,
        alice.get("/dashboard").await,
        Browser::new(&server, None).get("/login").await,
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
