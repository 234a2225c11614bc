//! Personal access tokens, CLI sessions, verification and revocation.

use super::support::{get_with_token, login, send, whoami};
use claudemesh_server::clock::Clock;
use claudemesh_testkit::{Engine, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    a_pat_is_shown_once_and_then_listed_without_its_value,
    pat_expiry_choices_are_30_90_365_or_never,
    an_expired_pat_is_refused_with_token_expired,
    revoking_a_pat_takes_effect_on_the_next_request,
    session_tokens_slide_forward_on_use,
    last_use_is_written_at_most_once_a_minute,
    sessions_list_marks_the_current_one_and_can_be_revoked,
    revoking_the_current_session_logs_this_cli_out,
    revoke_by_possession_answers_the_same_for_any_token,
    users_never_see_or_touch_each_others_tokens,
    whoami_tells_which_credential_was_used,
    malformed_or_unknown_bearer_tokens_are_refused,
);

async fn a_pat_is_shown_once_and_then_listed_without_its_value(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let created = alice.create_pat("ci-deploy", None).await;
    assert!(created.token.starts_with("cm_pat_"));
    assert_eq!(created.info.name, "ci-deploy");
    assert!(created.token.starts_with(&created.info.display_prefix));

    let (status, me) = whoami(&server, &created.token).await;
    assert_eq!(status, 200);
    assert_eq!(me["credential"]["token"]["name"], "ci-deploy");
    assert_eq!(me["credential"]["token"]["kind"], "pat");

    let (status, list) = get_with_token(&server, &created.token, "/api/my/cli/tokens").await;
    assert_eq!(status, 200);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains(&created.token),
        "lists never carry the raw token"
    );

    let events = server.audit_events().await;
    assert!(
        events
            .iter()
            .any(|(event, _, _)| event == "auth.cli.pat.created")
    );
    assert!(
        events
            .iter()
            .all(|(_, _, detail)| !detail.contains(&created.token))
    );
}

