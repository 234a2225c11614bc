//! The device-code state machine through the spec's endpoints.

use super::support::{login, poll, send, start_login, wait_poll_interval, whoami};
use claudemesh_api::{Token, UserCode};
use claudemesh_testkit::{Engine, TestServer};
use std::time::Duration;

on_both_engines!(
    a_code_is_pending_until_approved_then_hands_out_its_token_once,
    start_returns_a_code_to_show_and_where_to_enter_it,
    polling_too_fast_answers_slow_down_without_moving_the_last_poll,
    a_code_expires_after_ten_minutes,
    an_approved_code_stays_claimable_for_a_minute_past_expiry,
    deny_ends_the_login_and_cannot_be_undone,
    a_code_can_be_decided_only_once,
    fifty_concurrent_pollers_get_exactly_one_token,
    unknown_and_malformed_device_codes_are_not_found,
    approving_needs_a_signed_in_browser,
    cookie_approval_from_another_site_is_refused,
    the_typed_code_is_forgiving_about_case_and_dash,
    guessing_codes_locks_out_that_user_but_not_others,
    a_successful_lookup_does_not_reset_the_guess_count,
    guessing_from_one_ip_locks_out_that_ip,
    audit_records_the_login_without_secrets,
);

async fn a_code_is_pending_until_approved_then_hands_out_its_token_once(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;

    let (status, body) = poll(&server, &code.device_code).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")));
    assert!(body.get("token").is_none());

    assert_eq!(alice.approve(&code.user_code).await.status(), 200);
    wait_poll_interval(&server);
    let (status, body) = poll(&server, &code.device_code).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    let token = body["token"]
        .as_str()
        .expect("token on first poll after approval");
    assert!(Token::parse(token).is_ok_and(|t| t.expose().starts_with("cm_session_")));
    assert_eq!(body["user"]["email"], alice.email.as_str());

    let (status, me) = whoami(&server, token).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["id"], alice.user.id.as_str());
    assert_eq!(me["credential"]["token"]["kind"], "session");
    assert_eq!(
        me["credential"]["token"]["device"]["name"],
        "Alice's laptop"
    );

    wait_poll_interval(&server);
    let (status, again) = poll(&server, &code.device_code).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "approved");
    assert_eq!(again["already_claimed"], true);
    assert!(
        again.get("token").is_none(),
        "the token is handed out only once"
    );
}

async fn start_returns_a_code_to_show_and_where_to_enter_it(engine: Engine) {
    let server = TestServer::start(engine).await;
    let code = start_login(&server).await;
    assert!(UserCode::parse(&code.user_code).is_ok());
    assert_eq!(code.user_code.len(), 9);
    assert_eq!(code.verification_url, server.url("/cli-auth"));
    assert_eq!(
        code.verification_uri_complete,
        format!("{}?code={}", server.url("/cli-auth"), code.user_code)
    );
    assert_eq!(code.interval, 1.5);
    assert_eq!(code.expires_in, 600);
    assert_eq!(code.device_code.len(), 52);
}

async fn polling_too_fast_answers_slow_down_without_moving_the_last_poll(engine: Engine) {
    let server = TestServer::start(engine).await;
    let code = start_login(&server).await;
    assert_eq!(poll(&server, &code.device_code).await.0, 200);

    server.clock.advance(Duration::from_millis(500));
    let (status, body) = poll(&server, &code.device_code).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "slow_down");
    assert_eq!(body["slow_down"], true);
    assert_eq!(body["interval"], 1.5);

    // 850 ms after the last *accepted* poll: 15% early is tolerated, and the
    // refused poll at 500 ms did not restart the wait.
    server.clock.advance(Duration::from_millis(350));
    assert_eq!(poll(&server, &code.device_code).await.0, 200);

    // But 30% early is not.
    server.clock.advance(Duration::from_millis(700));
    assert_eq!(poll(&server, &code.device_code).await.0, 429);
}

async fn a_code_expires_after_ten_minutes(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;

    server.clock.advance(Duration::from_secs(9 * 60 + 59));
    assert_eq!(
        poll(&server, &code.device_code).await.1["status"],
        "pending"
    );

    server.clock.advance(Duration::from_secs(2));
    assert_eq!(
        poll(&server, &code.device_code).await.1["status"],
        "expired"
    );

    let response = alice.approve(&code.user_code).await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "code_expired");

    wait_poll_interval(&server);
    assert_eq!(
        poll(&server, &code.device_code).await.1["status"],
        "expired"
    );
}

