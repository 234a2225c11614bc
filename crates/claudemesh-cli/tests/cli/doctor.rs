//! `claudemesh doctor`: every check against a live server, a dead one, a
//! revoked token, meshes not joined here, and a missing or old Claude Code
//! (the test double answers `--version` as Claude Code does).

use crate::harness::*;

fn statuses(json: &Value) -> Vec<(String, String)> {
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("a name").to_owned(),
                c["status"].as_str().expect("a status").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_when_everything_works() {
    let DevMesh(server, _mesh, [ada]) = DevMesh::start(Engine::Sqlite, ["Ada"]).await;
    let claude = fake_claude();
    let claude = claude.to_str().expect("a path");
    let out = ada
        .cmd(["doctor", "--json"])
        .env("CLAUDEMESH_CLAUDE_BIN", claude)
        .run()
        .await
        .expect_code(0);
    let json = out.stdout_json();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["server"], server.base_url.as_str());
    let pass = |name: &str| (name.to_owned(), "pass".to_owned());
    assert_eq!(
        statuses(&json),
        [
            pass("server"),
            pass("token"),
            pass("meshes"),
            pass("broker"),
            pass("claude_code"),
            pass("mcp")
        ],
        "{json}"
    );

    let out = ada
        .cmd(["doctor"])
        .env("CLAUDEMESH_CLAUDE_BIN", claude)
        .run()
        .await
        .expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    assert!(lines.iter().all(|l| l.starts_with("✔ ")), "{}", out.stdout);
    assert!(lines[0].starts_with(&format!("✔ Server {} answers in ", server.base_url)));
    assert!(lines[0].contains(&format!(
        "(claudemesh-server {})",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(lines[1].starts_with("✔ Signed in as Ada ("), "{}", lines[1]);
    assert_eq!(lines[2], "✔ Joined here: dev");
    assert!(
        lines[3].starts_with("✔ Broker of dev: handshake in "),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("✔ Claude Code 2.1.332 at "),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].contains("with the claude/channel capability"),
        "{}",
        lines[5]
    );
    assert_eq!(out.stderr, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_with_no_server_says_so_and_checks_what_it_can() {
    let cli = Cli::new(&dead_url());
    let out = cli
        .cmd(["doctor"])
        .env("CLAUDEMESH_CLAUDE_BIN", "/nonexistent/claude")
        .run()
        .await
        .expect_code(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "✘ The server at {} cannot be reached (Connection refused)",
            cli.api_url
        )
    );
    assert_eq!(
        lines[1],
        "  Start it, or point CLAUDEMESH_API_URL (or --api-url) at the one you use."
    );
    assert!(
        out.stdout
            .contains("- Token not checked: the server cannot be reached\n")
    );
    assert!(
        out.stdout
            .contains("- Meshes not checked: the server cannot be reached\n")
    );
    // Claude Code is local: checked all the same.
    assert!(
        out.stdout
            .contains("✘ CLAUDEMESH_CLAUDE_BIN names /nonexistent/claude, which is not a file\n")
    );
    out.stderr_has("✘ 2 checks failed\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_a_revoked_token_needs_a_new_login() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;
    server
        .anonymous()
        .post(server.url("/api/auth/cli/revoke"))
        .json(&json!({ "token": pat.token }))
        .send()
        .await
        .expect("revoke");
    let out = cli.cmd(["doctor"]).run().await.expect_code(1);
    assert!(
        out.stdout.contains(
            "✘ Authentication failed (token expired or revoked)\n  Run claudemesh login to re-authenticate.\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("- Meshes not checked: not signed in\n"),
        "{}",
        out.stdout
    );
    out.never_shows(&pat.token);

    // Not signed in at all.
    let fresh = Cli::for_server(&server);
    let out = fresh.cmd(["doctor", "--json"]).run().await.expect_code(1);
    let json = out.stdout_json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["checks"][1]["detail"], "Not signed in");
    assert_eq!(
        json["checks"][1]["fix"],
        "Run `claudemesh login` (in CI, set CLAUDEMESH_TOKEN to a personal access token)."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_finds_meshes_not_joined_here_and_an_old_claude_code() {
    let DevMesh(server, _mesh, [ada]) = DevMesh::start(Engine::Sqlite, ["Ada"]).await;
    // A mesh made on another machine of Ada's is not joined on this one.
    let desktop = Cli::for_server(&server);
    desktop.login_with_pat(&ada.saved_token()).await;
    desktop.cmd(["create", "Ops"]).run().await.expect_code(0);

    let claude = fake_claude();
    let out = ada
        .cmd(["doctor"])
        .env("CLAUDEMESH_CLAUDE_BIN", claude.to_str().expect("a path"))
        .env("FAKE_CLAUDE_VERSION", "2.1.50")
        .run()
        .await
        .expect_code(1);
    assert!(
        out.stdout.contains(
            "✘ Not joined on this machine: ops (joined here: dev)\n  Run `claudemesh sync` to join them here.\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "✘ Claude Code 2.1.50 at {} is older than 2.1.80, the first with channels\n  Update it: `npm install -g @anthropic-ai/claude-code@latest`.\n",
            claude.display()
        )),
        "{}",
        out.stdout
    );

    // `sync`, as it says, mends the first.
    ada.cmd(["sync"]).run().await.expect_code(0);
    let json = ada
        .cmd(["doctor", "--json"])
        .env("CLAUDEMESH_CLAUDE_BIN", claude.to_str().expect("a path"))
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["checks"][2]["detail"], "Joined here: dev, ops");
}
