//! What operators watch: `/readyz` beside `/healthz`, and `/metrics` on the
//! address `--metrics-bind` names (and nowhere else).
//!
//! The metrics registry is the process's, shared by the tests running in
//! this binary at the same time: these tests read a figure before and after
//! what they do and assert that it grew, never an exact value.

use claudemesh_api::broker::Priority;
use claudemesh_testkit::{Engine, Options, TestServer};
use std::collections::HashMap;

on_both_engines!(
    readyz_says_ready_and_names_what_is_missing,
    metrics_are_served_only_where_asked_and_count_what_happened,
);

async fn readyz_says_ready_and_names_what_is_missing(engine: Engine) {
    let server = TestServer::start(engine).await;
    let client = server.anonymous();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({ "ready": true })
    );
    // A schema behind this build (a migration row gone, as after a restore
    // from an older backup): not ready, and the reason says which.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(server.state().pool())
    .await
    .unwrap();
    let behind = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(behind.status(), 503);
    let body: serde_json::Value = behind.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("this build needs"),
        "{body}"
    );
    // Liveness is another question: the process still answers.
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// Sample name with its labels (`name{a="1",b="2"}`) → value, for the lines
/// of the text format this test reads (no escapes in our label values).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let url = server.metrics_url().expect("metrics are on");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    samples(&response.text().await.unwrap())
}

fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn metrics_are_served_only_where_asked_and_count_what_happened(engine: Engine) {
    // Off by default: nothing new on the public address.
    let plain = TestServer::start(engine).await;
    assert_eq!(plain.metrics_url(), None);
    let public = plain
        .anonymous()
        .get(plain.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    let server = TestServer::start_with(
        engine,
        Options {
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    let public = server
        .anonymous()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404, "only on --metrics-bind's address");
    let whoami_ok =
        r#"claudemesh_http_requests_total{method="GET",route="/api/my/whoami",status="200"}"#;
    let whoami_refused =
        r#"claudemesh_http_requests_total{method="GET",route="/api/my/whoami",status="401"}"#;
    let before = scrape(&server).await;

    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let client = server.anonymous();
    for _ in 0..3 {
        let ok = client
            .get(server.url("/api/my/whoami"))
            .bearer_auth(&pat.token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    let refused = client
        .get(server.url("/api/my/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let mesh = server.mesh(&["Ada", "Ben"]).await;
    let ada = mesh.connect(0).await;
    let ben = mesh.connect(1).await;
    ada.send("ben", "hello", Priority::Next).await.unwrap();
    // A send to a key that is no one here: refused with a code, counted by it.
    let stranger = claudemesh_api::e2e::KeyPair::generate()
        .unwrap()
        .public_hex();
    let to_no_one = claudemesh_client::Resolved {
        kind: claudemesh_api::broker::MessageKind::Direct,
        group: None,
        keys: vec![stranger],
        waits: false,
        sessions: 1,
    };
    assert!(
        ada.send_resolved(&to_no_one, "hello", Priority::Next)
            .await
            .is_err()
    );
    let during = scrape(&server).await;
    drop(ben);

    assert!(value(&during, whoami_ok) >= value(&before, whoami_ok) + 3.0);
    assert!(value(&during, whoami_refused) >= value(&before, whoami_refused) + 1.0);
    let latency_count =
        r#"claudemesh_http_request_duration_seconds_count{method="GET",route="/api/my/whoami"}"#;
    assert!(value(&during, latency_count) >= value(&before, latency_count) + 4.0);
    assert!(
        value(&during, "claudemesh_broker_sessions") >= 2.0,
        "two sessions of this test are connected: {during:?}"
    );
    assert!(
        value(&during, "claudemesh_broker_messages_in_total")
            > value(&before, "claudemesh_broker_messages_in_total")
    );
    assert!(
        value(&during, "claudemesh_broker_writer_commit_seconds_count")
            > value(&before, "claudemesh_broker_writer_commit_seconds_count")
    );
    let unknown = r#"claudemesh_broker_refusals_total{code="unknown_recipient"}"#;
    assert!(value(&during, unknown) > value(&before, unknown));
    assert!(during.contains_key(r#"claudemesh_db_connections{state="idle"}"#));
}