async fn an_approved_code_stays_claimable_for_a_minute_past_expiry(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let first = start_login(&server).await;
    let second = start_login(&server).await;
    server.clock.advance(Duration::from_secs(9 * 60 + 50));
    assert_eq!(alice.approve(&first.user_code).await.status(), 200);
    assert_eq!(alice.approve(&second.user_code).await.status(), 200);

    // 10:40 — past the expiry, within a minute of approval: still claimable.
    server.clock.advance(Duration::from_secs(50));
    let (_, body) = poll(&server, &first.device_code).await;
    assert!(body["token"].is_string(), "{body}");

    // 11:00 — more than a minute after approval: the unclaimed one lapsed.
    server.clock.advance(Duration::from_secs(20));
    let (_, body) = poll(&server, &second.device_code).await;
    assert_eq!(body["status"], "expired");
}

async fn deny_ends_the_login_and_cannot_be_undone(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;
    let response = alice.deny(&code.user_code).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "denied");

    let (status, body) = poll(&server, &code.device_code).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("denied")));
    assert!(body.get("token").is_none());

    let response = alice.approve(&code.user_code).await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "code_already_used");
}

async fn a_code_can_be_decided_only_once(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let mallory = server.register("Mallory").await;
    let code = start_login(&server).await;
    assert_eq!(alice.approve(&code.user_code).await.status(), 200);
    // Nobody, the approver included, can re-decide it.
    assert_eq!(mallory.approve(&code.user_code).await.status(), 409);
    assert_eq!(alice.deny(&code.user_code).await.status(), 409);
    let (_, body) = poll(&server, &code.device_code).await;
    assert_eq!(
        body["user"]["id"],
        alice.user.id.as_str(),
        "the first approver owns the session"
    );
}

async fn fifty_concurrent_pollers_get_exactly_one_token(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;
    assert_eq!(alice.approve(&code.user_code).await.status(), 200);

    let url = server.url(&format!("/api/auth/cli/device-code/{}", code.device_code));
    let polls = (0..50).map(|_| {
        let (client, url) = (server.anonymous(), url.clone());
        async move {
            let response = client.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    });
    let answers = join_all(polls).await;
    let tokens: Vec<_> = answers
        .iter()
        .filter(|(_, body)| body["token"].is_string())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "exactly one poller gets the token: {answers:?}"
    );
    for (status, body) in &answers {
        assert!(
            *status == 429 && body["error"] == "slow_down"
                || *status == 200 && body["status"] == "approved",
            "{status} {body}"
        );
    }
    // The database agrees: one session token exists.
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens WHERE kind = 'session'")
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    assert_eq!(count, 1);

    wait_poll_interval(&server);
    let (_, later) = poll(&server, &code.device_code).await;
    assert_eq!(later["already_claimed"], true);
}

/// Joins futures concurrently without pulling in the `futures` crate.
async fn join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    set.join_all().await
}

async fn unknown_and_malformed_device_codes_are_not_found(engine: Engine) {
    let server = TestServer::start(engine).await;
    let unknown = claudemesh_api::DeviceCode::generate();
    for code in [unknown.expose(), "short", "%20", &"Z".repeat(52)] {
        let (status, body) = poll(&server, code).await;
        assert_eq!(status, 404, "{code}");
        assert_eq!(body["error"], "not_found");
    }
}

async fn approving_needs_a_signed_in_browser(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let token = login(&server, &alice).await;
    let code = start_login(&server).await;
    let path = format!("/api/auth/cli/device-code/{}/approve", code.user_code);

    let (status, body) = send(server.anonymous().post(server.url(&path))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated"))
    );

    // A CLI token must not be able to mint more CLI tokens.
    let (status, _) = send(
        server
            .anonymous()
            .post(server.url(&path))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 401);

    assert_eq!(
        poll(&server, &code.device_code).await.1["status"],
        "pending"
    );
}

