//! What a new user is told on the way in: a logout that keeps a PAT that
//! other machines use, a rejected token that says where it came from, one
//! exit code for a malformed token, the next command after a login, an
//! invite link without a login, a mistyped command, and usage lines.

use crate::harness::*;

/// Revokes a token by possession, as anyone holding it may.
async fn revoke(server: &TestServer, token: &str) {
    let status = server
        .anonymous()
        .post(server.url("/api/auth/cli/revoke"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("revoke request")
        .status();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_keeps_a_pat_working_elsewhere_and_says_how_to_revoke_it() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("ci", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;

    let out = cli.cmd(["logout"]).run().await.expect_code(0);
    out.stderr_has(&format!(
        "The personal access token still works wherever else it is used (CI, other machines); \
         revoke it with `claudemesh logout --revoke` or on the CLI tokens page ({}/dashboard/settings/cli-tokens).\n",
        server.base_url
    ))
    .stderr_has(&format!("✔ Removed {}\n", cli.auth_path().display()))
    .never_shows(&pat.token);
    assert!(!out.stderr.contains("revoked on server"), "{}", out.stderr);
    assert!(!cli.auth_path().exists());
    // The CI job that uses the same PAT goes on working.
    assert_eq!(whoami_status(&server, &pat.token).await, 200);

    // --revoke: this time it is revoked, and --json says which happened.
    cli.login_with_pat(&pat.token).await;
    let out = cli
        .cmd(["logout", "--revoke", "--json"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("✔ Token revoked on server\n");
    let json = out.stdout_json();
    assert_eq!(json["revoked_on_server"], true);
    assert_eq!(json["kept_on_server"], false);
    assert_eq!(whoami_status(&server, &pat.token).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_json_says_a_pat_was_kept() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&pat.token).await;
    let json = cli
        .cmd(["logout", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["revoked_on_server"], false);
    assert_eq!(json["kept_on_server"], true);
    assert_eq!(whoami_status(&server, &pat.token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_says_where_it_came_from_and_what_to_do() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let saved = alice.create_pat("laptop", None).await;
    let given = alice.create_pat("old ci", None).await;
    revoke(&server, &given.token).await;
    let cli = Cli::for_server(&server);
    cli.login_with_pat(&saved.token).await;

    // In the environment: a new login would not help while it is set.
    let out = cli
        .cmd(["whoami"])
        .env("CLAUDEMESH_TOKEN", &given.token)
        .says(
            2,
            "✘ The token in CLAUDEMESH_TOKEN was rejected (expired or revoked)\n\
             CLAUDEMESH_TOKEN wins over `claudemesh login`: unset it to use your saved login, \
             or set it to a new personal access token from the CLI tokens page",
        )
        .await;
    out.never_shows(&given.token);
    assert!(!out.stderr.contains("re-authenticate"), "{}", out.stderr);

    // Given with --token.
    cli.cmd(["list", "--token", &given.token])
        .says(
            2,
            "✘ The token given with --token was rejected (expired or revoked)\n\
             Create a new personal access token on the CLI tokens page",
        )
        .await;

    // The saved login's own token: logging in again is the answer.
    revoke(&server, &saved.token).await;
    let out = cli.cmd(["whoami"]).run().await.expect_code(2);
    assert_eq!(out.stderr, AUTH_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_token_fails_with_one_exit_code_wherever_it_is_given() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);
    let typo = "cm_pat_thisisnotavalidtokenatall";
    cli.cmd(["whoami", "--token", typo])
        .says(
            1,
            "✘ Invalid token format in --token (expected cm_pat_… or cm_session_…)",
        )
        .await
        .never_shows(typo);
    cli.cmd(["whoami"])
        .env("CLAUDEMESH_TOKEN", typo)
        .says(
            1,
            "✘ Invalid token format in CLAUDEMESH_TOKEN (expected cm_pat_… or cm_session_…)",
        )
        .await;
    cli.cmd(["login", "--with-token"])
        .stdin(typo)
        .says(1, "✘ Invalid token format (expected cm_pat_…)")
        .await;
    cli.cmd(["login", "--token", typo])
        .says(1, "✘ Invalid token format (expected cm_pat_…)")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_with_no_mesh_names_the_next_command() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);
    let out = device_login(&cli, &alice, "laptop").await.expect_code(0);
    out.stderr_has("✔ Synced 0 meshes\n").stderr_has(
        "You are in no mesh yet: create one with claudemesh create \"Team name\" \
         or join one with claudemesh join <invite link>.\n",
    );
    assert!(!out.stderr.contains("--help"), "{}", out.stderr);

    // With a mesh, the spec's line.
    let DevMesh(server, mesh, [_alices]) = DevMesh::start(Engine::Sqlite, ["Ada"]).await;
    let laptop = Cli::for_server(&server);
    device_login(&laptop, &mesh.admin().user, "desktop")
        .await
        .expect_code(0)
        .stderr_has("Run claudemesh --help to get started.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_link_without_a_login_says_how_to_get_one() {
    let server = server(Engine::Sqlite).await;
    let cli = Cli::for_server(&server);
    let link = format!("{}/i/abcdefgh", server.base_url);
    cli.cmd_args(&[&link])
        .says(
            2,
            &format!(
                "✘ Not logged in: sign in to join this mesh\n\
                 Run `claudemesh login` (no account yet? create one at {}/register), \
                 then `claudemesh {link}` again. In CI, set CLAUDEMESH_TOKEN.\n",
                server.base_url
            ),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_command_suggests_the_closest_one() {
    let cli = Cli::new(&dead_url());
    let out = cli.cmd(["peer"]).run().await.expect_code(3);
    assert_eq!(
        out.stderr,
        "✘ Unknown command `peer`\nDid you mean `claudemesh peers`? See `claudemesh --help`.\n"
    );
    let out = cli.cmd(["deploy"]).run().await.expect_code(3);
    assert_eq!(
        out.stderr,
        "✘ Unknown command `deploy`\nSee `claudemesh --help`.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_line_shows_no_option_that_came_from_the_environment() {
    // The harness exports CLAUDEMESH_API_URL, as the quick start does.
    let cli = Cli::new(&dead_url());
    let out = cli.cmd(["send", "Bob"]).run().await.expect_code(3);
    out.stderr_has("\nUsage: claudemesh send <TARGET> <MESSAGE>\n");
    assert!(!out.stderr.contains("--api-url"), "{}", out.stderr);
    // The variable still counts, and --api-url still beats it.
    let server = server(Engine::Sqlite).await;
    let pat = server.register("Alice").await.create_pat("ci", None).await;
    cli.cmd(["whoami", "--api-url", &server.base_url])
        .env("CLAUDEMESH_TOKEN", &pat.token)
        .run()
        .await
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_mail_the_server_only_wrote_to_its_outbox_is_not_called_sent() {
    // The test server has no SMTP: mail goes to its outbox folder.
    let DevMesh(server, _mesh, [alices]) = DevMesh::start(Engine::Sqlite, ["Alice"]).await;
    let out = alices
        .cmd(["invite", "--email", "bob@example.com"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has(
        "⚠ Not emailed: the server has no mail server set up, so the mail to bob@example.com \
         was only written to its outbox — share the link yourself\n",
    );
    assert!(!out.stderr.contains("✔ Emailed"), "{}", out.stderr);
    let json = alices
        .cmd(["invite", "--email", "bob@example.com", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["mail"], "outbox");
    assert_eq!(json["emailed"], false);
    assert!(server.config().data_dir.join("outbox").is_dir());
}
