//! The per-token request limit: 100 requests in any minute per API token by
//! default, then 429 `rate_limited` with `Retry-After`.

use super::support::whoami;
use claudemesh_testkit::{Engine, Options, TestServer};
use serde_json::Value;
use std::time::Duration;

on_both_engines!(
    the_101st_request_in_a_minute_is_refused_with_retry_after,
    other_tokens_and_browser_sessions_are_unaffected,
    requests_pass_again_once_the_minute_has_passed,
    every_route_a_token_reaches_counts_against_its_limit,
    zero_turns_the_limit_off,
    the_api_documents_the_429,
);

/// `GET path` with a bearer token: `(status, Retry-After, body)`.
async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Option<String>, Value) {
    let response = server
        .anonymous()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let status = response.status().as_u16();
    (status, retry_after, response.json().await.unwrap())
}

/// Makes `n` accepted requests with `token`.
async fn use_up(server: &TestServer, token: &str, n: usize) {
    for i in 0..n {
        let (status, body) = whoami(server, token).await;
        assert_eq!(status, 200, "request {}: {body}", i + 1);
    }
}

async fn the_101st_request_in_a_minute_is_refused_with_retry_after(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    use_up(&server, &pat.token, 100).await;

    let (status, retry_after, body) = get(&server, &pat.token, "/api/my/whoami").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(
        retry_after.as_deref(),
        Some("60"),
        "all 100 were this second"
    );
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("100 a minute"), "{message}");
    assert!(
        !message.contains(&pat.token) && !body.to_string().contains(&pat.info.id),
        "the answer names neither the token nor its id"
    );
}

async fn other_tokens_and_browser_sessions_are_unaffected(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let bob = server.register("Bob").await;
    let busy = alice.create_pat("busy", None).await;
    let other = alice.create_pat("other", None).await;
    let bobs = bob.create_pat("bob", None).await;
    use_up(&server, &busy.token, 100).await;
    assert_eq!(whoami(&server, &busy.token).await.0, 429);

    // Another token of the same account, and another account's token.
    use_up(&server, &other.token, 100).await;
    use_up(&server, &bobs.token, 1).await;
    // The browser is not an API key: no limit, even past 100.
    for _ in 0..120 {
        let response = alice
            .browser
            .get(server.url("/api/my/whoami"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // An unknown or revoked token is a 401, never a 429.
    assert_eq!(whoami(&server, &format!("{}x", busy.token)).await.0, 401);
    let revoked = alice
        .browser
        .delete(server.url(&format!("/api/my/cli/tokens/{}", busy.info.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, body) = whoami(&server, &busy.token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
}

async fn requests_pass_again_once_the_minute_has_passed(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    use_up(&server, &pat.token, 60).await;
    server.clock.advance(Duration::from_secs(30));
    use_up(&server, &pat.token, 40).await;

    // Full: the first 60 leave the window a minute after they came.
    server.clock.advance(Duration::from_secs(29));
    let (status, retry_after, _) = get(&server, &pat.token, "/api/my/whoami").await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
    server.clock.advance(Duration::from_secs(1));
    use_up(&server, &pat.token, 60).await;
    // The 40 are still in the window for another 30 seconds.
    let (status, retry_after, _) = get(&server, &pat.token, "/api/my/whoami").await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("30")));
    server.clock.advance(Duration::from_secs(30));
    use_up(&server, &pat.token, 40).await;
}

async fn every_route_a_token_reaches_counts_against_its_limit(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            token_requests_per_minute: Some(3),
            ..Options::default()
        },
    )
    .await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    for path in [
        "/api/my/whoami",
        "/api/my/meshes",
        "/api/my/cli/tokens",
        "/api/my/cli/sessions",
    ] {
        let (status, retry_after, body) = get(&server, &pat.token, path).await;
        if path == "/api/my/cli/sessions" {
            assert_eq!(status, 429, "{path}: {body}");
            assert_eq!(retry_after.as_deref(), Some("60"));
        } else {
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    let created = server
        .anonymous()
        .post(server.url("/api/my/meshes"))
        .bearer_auth(&pat.token)
        .json(&serde_json::json!({ "name": "Too fast", "public_key": "ab".repeat(32) }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 429, "writes count too, and are not done");
    assert!(
        alice
            .browser
            .get(server.url("/api/my/meshes"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["meshes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn zero_turns_the_limit_off(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            token_requests_per_minute: Some(0),
            ..Options::default()
        },
    )
    .await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    use_up(&server, &pat.token, 250).await;
}

async fn the_api_documents_the_429(engine: Engine) {
    let server = TestServer::start(engine).await;
    let doc = server.openapi().await;
    for (path, method) in [
        ("/api/my/whoami", "get"),
        ("/api/my/cli/tokens", "post"),
        ("/api/my/meshes", "get"),
        ("/api/my/meshes/{slug}/invites", "post"),
        ("/api/invites/{code}/accept", "post"),
    ] {
        let answer = &doc["paths"][path][method]["responses"]["429"];
        assert!(
            answer["headers"]["Retry-After"].is_object(),
            "{method} {path}: {answer}"
        );
        assert_eq!(
            answer["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{method} {path}"
        );
    }
    // Routes without a bearer token have no such answer.
    assert!(doc["paths"]["/api/auth/cli/revoke"]["post"]["responses"]["429"].is_null());
}