async fn pat_expiry_choices_are_30_90_365_or_never(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let now = time::OffsetDateTime::from_unix_timestamp(server.clock.now_ms() / 1000).unwrap();
    let days_until = |expires: &str| {
        let at =
            time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
                .unwrap();
        (at - now).whole_days()
    };
    let default = alice.create_pat("default", None).await;
    assert_eq!(days_until(default.info.expires_at.as_deref().unwrap()), 365);
    for days in [30, 90, 365] {
        let pat = alice.create_pat("chosen", Some(json!(days))).await;
        assert_eq!(days_until(pat.info.expires_at.as_deref().unwrap()), days);
    }
    let never = alice.create_pat("forever", Some(Value::Null)).await;
    assert_eq!(never.info.expires_at, None);

    for bad in [json!(7), json!(0), json!(-1), json!("never"), json!(1e9)] {
        let (status, body) = send(
            alice
                .browser
                .post(server.url("/api/my/cli/tokens"))
                .json(&json!({ "name": "bad", "expires_in_days": bad })),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request");
    }
}

async fn an_expired_pat_is_refused_with_token_expired(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let month = alice.create_pat("month", Some(json!(30))).await;
    let never = alice.create_pat("never", Some(Value::Null)).await;
    server.clock.advance(Duration::from_secs(31 * 86_400));
    let (status, body) = whoami(&server, &month.token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_expired"))
    );
    server.clock.advance(Duration::from_secs(400 * 86_400));
    assert_eq!(whoami(&server, &never.token).await.0, 200);
}

async fn revoking_a_pat_takes_effect_on_the_next_request(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    assert_eq!(whoami(&server, &pat.token).await.0, 200);

    let (status, _) = send(
        alice
            .browser
            .delete(server.url(&format!("/api/my/cli/tokens/{}", pat.info.id))),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = whoami(&server, &pat.token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert_eq!(
        body["message"],
        "Authentication failed (token expired or revoked)"
    );

    let (status, _) = send(
        alice
            .browser
            .delete(server.url(&format!("/api/my/cli/tokens/{}", pat.info.id))),
    )
    .await;
    assert_eq!(status, 404, "revoking twice finds nothing");
    assert!(server.audited("auth.cli.pat.revoked").await);
}

async fn session_tokens_slide_forward_on_use(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let used = login(&server, &alice).await;
    let idle = login(&server, &alice).await;
    assert_eq!(whoami(&server, &used).await.0, 200);
    assert_eq!(whoami(&server, &idle).await.0, 200);

    server.clock.advance(Duration::from_secs(80 * 86_400));
    assert_eq!(whoami(&server, &used).await.0, 200);
    server.clock.advance(Duration::from_secs(80 * 86_400));
    assert_eq!(
        whoami(&server, &used).await.0,
        200,
        "used 80 days ago: still valid at day 160"
    );
    let (status, body) = whoami(&server, &idle).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_expired"))
    );
}

async fn last_use_is_written_at_most_once_a_minute(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let last_used = || async {
        let (at,): (Option<i64>,) =
            sqlx::query_as("SELECT last_used_at FROM api_tokens WHERE id = $1")
                .bind(&pat.info.id)
                .fetch_one(server.state().pool())
                .await
                .unwrap();
        at
    };
    assert_eq!(last_used().await, None);
    whoami(&server, &pat.token).await;
    let first = last_used().await.expect("first use recorded");

    server.clock.advance(Duration::from_secs(30));
    whoami(&server, &pat.token).await;
    assert_eq!(last_used().await, Some(first), "no write within the minute");

    server.clock.advance(Duration::from_secs(31));
    whoami(&server, &pat.token).await;
    assert_eq!(last_used().await, Some(first + 61_000));
}

async fn sessions_list_marks_the_current_one_and_can_be_revoked(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let laptop = login(&server, &alice).await;
    let desktop = login(&server, &alice).await;

    let (status, list) = get_with_token(&server, &laptop, "/api/my/cli/sessions").await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["device"]["os"], "linux");

    let path = format!("/api/my/cli/sessions/{}", other["id"].as_str().unwrap());
    let (status, _) = send(
        server
            .anonymous()
            .delete(server.url(&path))
            .bearer_auth(&laptop),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(whoami(&server, &desktop).await.0, 401);
    assert_eq!(whoami(&server, &laptop).await.0, 200);
    assert!(server.audited("auth.cli.session.revoked").await);
}

async fn revoking_the_current_session_logs_this_cli_out(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let token = login(&server, &alice).await;
    let current = server.url("/api/my/cli/sessions/current");
    assert_eq!(
        send(server.anonymous().delete(&current).bearer_auth(&token))
            .await
            .0,
        200
    );
    assert_eq!(whoami(&server, &token).await.0, 401);

    // A PAT is not a session: refused with a pointer to the right endpoint.
    let pat = alice.create_pat("ci", None).await;
    let (status, body) = send(server.anonymous().delete(&current).bearer_auth(&pat.token)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(whoami(&server, &pat.token).await.0, 200);
}

async fn revoke_by_possession_answers_the_same_for_any_token(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let leaked = alice.create_pat("leaked", None).await;
    let revoke = |token: String| {
        send(
            server
                .anonymous()
                .post(server.url("/api/auth/cli/revoke"))
                .json(&json!({ "token": token })),
        )
    };
    let real = revoke(leaked.token.clone()).await;
    let unknown = revoke(
        claudemesh_api::Token::generate(claudemesh_api::TokenKind::Pat)
            .expose()
            .to_owned(),
    )
    .await;
    let garbage = revoke("not a token".into()).await;
    let again = revoke(leaked.token.clone()).await;
    assert_eq!(real, (200, json!({ "ok": true })));
    assert_eq!(unknown, real);
    assert_eq!(garbage, real);
    assert_eq!(again, real);
    assert_eq!(whoami(&server, &leaked.token).await.0, 401);
}

async fn users_never_see_or_touch_each_others_tokens(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let bob = server.register("Bob").await;
    let alice_pat = alice.create_pat("alice-ci", None).await;
    let alice_session = login(&server, &alice).await;
    let bob_pat = bob.create_pat("bob-ci", None).await;

    let (_, bobs) = get_with_token(&server, &bob_pat.token, "/api/my/cli/tokens").await;
    assert!(!bobs.to_string().contains("alice-ci"));
    let (_, bobs_sessions) = get_with_token(&server, &bob_pat.token, "/api/my/cli/sessions").await;
    assert_eq!(bobs_sessions["sessions"], json!([]));

    let (_, alice_sessions) = get_with_token(&server, &alice_session, "/api/my/cli/sessions").await;
    let alice_session_id = alice_sessions["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/api/my/cli/tokens/{}", alice_pat.info.id),
        format!("/api/my/cli/sessions/{alice_session_id}"),
    ] {
        let (status, body) = send(
            server
                .anonymous()
                .delete(server.url(&path))
                .bearer_auth(&bob_pat.token),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    assert_eq!(whoami(&server, &alice_pat.token).await.0, 200);
    assert_eq!(whoami(&server, &alice_session).await.0, 200);
}

async fn whoami_tells_which_credential_was_used(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let (status, me) = send(alice.browser.get(server.url("/api/my/whoami"))).await;
    assert_eq!(status, 200);
    assert_eq!(me["credential"]["via"], "cookie");
    assert_eq!(me["user"]["name"], "Alice");
    let pat = alice.create_pat("ci", None).await;
    let (_, me) = whoami(&server, &pat.token).await;
    assert_eq!(me["credential"]["via"], "token");
    assert!(me["credential"]["token"]["last_used_at"].is_string());
}

async fn malformed_or_unknown_bearer_tokens_are_refused(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let mut typo = pat.token.clone();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
    let unknown = claudemesh_api::Token::generate(claudemesh_api::TokenKind::Pat);
    for token in [
        typo.as_str(),
        unknown.expose(),
        "cm_pat_short",
        "ghp_notours",
    ] {
        let (status, body) = whoami(&server, token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_token")),
            "{token}"
        );
    }
    for header in ["Basic dXNlcjpwYXNz", "Bearer", "cm_pat_x"] {
        let (status, body) = send(
            server
                .anonymous()
                .get(server.url("/api/my/whoami"))
                .header("authorization", header),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_token")),
            "{header}"
        );
    }
    let (status, body) = send(server.anonymous().get(server.url("/api/my/whoami"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated"))
    );
}
