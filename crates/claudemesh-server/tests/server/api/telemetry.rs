//! `POST /api/telemetry`: what is stored, what is refused, the per-address
//! limit, the retention sweep, and `claudemesh-server telemetry-report`.
//! (The CLI's side, over the real binary, is in the CLI's tests.)

use claudemesh_server::telemetry::{self, BATCHES_PER_MINUTE};
use claudemesh_testkit::{Engine, Options, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    telemetry_stores_one_row_per_event_and_a_resent_event_once,
    telemetry_refuses_unknown_fields_events_and_urls,
    telemetry_batches_are_bounded_in_size,
    telemetry_batches_are_limited_per_address,
    telemetry_is_kept_for_the_retention_only,
    telemetry_report_prints_the_figures,
);

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase()
}

fn event(name: &str, properties: Value) -> Value {
    json!({ "event": name, "id": random_id(), "at": "2026-11-01T10:00:00Z", "properties": properties })
}

fn batch(install_id: &str, events: Vec<Value>) -> Value {
    json!({ "install_id": install_id, "cli_version": "0.12.0", "os": "linux", "arch": "x86_64", "events": events })
}

/// A login that failed once (denied) then worked, a few commands, an API
/// error and a logout: one installation's afternoon.
fn afternoon() -> Vec<Value> {
    let device = json!({ "method": "device-code" });
    vec![
        event("cli.login.started", device.clone()),
        event(
            "cli.login.failed",
            json!({ "method": "device-code", "reason": "denied" }),
        ),
        event("cli.login.started", device.clone()),
        event(
            "cli.login.succeeded",
            json!({ "method": "device-code", "user_id": "usr_abc123" }),
        ),
        event("cli.login.started", json!({ "method": "pat" })),
        event(
            "cli.login.failed",
            json!({ "method": "pat", "reason": "token_rejected" }),
        ),
        event(
            "cli.command.executed",
            json!({ "command": "list", "exit_code": 0, "duration_ms": 100, "authenticated": true }),
        ),
        event(
            "cli.command.executed",
            json!({ "command": "list", "exit_code": 5, "duration_ms": 300, "authenticated": true }),
        ),
        event(
            "cli.command.executed",
            json!({ "command": "login", "exit_code": 0, "duration_ms": 4000, "authenticated": false }),
        ),
        event(
            "cli.api.error",
            json!({ "endpoint": "/api/my/meshes/{slug}", "status": 404, "error_code": "not_found" }),
        ),
        event("cli.logout", json!({ "user_id": "usr_abc123" })),
    ]
}

async fn post(server: &TestServer, body: &Value) -> (u16, Value) {
    let response = server
        .anonymous()
        .post(server.url("/api/telemetry"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn stored(server: &TestServer) -> i64 {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM telemetry_events")
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    count
}

async fn telemetry_stores_one_row_per_event_and_a_resent_event_once(engine: Engine) {
    let server = TestServer::start(engine).await;
    let install = random_id();
    let body = batch(&install, afternoon());
    assert_eq!(post(&server, &body).await, (200, json!({ "accepted": 11 })));
    assert_eq!(stored(&server).await, 11);
    // The CLI resends a batch whose answer it did not get: stored once.
    assert_eq!(post(&server, &body).await.0, 200);
    assert_eq!(stored(&server).await, 11);

    // (name, command, endpoint, exit code, status)
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> =
        sqlx::query_as(
            "SELECT name, command, endpoint, CAST(exit_code AS BIGINT), CAST(status AS BIGINT) \
             FROM telemetry_events WHERE install_id = $1 AND name IN ('cli.command.executed', 'cli.api.error') \
             ORDER BY name, duration_ms",
        )
        .bind(&install)
        .fetch_all(server.state().pool())
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "cli.api.error".into(),
                None,
                Some("/api/my/meshes/{slug}".into()),
                None,
                Some(404)
            ),
            (
                "cli.command.executed".into(),
                Some("list".into()),
                None,
                Some(0),
                None
            ),
            (
                "cli.command.executed".into(),
                Some("list".into()),
                None,
                Some(5),
                None
            ),
            (
                "cli.command.executed".into(),
                Some("login".into()),
                None,
                Some(0),
                None
            ),
        ]
    );
    let (empty_status, _) = post(&server, &batch(&install, vec![])).await;
    assert_eq!(empty_status, 200);
}

