//! The server's per-token request limit, as the CLI meets it: a command that
//! only reads waits out `Retry-After` and asks once more; a change stops
//! with exit 1 and says when to try again.

use crate::harness::*;
use claudemesh_testkit::Options;

/// A server whose clock runs in real time and whose tokens may make two
/// requests a minute.
async fn limited_server() -> TestServer {
    TestServer::start_with(
        Engine::Sqlite,
        Options {
            running_clock: true,
            token_requests_per_minute: Some(2),
            ..Options::default()
        },
    )
    .await
}

/// Spends what is left of `token`'s minute, over plain HTTP.
async fn use_up(server: &TestServer, token: &str) {
    for _ in 0..3 {
        if whoami_status(server, token).await == 429 {
            return;
        }
    }
    panic!("a limit of 2 a minute never refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_over_the_request_limit_waits_and_asks_again() {
    let server = limited_server().await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let cli = Cli::for_server(&server);
    use_up(&server, &pat.token).await;
    // Those requests leave the window in a second or two.
    server.clock.advance(Duration::from_secs(58));

    let out = cli
        .cmd(["whoami"])
        .env("CLAUDEMESH_TOKEN", &pat.token)
        .run()
        .await
        .expect_code(0);
    out.stderr_has("⚠ Too many requests with this token; waiting ")
        .never_shows(&pat.token);
    assert!(
        out.stdout.starts_with(&format!(
            "Logged in to {} as Alice ({})\n",
            server.base_url, alice.email
        )),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_over_the_request_limit_exits_1_and_says_when_to_try_again() {
    let server = limited_server().await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;
    use_up(&server, &pat.token).await;
    server.clock.advance(Duration::from_secs(30));

    let out = cli
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(1);
    out.stderr_has("✘ Too many requests with this token: at most 2 a minute\nTry again in ")
        .stderr_has(" seconds.\n");
    assert!(
        !out.stderr.contains("waiting"),
        "a change is never sent twice"
    );
    let meshes: Value = alice
        .browser
        .get(server.url("/api/my/meshes"))
        .send()
        .await
        .expect("list meshes")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        meshes["meshes"],
        serde_json::json!([]),
        "nothing was created"
    );
    assert!(
        !cli.config_dir.join("config.json").exists()
            || !std::fs::read_to_string(cli.config_dir.join("config.json"))
                .expect("config.json")
                .contains("platform-team"),
        "nothing is recorded here"
    );
}
