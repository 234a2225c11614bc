//! Bad input and unknown paths get a page (or JSON under /api), never a crash.

use super::browser::*;

/// JSON posted where a form goes (with the CSRF token in its header, if
/// given) is refused with a page: 400, HTML.
async fn json_where_a_form_goes(browser: &Browser, path: &str, csrf: Option<&str>) {
    let mut request = browser
        .client
        .post(browser.url(path))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let not_a_form = request.body("{}").send().await.unwrap();
    assert_eq!(not_a_form.status(), 400, "{path}");
    assert!(
        not_a_form.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{path}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_page_not_a_crash() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    json_where_a_form_goes(&alice, "/login", None).await;
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
async fn a_wrong_method_gets_a_page_on_pages_and_json_on_the_api() {
    let server = TestServer::start(Engine::Sqlite).await;
    let client = reqwest::Client::new();
    for path in ["/login", "/dashboard", "/cli-auth"] {
        let response = client.put(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        let allow = response
            .headers()
            .get(header::ALLOW)
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            allow.is_some_and(|allow| allow.contains("GET")),
            "{path}: an Allow header"
        );
        let page = Browser::read(response).await;
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{path}"
        );
        assert_eq!(page.title(), "This page cannot be used that way", "{path}");
        assert!(
            page.header("content-security-policy")
                .contains("default-src 'self'")
        );
    }
    for path in ["/api/my/whoami", "/oauth/token", "/api/auth/sign-in"] {
        let response = client.put(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 405, "{path}");
        assert!(response.headers().contains_key(header::ALLOW), "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed", "{path}");
    }
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
    let invites = format!("/dashboard/meshes/{slug}/invites");
    json_where_a_form_goes(&alice, &invites, Some(&csrf)).await;
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
