//! Security headers, no inline code, CSRF on every form, and Secure cookies behind https.

use super::browser::*;

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
