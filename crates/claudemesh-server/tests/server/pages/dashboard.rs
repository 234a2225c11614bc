//! The dashboard: tokens made and revoked on the page, CLI sessions, the password.

use super::browser::*;

on_both_engines!(a_token_made_on_the_page_is_shown_once_and_revoking_it_stops_it,);

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

async fn a_token_made_on_the_page_is_shown_once_and_revoking_it_stops_it(engine: Engine) {
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
    let token = alice.approved_cli_session(&server).await;
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
    let session = alice.approved_cli_session(&server).await;

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

#[tokio::test]
async fn guessing_the_current_password_on_the_page_is_stopped() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let csrf = alice.get("/dashboard/settings/password").await.csrf();
    let change = |current: &'static str| {
        let (alice, csrf) = (&alice, csrf.clone());
        async move {
            alice
                .post(
                    "/dashboard/settings/password",
                    &[
                        ("current_password", current),
                        ("new_password", "a new password"),
                        ("repeat_password", "a new password"),
                        ("csrf", &csrf),
                    ],
                )
                .await
        }
    };
    for _ in 0..10 {
        assert_eq!(change("a guess").await.status, 400);
    }
    let stopped = change(DEFAULT_PASSWORD).await;
    assert_eq!(stopped.status, 429);
    assert!(
        stopped.contains("Too many failed sign-ins"),
        "{}",
        stopped.body
    );
    assert!(stopped.contains("Wait 15 minutes"), "{}", stopped.body);
    assert_eq!(stopped.header("retry-after"), "900");
}
