//! Bad input gets a 4xx with `{ error, message }` on every endpoint: never a
//! 500, a panic, or an HTML error page.

use super::support::{send, start_login};
use claudemesh_testkit::{Engine, TestServer};
use serde_json::json;

on_both_engines!(
    every_json_endpoint_refuses_bad_bodies_with_a_stable_code,
    unknown_paths_and_methods_answer_json
);

async fn every_json_endpoint_refuses_bad_bodies_with_a_stable_code(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let code = start_login(&server).await;
    let _ = code;
    // (path, needs the signed-in browser)
    let endpoints = [
        ("/api/auth/register", false),
        ("/api/auth/sign-in", false),
        ("/api/auth/cli/device-code", false),
        ("/api/auth/cli/revoke", false),
        ("/api/my/cli/tokens", true),
        ("/api/my/password", true),
    ];
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024));
    for (path, signed_in) in endpoints {
        let client = if signed_in {
            alice.browser.clone()
        } else {
            server.browser()
        };
        let post = || client.post(server.url(path));
        let cases = [
            (
                "broken JSON",
                post().header("content-type", "application/json").body("{,"),
                400,
                "invalid_json",
            ),
            (
                "not an object",
                post().json(&json!([1, 2, 3])),
                400,
                "invalid_request",
            ),
            (
                "wrong types",
                post().json(&json!({ "name": 5, "email": [], "password": {} })),
                400,
                "invalid_request",
            ),
            (
                "unknown field",
                post().json(&json!({ "surprise": true })),
                400,
                "invalid_request",
            ),
            (
                "no content type",
                post().body("{}"),
                415,
                "unsupported_media_type",
            ),
            (
                "too large",
                post()
                    .header("content-type", "application/json")
                    .body(huge.clone()),
                413,
                "payload_too_large",
            ),
        ];
        for (what, request, status, error) in cases {
            let (got_status, body) = send(request).await;
            assert_eq!(
                (got_status, body["error"].as_str()),
                (status, Some(error)),
                "{path}: {what}: {body}"
            );
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{path}: {what}"
            );
        }
    }

    // An array is not an object, even of a body whose fields are all
    // optional (serde alone reads a struct from an array of its fields).
    let (status, body) = send(
        alice
            .browser
            .post(server.url("/api/my/meshes/any/invites"))
            .json(&json!([null, null])),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    // Field validation on the device-code request.
    for device in [
        json!({ "device_name": "", "device_os": "linux", "device_arch": "x86_64" }),
        json!({ "device_name": "x".repeat(101), "device_os": "linux", "device_arch": "x86_64" }),
        json!({ "device_name": "a\u{0007}b", "device_os": "linux", "device_arch": "x86_64" }),
        json!({ "device_name": "box", "device_os": "linux" }),
    ] {
        let (status, body) = send(
            server
                .anonymous()
                .post(server.url("/api/auth/cli/device-code"))
                .json(&device),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{device}"
        );
    }

    // Odd user codes in the path.
    for odd in ["%00", "AAAA-AAAA", "x".repeat(500).as_str(), "%F0%9F%92%A9"] {
        let (status, body) = send(
            alice
                .browser
                .post(server.url(&format!("/api/auth/cli/device-code/{odd}/approve"))),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("user_code_not_found")),
            "{odd}"
        );
    }
}

async fn unknown_paths_and_methods_answer_json(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (status, body) = send(server.anonymous().get(server.url("/api/nope"))).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = send(
        server
            .anonymous()
            .put(server.url("/api/auth/cli/device-code")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
}