async fn telemetry_refuses_unknown_fields_events_and_urls(engine: Engine) {
    let server = TestServer::start(engine).await;
    let install = random_id();
    let mut with_field = batch(&install, vec![]);
    with_field["hostname"] = json!("alice-laptop");
    let mut with_property = event("cli.logout", json!({ "user_id": null }));
    with_property["properties"]["email"] = json!("alice@example.com");
    let cases = [
        with_field,
        batch(&install, vec![with_property]),
        batch(&install, vec![event("cli.secret.read", json!({}))]),
        batch(
            &install,
            vec![event(
                "cli.command.executed",
                json!({ "command": "send Alice hi", "exit_code": 0, "duration_ms": 1, "authenticated": true }),
            )],
        ),
        // A URL, not a route template.
        batch(
            &install,
            vec![event(
                "cli.api.error",
                json!({ "endpoint": "/api/my/meshes/platform-team", "status": 404, "error_code": null }),
            )],
        ),
        batch(
            &install,
            vec![event(
                "cli.api.error",
                json!({ "endpoint": "https://claudemesh.com/api/my/whoami", "status": 401, "error_code": null }),
            )],
        ),
        batch(
            &install,
            vec![event(
                "cli.login.succeeded",
                json!({ "method": "pat", "user_id": "alice@example.com" }),
            )],
        ),
        batch("my-laptop", vec![]),
        {
            let mut late = event("cli.logout", json!({ "user_id": null }));
            late["at"] = json!("yesterday");
            batch(&install, vec![late])
        },
    ];
    for body in cases {
        let (status, answer) = post(&server, &body).await;
        assert_eq!(status, 400, "{body}\n{answer}");
        assert_eq!(answer["error"], "invalid_request", "{body}");
    }
    assert_eq!(stored(&server).await, 0);
}

async fn telemetry_batches_are_bounded_in_size(engine: Engine) {
    let server = TestServer::start(engine).await;
    let install = random_id();
    let logout = || event("cli.logout", json!({ "user_id": null }));
    let (status, answer) = post(
        &server,
        &batch(&install, (0..101).map(|_| logout()).collect()),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 events"),
        "{answer}"
    );
    let mut huge = batch(&install, vec![logout()]);
    huge["padding"] = json!("x".repeat(70 * 1024));
    let (status, answer) = post(&server, &huge).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, _) = post(
        &server,
        &batch(&install, (0..100).map(|_| logout()).collect()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stored(&server).await, 100);
}

async fn telemetry_batches_are_limited_per_address(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            trust_proxy: true,
            ..Options::default()
        },
    )
    .await;
    let install = random_id();
    let from = |ip: &'static str| {
        let body = batch(&install, vec![]);
        let request = server
            .anonymous()
            .post(server.url("/api/telemetry"))
            .header("x-forwarded-for", ip)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    for _ in 0..BATCHES_PER_MINUTE {
        assert_eq!(from("198.51.100.7").await.status(), 200);
    }
    let refused = from("198.51.100.7").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many telemetry batches from this address"),
        "{body}"
    );
    // Another address is not affected, and the first gets room once the
    // minute has passed.
    assert_eq!(from("203.0.113.9").await.status(), 200);
    server.clock.advance(Duration::from_secs(retry_after));
    assert_eq!(from("198.51.100.7").await.status(), 200);
}

async fn telemetry_is_kept_for_the_retention_only(engine: Engine) {
    let server = TestServer::start(engine).await;
    let pool = server.state().pool();
    post(&server, &batch(&random_id(), afternoon())).await;
    let now = server.state().now();
    assert_eq!(telemetry::sweep(pool, now, 90).await.unwrap(), 0);
    server.clock.advance(Duration::from_secs(89 * 24 * 3600));
    post(&server, &batch(&random_id(), afternoon())).await;
    let later = server.state().now() + 2 * 24 * 3600 * 1000;
    // 0 keeps everything.
    assert_eq!(telemetry::sweep(pool, later, 0).await.unwrap(), 0);
    assert_eq!(telemetry::sweep(pool, later, 90).await.unwrap(), 11);
    assert_eq!(stored(&server).await, 11);
}

async fn telemetry_report_prints_the_figures(engine: Engine) {
    let server = TestServer::start(engine).await;
    post(&server, &batch(&random_id(), afternoon())).await;
    post(&server, &batch(&random_id(), afternoon())).await;
    // One received 40 days ago: outside the report's 30 days. (The report
    // reads the real clock, so the row is moved back rather than the clock
    // forward.)
    let old = random_id();
    post(&server, &batch(&old, afternoon())).await;
    sqlx::query("UPDATE telemetry_events SET received_at = received_at - $1 WHERE install_id = $2")
        .bind(40_i64 * 24 * 3600 * 1000)
        .bind(&old)
        .execute(server.state().pool())
        .await
        .unwrap();

    let config = server.config();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claudemesh-server"));
    command
        .env_clear()
        .args(["telemetry-report", "--days", "30", "--data-dir"])
        .arg(&config.data_dir);
    if let Some(url) = &config.database_url {
        command.args(["--database-url", url]);
    }
    let output = command.output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    for line in [
        "claudemesh CLI telemetry, last 30 days (since ",
        "22 events from 2 installations",
        "  6 started, 2 succeeded, 4 failed: success rate 33.3% (succeeded of started)",
        "  method       started  succeeded  failed  success rate",
        "  device-code  4        2          2       50.0%",
        "  pat          2        0          2       0.0%",
        "  reason          count  share",
        "  denied          2      50.0%",
        "  token_rejected  2      50.0%",
        "  command  runs  failed  mean ms",
        "  list     4     50.0%   200",
        "  login    2     0.0%    4000",
        "  endpoint               status  error      count",
        "  /api/my/meshes/{slug}  404     not_found  2",
    ] {
        assert!(text.contains(line), "the report lacks {line:?}:\n{text}");
    }
}