async fn cookie_approval_from_another_site_is_refused(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;
    let path = server.url(&format!(
        "/api/auth/cli/device-code/{}/approve",
        code.user_code
    ));

    let (status, body) = send(
        alice
            .browser
            .post(&path)
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("csrf_rejected"))
    );

    // No Origin and a foreign Referer: refused too.
    let cookie_only = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let (status, _) = send(cookie_only.post(server.url("/api/auth/sign-in")).json(
        &serde_json::json!({
            "email": alice.email, "password": alice.password
        }),
    ))
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        cookie_only
            .post(&path)
            .header("referer", "https://evil.example/x"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(cookie_only.post(&path)).await;
    assert_eq!(status, 403, "no Origin, no Referer, no token");
    assert_eq!(
        poll(&server, &code.device_code).await.1["status"],
        "pending"
    );

    // The same request with our own Referer goes through.
    let (status, _) = send(
        cookie_only
            .post(&path)
            .header("referer", server.url("/cli-auth")),
    )
    .await;
    assert_eq!(status, 200);
}

async fn the_typed_code_is_forgiving_about_case_and_dash(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;
    let typed = code.user_code.replace('-', "").to_lowercase();
    assert_eq!(alice.approve(&typed).await.status(), 200);
    assert_eq!(
        poll(&server, &code.device_code).await.1["status"],
        "approved"
    );
}

async fn guessing_codes_locks_out_that_user_but_not_others(engine: Engine) {
    let server = TestServer::start(engine).await;
    let guesser = server.register("Guesser").await;
    let bystander = server.register("Bystander").await;
    for _ in 0..10 {
        let wrong = UserCode::generate().to_string();
        assert_eq!(guesser.approve(&wrong).await.status(), 404);
    }
    let code = start_login(&server).await;
    let response = guesser.approve(&code.user_code).await;
    assert_eq!(response.status(), 429, "locked out even for a real code");
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts");

    assert_eq!(bystander.approve(&code.user_code).await.status(), 200);

    // The lock lifts once the failures age out of the window.
    server.clock.advance(Duration::from_secs(16 * 60));
    let fresh = start_login(&server).await;
    assert_eq!(guesser.approve(&fresh.user_code).await.status(), 200);
}

async fn a_successful_lookup_does_not_reset_the_guess_count(engine: Engine) {
    let server = TestServer::start(engine).await;
    let guesser = server.register("Guesser").await;
    for _ in 0..9 {
        assert_eq!(
            guesser
                .approve(&UserCode::generate().to_string())
                .await
                .status(),
            404
        );
    }
    let own = start_login(&server).await;
    assert_eq!(guesser.approve(&own.user_code).await.status(), 200);
    assert_eq!(
        guesser
            .approve(&UserCode::generate().to_string())
            .await
            .status(),
        404
    );
    let next = start_login(&server).await;
    assert_eq!(guesser.approve(&next.user_code).await.status(), 429);
}

async fn guessing_from_one_ip_locks_out_that_ip(engine: Engine) {
    let server = TestServer::start(engine).await;
    // Three accounts on one address stay under the per-account limit each,
    // but together reach the per-IP limit of 30.
    for name in ["One", "Two", "Three"] {
        let user = server.register(name).await;
        for _ in 0..10 {
            assert_eq!(
                user.deny(&UserCode::generate().to_string()).await.status(),
                404
            );
        }
    }
    let fourth = server.register("Four").await;
    let code = start_login(&server).await;
    assert_eq!(fourth.approve(&code.user_code).await.status(), 429);
}

async fn audit_records_the_login_without_secrets(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;
    assert_eq!(alice.approve(&code.user_code).await.status(), 200);
    let (_, body) = poll(&server, &code.device_code).await;
    let token = body["token"].as_str().unwrap().to_owned();

    let events = server.audit_events().await;
    let names: Vec<_> = events.iter().map(|(event, _, _)| event.as_str()).collect();
    assert!(names.contains(&"auth.cli.session.approved"), "{names:?}");
    assert!(names.contains(&"auth.cli.session.created"), "{names:?}");
    for (event, user_id, detail) in &events {
        if event.starts_with("auth.cli.") {
            assert_eq!(user_id.as_deref(), Some(alice.user.id.as_str()));
        }
        assert!(!detail.contains(&token), "{event} leaks the token");
        assert!(
            !detail.contains(&code.device_code),
            "{event} leaks the device code"
        );
    }
}
