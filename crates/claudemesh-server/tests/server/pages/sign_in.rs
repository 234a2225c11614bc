//! Register, sign in, sign out, and where sign-in sends you back to.

use super::browser::*;

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
    let taken = again.register_on_page("Other", "ANA@example.com").await;
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
async fn too_many_wrong_passwords_say_how_long_to_wait() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (_, email) = Browser::signed_in(&server, "Alice").await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let form = browser.get("/login?lang=es").await;
    let attempt = |password: &'static str| {
        let (browser, email, csrf) = (&browser, email.clone(), form.csrf());
        async move {
            browser
                .post(
                    "/login",
                    &[("email", &email), ("password", password), ("csrf", &csrf)],
                )
                .await
        }
    };
    for _ in 0..10 {
        assert_eq!(attempt("a guess").await.status, 401);
    }
    let locked = attempt(DEFAULT_PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert_eq!(locked.header("retry-after"), "900");
    assert!(
        locked.contains("Demasiados intentos fallidos") && locked.contains("Espera 15 minutos"),
        "{}",
        locked.body
    );
    // The form is still there, with the email kept, to try again later.
    assert!(locked.raw_contains(r#"name="password""#));
    assert!(locked.contains(&email));
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

/// The forms and the JSON API share the limits per client address: ten
/// sign-ups and thirty sign-ins a minute by default.
#[tokio::test]
async fn the_forms_count_against_the_limits_per_address_with_the_api() {
    use crate::api::support::send;
    let server = TestServer::start_with(
        Engine::Sqlite,
        claudemesh_testkit::Options {
            address_limits: true,
            ..Default::default()
        },
    )
    .await;
    for n in 0..10 {
        let (status, body) = send(server.anonymous().post(server.url("/api/auth/register")).json(
            &json!({ "email": format!("p{n}@example.com"), "password": DEFAULT_PASSWORD, "name": "P" }),
        ))
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let browser = Browser::new(&server, Some(&server.base_url));
    let refused = browser.register_on_page("Late", "late@example.com").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), "60");

    for _ in 0..30 {
        let (status, body) = send(
            server
                .anonymous()
                .post(server.url("/api/auth/sign-in"))
                .json(&json!({ "email": "p0@example.com", "password": DEFAULT_PASSWORD })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let form = browser.get("/login").await;
    let refused = browser
        .post(
            "/login",
            &[
                ("email", "p0@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), "60");
    assert!(
        !refused
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("cm_sid=")),
        "no session"
    );
}
