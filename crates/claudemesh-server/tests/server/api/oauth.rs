//! The same login through RFC 8628, as a stock OAuth client would do it.

use claudemesh_testkit::{Engine, TestServer};
use serde_json::Value;
use std::time::Duration;

on_both_engines!(
    a_stock_device_flow_client_can_sign_in,
    rfc_errors_follow_rfc_6749
);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn token_request(server: &TestServer, device_code: &str) -> (u16, Value, Option<String>) {
    let response = server
        .anonymous()
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", GRANT),
            ("device_code", device_code),
            ("client_id", "stock-cli"),
        ])
        .send()
        .await
        .unwrap();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status().as_u16(),
        response.json().await.unwrap(),
        cache,
    )
}

async fn a_stock_device_flow_client_can_sign_in(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let response = server
        .anonymous()
        .post(server.url("/oauth/device_authorization"))
        .form(&[("client_id", "stock-cli"), ("scope", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let grant: Value = response.json().await.unwrap();
    assert_eq!(grant["interval"], 2, "whole seconds");
    assert!(grant["interval"].is_u64());
    assert_eq!(grant["expires_in"], 600);
    assert_eq!(grant["verification_uri"], server.url("/cli-auth"));
    let user_code = grant["user_code"].as_str().unwrap();
    assert!(
        grant["verification_uri_complete"]
            .as_str()
            .unwrap()
            .ends_with(user_code)
    );
    let device_code = grant["device_code"].as_str().unwrap();

    let (status, body, cache) = token_request(&server, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    assert_eq!(cache.as_deref(), Some("no-store"));

    let (status, body, _) = token_request(&server, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("slow_down")));

    assert_eq!(alice.approve(user_code).await.status(), 200);
    server.clock.advance(Duration::from_secs(2));
    let (status, body, cache) = token_request(&server, device_code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(cache.as_deref(), Some("no-store"));
    let token = body["access_token"].as_str().unwrap();
    let me = server
        .anonymous()
        .get(server.url("/api/my/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me["credential"]["token"]["name"], "stock-cli",
        "named after the client"
    );

    server.clock.advance(Duration::from_secs(2));
    let (status, body, _) = token_request(&server, device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a device code is used once"
    );
}

async fn rfc_errors_follow_rfc_6749(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let start = || async {
        let response = server
            .anonymous()
            .post(server.url("/oauth/device_authorization"))
            .form(&[("client_id", "x")])
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()
    };
    let denied = start().await;
    assert_eq!(
        alice
            .deny(denied["user_code"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let (_, body, _) = token_request(&server, denied["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "access_denied");

    let expired = start().await;
    server.clock.advance(Duration::from_secs(601));
    let (_, body, _) = token_request(&server, expired["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "expired_token");

    let (_, body, _) = token_request(&server, "nonsense").await;
    assert_eq!(body["error"], "invalid_grant");

    let response = server
        .anonymous()
        .post(server.url("/oauth/token"))
        .form(&[("grant_type", "password"), ("username", "a")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");

    let response = server
        .anonymous()
        .post(server.url("/oauth/token"))
        .form(&[("grant_type", GRANT)])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}
