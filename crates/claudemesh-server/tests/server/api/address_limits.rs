//! Limits per client address on the writes that need no sign-in (starting a
//! CLI login on either face, creating an account, signing in): N in any
//! minute, then 429 `rate_limited` with `Retry-After`; and the clean-up of
//! long-finished device codes, a bounded batch per new code.

use claudemesh_api::wire::DeviceCodeResponse;
use claudemesh_server::auth::device_codes::{CLEANUP_BATCH, CODE_LIFETIME_MS, RETENTION_MS};
use claudemesh_testkit::{DEFAULT_PASSWORD, Engine, Options, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    the_31st_login_from_one_address_in_a_minute_is_refused,
    both_login_endpoints_share_the_count_and_ipv6_counts_by_its_64,
    sign_ups_are_limited_per_address,
    sign_ins_are_limited_per_address,
    long_finished_codes_are_deleted_a_batch_at_a_time,
    the_api_documents_the_429s,
);

/// A server with the limits per address on, taking the client address from
/// `X-Forwarded-For`.
async fn limited(engine: Engine) -> TestServer {
    TestServer::start_with(
        engine,
        Options {
            trust_proxy: true,
            address_limits: true,
            ..Options::default()
        },
    )
    .await
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    Answer {
        status: response.status().as_u16(),
        retry_after,
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// `POST /api/auth/cli/device-code` from `ip`.
async fn start_login(server: &TestServer, ip: &str) -> Answer {
    let response = server
        .anonymous()
        .post(server.url("/api/auth/cli/device-code"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "device_name": "laptop", "device_os": "linux", "device_arch": "x86_64" }))
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// `POST /oauth/device_authorization` from `ip`.
async fn start_oauth(server: &TestServer, ip: &str) -> (Answer, Option<String>) {
    let response = server
        .anonymous()
        .post(server.url("/oauth/device_authorization"))
        .header("x-forwarded-for", ip)
        .form(&[("client_id", "stock-cli")])
        .send()
        .await
        .unwrap();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|value| value.to_str().unwrap().to_owned());
    (answer(response).await, cache)
}

async fn device_code_rows(server: &TestServer) -> i64 {
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cli_device_codes")
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    rows
}

async fn the_31st_login_from_one_address_in_a_minute_is_refused(engine: Engine) {
    let server = limited(engine).await;
    for i in 0..30 {
        let started = start_login(&server, "198.51.100.7").await;
        assert_eq!(started.status, 200, "login {}: {}", i + 1, started.body);
    }
    let refused = start_login(&server, "198.51.100.7").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"], "rate_limited");
    assert_eq!(
        refused.retry_after.as_deref(),
        Some("60"),
        "all 30 were this second"
    );
    assert_eq!(
        refused.body["message"],
        "Too many login requests from this address: at most 30 a minute"
    );
    // Nothing was stored for it.
    assert_eq!(device_code_rows(&server).await, 30);

    // Another address is not affected; only the proxy's entry counts.
    assert_eq!(start_login(&server, "203.0.113.9").await.status, 200);
    assert_eq!(
        start_login(&server, "203.0.113.9, 198.51.100.7")
            .await
            .status,
        429
    );
    assert_eq!(
        start_login(&server, "198.51.100.7, 203.0.113.9")
            .await
            .status,
        200
    );

    // A minute after the burst there is room again.
    server.clock.advance(Duration::from_secs(59));
    let still = start_login(&server, "198.51.100.7").await;
    assert_eq!(
        (still.status, still.retry_after.as_deref()),
        (429, Some("1"))
    );
    server.clock.advance(Duration::from_secs(1));
    let again = start_login(&server, "198.51.100.7").await;
    assert_eq!(again.status, 200, "{}", again.body);
    let _: DeviceCodeResponse = serde_json::from_value(again.body).unwrap();
}

async fn both_login_endpoints_share_the_count_and_ipv6_counts_by_its_64(engine: Engine) {
    let server = limited(engine).await;
    for i in 0..15 {
        assert_eq!(start_login(&server, "2001:db8:5:6::1").await.status, 200);
        let host = format!("2001:db8:5:6::{:x}", i + 2);
        let (started, _) = start_oauth(&server, &host).await;
        assert_eq!(started.status, 200, "{}", started.body);
    }
    // Another address of the same /64 is the same client.
    assert_eq!(
        start_login(&server, "2001:db8:5:6:ffff::1").await.status,
        429
    );
    let (refused, cache) = start_oauth(&server, "2001:db8:5:6::99").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.retry_after.as_deref(), Some("60"));
    // RFC 6749 §5.2's shape, as every error of this endpoint.
    assert_eq!(refused.body["error"], "rate_limited");
    assert_eq!(
        refused.body["error_description"],
        "Too many login requests from this address: at most 30 a minute"
    );
    assert_eq!(cache.as_deref(), Some("no-store"));
    // The next /64 is someone else.
    let (other, _) = start_oauth(&server, "2001:db8:5:7::1").await;
    assert_eq!(other.status, 200);
}

