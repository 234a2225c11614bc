//! Start-up: the embedded default, migrations, restarts, several instances.

use claudemesh_server::Application;
use claudemesh_server::clock::SystemClock;
use claudemesh_testkit::{Engine, TestServer};
use sqlx::{Connection, Executor};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

on_both_engines!(
    data_survives_a_restart_and_migrations_run_once,
    instances_starting_together_share_one_database,
    the_api_describes_itself,
);

async fn data_survives_a_restart_and_migrations_run_once(engine: Engine) {
    let mut server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let applied = |server: &TestServer| {
        let pool = server.state().pool().clone();
        async move {
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            count
        }
    };
    let before = applied(&server).await;
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(
        before,
        i64::try_from(shipped).unwrap(),
        "every shipped migration applied"
    );
    server.restart().await;
    let response = server
        .anonymous()
        .get(server.url("/api/my/whoami"))
        .bearer_auth(&pat.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        applied(&server).await,
        before,
        "nothing re-applied on restart"
    );
}

async fn instances_starting_together_share_one_database(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    // Two more instances on the same store, started at once, as behind a load balancer.
    let build = || {
        let mut config = server.config().clone();
        config.bind = "127.0.0.1:0".into();
        config.public_url = None;
        Application::build(config, Arc::new(SystemClock))
    };
    let (a, b) = tokio::join!(build(), build());
    for app in [a.unwrap(), b.unwrap()] {
        let url = format!("http://{}/api/my/whoami", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        let response = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&pat.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Revoked through the first instance: refused by the others at once.
    let revoke = server.url(&format!("/api/my/cli/tokens/{}", pat.info.id));
    assert_eq!(
        alice.browser.delete(revoke).send().await.unwrap().status(),
        200
    );
}

async fn the_api_describes_itself(engine: Engine) {
    let server = TestServer::start(engine).await;
    let doc = server.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/auth/cli/device-code",
        "/api/auth/cli/device-code/{code}",
        "/api/auth/cli/device-code/{code}/approve",
        "/api/auth/cli/device-code/{code}/deny",
        "/api/auth/cli/revoke",
        "/api/my/whoami",
        "/api/my/cli/tokens",
        "/api/my/cli/tokens/{id}",
        "/api/my/cli/sessions",
        "/api/my/cli/sessions/{id}",
        "/api/my/cli/sessions/current",
        "/api/auth/register",
        "/api/auth/sign-in",
        "/oauth/device_authorization",
        "/oauth/token",
        "/api/telemetry",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["DevicePollResponse"].is_object());
}

/// The document states the rules the handlers check, from the same
/// constants, and every answer the shared extractors give:
/// `scripts/api-contract` holds the running server to it.
#[tokio::test]
async fn the_document_states_what_the_handlers_check() {
    use claudemesh_api::rules;
    use serde_json::json;

    let server = TestServer::start(Engine::Sqlite).await;
    let doc = server.openapi().await;
    assert_eq!(doc["openapi"], "3.2.0");
    let schemas = &doc["components"]["schemas"];
    let pat = &schemas["CreatePatRequest"]["properties"];
    assert_eq!(pat["name"]["maxLength"], rules::MAX_LABEL_CHARS);
    assert_eq!(pat["name"]["pattern"], rules::label_pattern());
    assert_eq!(pat["expires_in_days"]["enum"], json!([30, 90, 365, null]));
    let register = &schemas["RegisterRequest"]["properties"];
    assert_eq!(register["password"]["minLength"], rules::MIN_PASSWORD_CHARS);
    assert_eq!(register["email"]["pattern"], rules::email_pattern());
    assert_eq!(
        schemas["CreateMeshRequest"]["properties"]["public_key"]["pattern"],
        rules::public_key_pattern()
    );
    assert_eq!(
        schemas["CreateInviteRequest"]["properties"]["max_uses"]["maximum"],
        rules::MAX_INVITE_USES
    );
    let endpoints = schemas["ApiErrorProperties"]["properties"]["endpoint"]["enum"]
        .as_array()
        .unwrap();
    assert!(endpoints.contains(&json!("/api/my/meshes/{slug}")));

    let oauth = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["deviceAuthorization"];
    assert_eq!(oauth["tokenUrl"], "/oauth/token");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let answers = &operation["responses"];
            if operation["requestBody"]["content"]["application/json"].is_object() {
                for status in ["400", "413", "415"] {
                    assert!(answers[status].is_object(), "{method} {path}: {status}");
                }
            }
            let needs_credential = operation["security"]
                .as_array()
                .is_some_and(|ways| !ways.is_empty() && !ways.contains(&json!({})));
            if needs_credential {
                assert!(answers["401"].is_object(), "{method} {path}: 401");
            }
        }
    }
    let whoami = &doc["paths"]["/api/my/whoami"]["get"];
    assert_eq!(
        whoami["security"],
        json!([{ "bearer": [] }, { "oauth2": [] }, { "cookie": [] }])
    );
}

fn server_binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claudemesh-server"));
    command
        .env_remove("DATABASE_URL")
        .env("CLAUDEMESH_LOG_FORMAT", "text");
    command
}

#[test]
fn with_no_configuration_the_server_runs_on_sqlite_in_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = server_binary()
        .current_dir(dir.path())
        .env("CLAUDEMESH_BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let addr = first_line
        .split_whitespace()
        .find(|word| word.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_owned();
    assert!(first_line.contains("SQLite"), "{first_line}");
    let health = std::net::TcpStream::connect(&addr);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(health.is_ok());
    assert!(dir.path().join("data/claudemesh.db").exists());
}

#[tokio::test]
async fn a_failed_migration_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("data/claudemesh.db").display()
    );
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    conn.execute("CREATE TABLE users (something_else INTEGER)")
        .await
        .unwrap();
    conn.close().await.unwrap();

    let output = server_binary()
        .env("CLAUDEMESH_DATA_DIR", dir.path().join("data"))
        .env("CLAUDEMESH_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database migration failed"), "{stderr}");
}

#[test]
fn an_unsupported_database_url_is_refused() {
    let output = server_binary()
        .env("DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("DATABASE_URL must start with postgres://")
    );
}