async fn register(server: &TestServer, ip: &str, n: usize) -> Answer {
    let response = server
        .anonymous()
        .post(server.url("/api/auth/register"))
        .header("x-forwarded-for", ip)
        .json(&json!({
            "email": format!("person{n}@example.com"), "password": DEFAULT_PASSWORD, "name": "Person"
        }))
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn sign_ups_are_limited_per_address(engine: Engine) {
    let server = limited(engine).await;
    // Attempts count, whatever their outcome: a taken email too.
    for n in 0..9 {
        let created = register(&server, "198.51.100.7", n).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    assert_eq!(register(&server, "198.51.100.7", 0).await.status, 409);
    let refused = register(&server, "198.51.100.7", 100).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"], "rate_limited");
    assert_eq!(refused.retry_after.as_deref(), Some("60"));
    assert_eq!(
        refused.body["message"],
        "Too many new accounts from this address: at most 10 a minute"
    );
    let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    assert_eq!(users, 9);
    assert_eq!(register(&server, "203.0.113.9", 100).await.status, 201);
    // The other limits count on their own.
    assert_eq!(start_login(&server, "198.51.100.7").await.status, 200);
    server.clock.advance(Duration::from_secs(60));
    assert_eq!(register(&server, "198.51.100.7", 101).await.status, 201);
}

async fn sign_in(server: &TestServer, ip: &str, email: &str, password: &str) -> Answer {
    let response = server
        .anonymous()
        .post(server.url("/api/auth/sign-in"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn sign_ins_are_limited_per_address(engine: Engine) {
    let server = limited(engine).await;
    let alice = server.register("Alice").await;
    let sessions = || async {
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM browser_sessions")
            .fetch_one(server.state().pool())
            .await
            .unwrap();
        rows
    };
    let before = sessions().await;
    // The right password: each is a hash and a session row.
    for i in 0..29 {
        let signed_in = sign_in(&server, "198.51.100.7", &alice.email, DEFAULT_PASSWORD).await;
        assert_eq!(
            signed_in.status,
            200,
            "sign-in {}: {}",
            i + 1,
            signed_in.body
        );
    }
    // A wrong one counts too.
    assert_eq!(
        sign_in(&server, "198.51.100.7", &alice.email, "a guess")
            .await
            .status,
        401
    );
    let refused = sign_in(&server, "198.51.100.7", &alice.email, DEFAULT_PASSWORD).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"], "rate_limited");
    assert_eq!(refused.retry_after.as_deref(), Some("60"));
    assert_eq!(
        refused.body["message"],
        "Too many sign-ins from this address: at most 30 a minute"
    );
    assert_eq!(sessions().await, before + 29);
    assert_eq!(
        sign_in(&server, "203.0.113.9", &alice.email, DEFAULT_PASSWORD)
            .await
            .status,
        200
    );
}

async fn long_finished_codes_are_deleted_a_batch_at_a_time(engine: Engine) {
    // The default test server: no limit per address.
    let server = TestServer::start(engine).await;
    let old = usize::try_from(CLEANUP_BATCH).unwrap() + 50;
    for _ in 0..old {
        assert_eq!(start_login(&server, "127.0.0.1").await.status, 200);
    }
    // Expired, but kept for the retention.
    server.clock.advance(Duration::from_millis(
        u64::try_from(CODE_LIFETIME_MS + RETENTION_MS).unwrap(),
    ));
    assert_eq!(start_login(&server, "127.0.0.1").await.status, 200);
    assert_eq!(
        device_code_rows(&server).await,
        i64::try_from(old).unwrap() + 1
    );

    // A second later the first ones are past it: each new code deletes at
    // most a batch of them.
    server.clock.advance(Duration::from_secs(1));
    assert_eq!(start_login(&server, "127.0.0.1").await.status, 200);
    assert_eq!(device_code_rows(&server).await, 50 + 2);
    assert_eq!(start_login(&server, "127.0.0.1").await.status, 200);
    assert_eq!(device_code_rows(&server).await, 3, "only the recent ones");
}

async fn the_api_documents_the_429s(engine: Engine) {
    let server = TestServer::start(engine).await;
    let doc = server.openapi().await;
    for (path, schema, says) in [
        (
            "/api/auth/cli/device-code",
            "ErrorBody",
            "30 a minute by default",
        ),
        (
            "/oauth/device_authorization",
            "OAuthErrorBody",
            "30 a minute by default",
        ),
        ("/api/auth/register", "ErrorBody", "10 a minute by default"),
        ("/api/auth/sign-in", "ErrorBody", "30 a minute by default"),
    ] {
        let refused = &doc["paths"][path]["post"]["responses"]["429"];
        assert!(
            refused["headers"]["Retry-After"].is_object(),
            "{path}: {refused}"
        );
        assert_eq!(
            refused["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{path}"
        );
        let description = refused["description"].as_str().unwrap();
        assert!(
            description.contains("rate_limited") && description.contains(says),
            "{path}: {description}"
        );
    }
}
